"""The training engine: data order, exact resume, non-finite stop, DDP equivalence, logging."""

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from inpaintflow.tasks.data.prepare import prepare_items, synthetic_items, write_manifest
from inpaintflow.tasks.train.engine import TrainSettings, TrainingError, batch_indices, load_checkpoint, train

ALL_MODELS = ["rmnet", "dcgan", "wgan-gp", "regionwise", "gla"]


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("faces")
    items = synthetic_items({"train": 12, "test": 2}, seed=0)
    write_manifest(out, prepare_items(items, crop="none", size=32, seed=0, out_dir=out), [], {"dataset": "t"})
    return out


def settings(faces: Path, out: Path, model: str, steps: int, **kw) -> TrainSettings:
    base = dict(model=model, data=str(faces), out=str(out), steps=steps, batch_size=4, size=32, seed=1,
                checkpoint_every=2, preview_every=2, log_every=1, tiny=True, allow_random_vgg=True,
                progress=False)
    return TrainSettings(**{**base, **kw})


def nets_of(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    return load_checkpoint(path)["nets"]


def test_batches_cover_each_epoch_once_and_depend_only_on_seed_and_step():
    n, b = 10, 4
    seen = np.concatenate([batch_indices(3, s, n, b) for s in range(5)])  # 20 samples = 2 epochs
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:]) == list(range(10))
    np.testing.assert_array_equal(batch_indices(3, 4, n, b), seen[16:20])
    assert not np.array_equal(batch_indices(4, 0, n, b), batch_indices(3, 0, n, b))


@pytest.mark.parametrize("model", ALL_MODELS)
def test_resumed_run_ends_with_the_same_weights(faces, tmp_path, model):
    straight = train(settings(faces, tmp_path / "straight", model, steps=4))
    train(settings(faces, tmp_path / "resumed", model, steps=2))
    resumed = train(settings(faces, tmp_path / "resumed", model, steps=4), resume=True)
    a, b = nets_of(straight.checkpoint), nets_of(resumed.checkpoint)
    for net in a:
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), f"{model}.{net}.{key} differs after resume"


def test_a_resumed_checkpoint_has_the_bytes_of_an_uninterrupted_one(faces, tmp_path, monkeypatch):
    """DVC hashes the file: a run killed and resumed must give the same md5 as one that was not."""
    out = {}
    for name, stops in (("straight", [4]), ("resumed", [2, 4])):
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)  # the same relative out path in both (it is recorded)
        for i, steps in enumerate(stops):
            result = train(settings(faces, Path("run"), "dcgan", steps=steps), resume=i > 0)
        out[name] = (tmp_path / name / result.checkpoint).read_bytes()
    assert out["straight"] == out["resumed"]


def test_a_finished_run_leaves_checkpoint_previews_metrics_and_summary(faces, tmp_path):
    out = tmp_path / "run"
    result = train(settings(faces, out, "rmnet", steps=2))
    ckpt = load_checkpoint(result.checkpoint)  # weights_only=True
    assert ckpt["step"] == 2 and ckpt["model"] == "rmnet" and "generator" in ckpt["nets"]
    assert ckpt["model_config"] and ckpt["settings"]["seed"] == 1
    assert (out / "previews" / "step-0000002.png").is_file()
    metrics = json.loads((out / "live" / "metrics.json").read_text())
    assert metrics["step"] == 2 and any(k.startswith("train") for k in metrics)
    summary = json.loads((out / "train.json").read_text())
    assert summary["vgg19"] == "random-init" and json.loads((out / "timing.json").read_text())["images_per_s"] > 0
    assert summary["parameters"]["generator"] > 0
    with pytest.raises(TrainingError, match="exists: pass --resume"):
        train(settings(faces, out, "rmnet", steps=2))


def test_resume_refuses_a_checkpoint_of_other_settings_unless_auto(faces, tmp_path):
    out = tmp_path / "run"
    train(settings(faces, out, "dcgan", steps=2))
    with pytest.raises(TrainingError, match="other settings"):
        train(settings(faces, out, "dcgan", steps=4, seed=9), resume=True)
    result = train(settings(faces, out, "dcgan", steps=2, seed=9), resume="auto")  # starts over
    assert load_checkpoint(result.checkpoint)["settings"]["seed"] == 9


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(faces, tmp_path, monkeypatch):
    from inpaintflow.models.dcgan import DCGANRecipe

    out = tmp_path / "run"
    train(settings(faces, out, "dcgan", steps=2))
    good = hashlib.sha256((out / "checkpoint.pt").read_bytes()).hexdigest()
    real_step = DCGANRecipe.training_step

    def exploding(self, images, masks, ctx):
        losses = real_step(self, images, masks, ctx)
        return {**losses, "g": torch.tensor(float("nan"))} if ctx.step == 3 else losses

    monkeypatch.setattr(DCGANRecipe, "training_step", exploding)
    with pytest.raises(TrainingError, match=r"step 3: non-finite loss .*last good checkpoint"):
        train(settings(faces, out, "dcgan", steps=6), resume=True)
    # step index 3 would have finished step 4, the next checkpoint: the step-2 one is untouched
    assert hashlib.sha256((out / "checkpoint.pt").read_bytes()).hexdigest() == good
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_with_two_processes_matches_one_process_with_the_summed_batch(faces, tmp_path):
    """torchrun, 2 CPU processes on gloo, global batch 4 (2 each) vs 1 process with batch 4."""
    single = train(settings(faces, tmp_path / "one", "rmnet", steps=2))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "inpaintflow.cli", "train", "rmnet", "--data", str(faces), "--out", str(tmp_path / "two"),
           "--steps", "2", "--batch-size", "4", "--size", "32", "--seed", "1", "--checkpoint-every", "2",
           "--preview-every", "2", "--log-every", "1", "--tiny", "--allow-random-vgg", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    a, b = nets_of(single.checkpoint), nets_of(tmp_path / "two" / "checkpoint.pt")
    for net in a:
        for key in a[net]:
            torch.testing.assert_close(a[net][key], b[net][key], rtol=1e-4, atol=1e-5,
                                       msg=lambda m: f"rmnet.{net}.{key}: {m}")


@pytest.mark.parametrize("model", ["rmnet", "gla", "regionwise"])
def test_inference_rebuilds_the_model_from_the_checkpoint_alone(faces, tmp_path, model):
    from inpaintflow.tasks.train.engine import rebuild_from_checkpoint

    result = train(settings(faces, tmp_path / "run", model, steps=2))
    recipe, cfg, saved = rebuild_from_checkpoint(result.checkpoint)
    assert saved["model"] == model and type(cfg).__module__ == f"inpaintflow.models.{model}"
    weights = load_checkpoint(result.checkpoint)["nets"]
    for name, net in recipe.nets.items():
        for key, value in net.state_dict().items():
            assert torch.equal(value, weights[name][key]), f"{name}.{key}"
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    masks = torch.zeros(2, 1, 32, 32)
    masks[:, :, 8:20, 8:20] = 1
    out = recipe.preview(images, masks)
    assert out.shape == images.shape
    assert torch.equal(out[masks.expand_as(out) == 0], images[masks.expand_as(images) == 0])


def test_two_identical_runs_write_byte_identical_checkpoints(faces, tmp_path):
    import shutil

    first = train(settings(faces, tmp_path / "run", "gla", steps=2)).checkpoint.read_bytes()
    shutil.rmtree(tmp_path / "run")  # a fresh run in the same place, as in a new clone
    again = train(settings(faces, tmp_path / "run", "gla", steps=2)).checkpoint.read_bytes()
    assert again == first


def test_auto_resume_starts_over_when_the_model_code_changed(faces, tmp_path, monkeypatch):
    import inpaintflow.tasks.train.engine as engine

    out = tmp_path / "run"
    train(settings(faces, out, "dcgan", steps=2))
    assert train(settings(faces, out, "dcgan", steps=2), resume="auto").steps == 2
    assert json.loads((out / "timing.json").read_text())["resumed_from"] == 2  # nothing to redo
    monkeypatch.setattr(engine, "code_fingerprint", lambda model: "edited")
    train(settings(faces, out, "dcgan", steps=2), resume="auto")
    assert json.loads((out / "timing.json").read_text())["resumed_from"] == 0  # retrained
    train(settings(faces, out, "dcgan", steps=4), resume=True)  # an explicit --resume trusts the user

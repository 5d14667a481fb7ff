"""Validation while training: the fixed batch, its baselines, the curves, and models that learn."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from inpaintflow.tasks.inpaint.baselines import mean_fill, telea
from inpaintflow.tasks.evaluate.metrics import image_metrics
from inpaintflow.tasks.data.prepare import prepare_items, synthetic_items, write_manifest
from inpaintflow.tasks.train.engine import TrainSettings, TrainingError, load_checkpoint, train
from inpaintflow.tasks.train.validation import (LATENT_VALIDATION, ValidationBatch, beats, hole_figures, split_train_val,
                                                validation_masks)


def test_validation_takes_the_val_split_else_holds_out_the_last_train_images():
    splits = ["train"] * 6 + ["val"] * 3 + ["test"] * 2
    train_pos, val_pos, source = split_train_val(splits, 2)
    assert list(train_pos) == list(range(6)) and list(val_pos) == [6, 7] and source == "val split"
    splits = ["train"] * 6 + ["test"] * 2
    train_pos, val_pos, source = split_train_val(splits, 2)
    assert list(train_pos) == [0, 1, 2, 3] and list(val_pos) == [4, 5] and "held out" in source
    assert not set(val_pos) & set(train_pos)
    with pytest.raises(ValueError, match="val_images"):
        split_train_val(["train"] * 2, 2)
    assert len(split_train_val(splits, 0)[1]) == 0


def test_validation_masks_are_fixed_by_the_seed_and_inside_the_training_bin():
    a = validation_masks(["free-form"], 32, 6, seed=3, ratio_bin=(0.1, 0.3))
    b = validation_masks(["free-form"], 32, 6, seed=3, ratio_bin=(0.1, 0.3))
    np.testing.assert_array_equal(a, b)
    ratios = a.reshape(6, -1).mean(axis=1)
    assert ((ratios >= 0.1) & (ratios < 0.3)).all()
    assert not np.array_equal(a, validation_masks(["free-form"], 32, 6, seed=4, ratio_bin=(0.1, 0.3)))
    gan = validation_masks([], 32, 2, seed=0)  # unconditional GANs: centre squares
    assert gan[:, 16, 16].all() and not gan[:, 0, 0].any()


def test_hole_figures_are_the_metric_modules_definitions():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    pred = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    holes = np.zeros((3, 16, 16), np.uint8)
    holes[:, 4:12, 4:12] = 1
    figures = hole_figures(pred, target, holes)
    diff = np.abs(pred.astype(float) - target.astype(float))[holes.astype(bool)]
    assert figures["hole_l1"] == pytest.approx(diff.mean() / 255)
    mse = [((pred[i].astype(float) - target[i]) ** 2)[holes[i].astype(bool)].mean() for i in range(3)]
    assert figures["hole_psnr"] == pytest.approx(10 * np.log10(255 ** 2 / np.mean(mse)))
    m = image_metrics(torch.from_numpy(pred).permute(0, 3, 1, 2), torch.from_numpy(target).permute(0, 3, 1, 2),
                      torch.from_numpy(holes)[:, None])
    assert figures["hole_l1"] == pytest.approx(float(m["hole_l1"].mean()))


def test_baselines_of_the_batch_are_mean_fill_and_telea_on_the_same_pairs():
    yy, xx = np.mgrid[0:32, 0:32]
    ramp = np.stack([xx * 8, yy * 8, (xx + yy) * 4], axis=-1).clip(0, 255).astype(np.uint8)
    images = np.stack([ramp, ramp[::-1].copy()])
    holes = validation_masks(["center-square"], 32, 2, seed=0)
    batch = ValidationBatch.build(images, holes, "test")
    direct = hole_figures(np.stack([mean_fill(i, h) for i, h in zip(images, holes)]), images, holes)
    assert batch.baselines["mean_fill"] == pytest.approx(direct)
    # a smooth ramp: Telea's transport beats a flat colour
    assert beats(batch.baselines["telea"], batch.baselines["mean_fill"])
    assert batch.baselines["telea"] == pytest.approx(
        hole_figures(np.stack([telea(i, h) for i, h in zip(images, holes)]), images, holes))


# the engine: curves in dvclive, figures in train.json and the checkpoint


def _faces(out: Path, train_n: int, val_same_as_train: bool = False) -> Path:
    items = synthetic_items({"train": train_n, "test": 2}, seed=0)
    write_manifest(out, prepare_items(items, crop="none", size=32, seed=0, out_dir=out), [], {"dataset": "t"})
    if val_same_as_train:  # a learning test: validate on the very batch it trains on
        manifest = out / "manifest.csv"
        with open(manifest, newline="") as f:
            rows = list(csv.DictReader(f))
        rows += [{**r, "split": "val"} for r in rows if r["split"] == "train"]
        with open(manifest, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return out


def _settings(data: Path, out: Path, model: str, steps: int, **kw) -> TrainSettings:
    base = dict(model=model, data=str(data), out=str(out), steps=steps, batch_size=4, size=32, seed=1,
                checkpoint_every=steps, preview_every=steps, log_every=steps, tiny=True,
                allow_random_vgg=True, progress=False)
    return TrainSettings(**{**base, **kw})


def test_training_logs_validation_curves_beside_the_baselines(tmp_path, one_torch_thread):
    data = _faces(tmp_path / "faces", 12)
    run = tmp_path / "run"
    train(_settings(data, run, "gla", 4, val_every=2, val_images=4))
    summary = json.loads((run / "train.json").read_text())["validation"]
    assert summary["images"] == 4 and "held out" in summary["source"] and summary["every"] == 2
    assert [r["step"] for r in load_checkpoint(run / "checkpoint.pt")["validation"]] == [0, 2, 4]
    assert summary["final"]["step"] == 4 and set(summary["baselines"]) == {"mean_fill", "telea"}
    assert summary["best"]["hole_l1"] <= summary["final"]["hole_l1"]
    plots = run / "live" / "plots" / "metrics" / "val"
    for name in ("hole_l1.tsv", "hole_psnr.tsv", "mean_fill/hole_l1.tsv", "telea/hole_psnr.tsv"):
        assert (plots / name).is_file(), name
    rows = (plots / "hole_l1.tsv").read_text().splitlines()
    assert rows[0].split("\t")[0] == "step" and [r.split("\t")[0] for r in rows[1:]] == ["0", "2", "4"]


def test_validation_never_uses_more_images_than_the_train_split_has(tmp_path):
    data = _faces(tmp_path / "faces", 3)
    with pytest.raises(TrainingError, match="manifest.csv: val_images"):
        train(_settings(data, tmp_path / "run", "gla", 2, val_every=1, val_images=3))


def test_validation_off_keeps_every_train_image_and_logs_no_curve(tmp_path, one_torch_thread):
    data = _faces(tmp_path / "faces", 6)
    run = tmp_path / "run"
    train(_settings(data, run, "gla", 2))
    assert json.loads((run / "train.json").read_text())["validation"] is None
    assert not (run / "live" / "plots" / "metrics" / "val").exists()


# learning tests: a wrong mask polarity, a detached loss or a frozen optimiser fail these


LEARNING = {  # model -> (steps, validations, demo-style overrides, required fall of the hole L1)
    # feed-forward: reconstruction first (no adversary), Adam 1e-3, as the demo profile trains
    "gla": (100, 5, {"adv_warmup_steps": 10_000, "lr": 1e-3}, 0.7),
    "rmnet": (300, 5, {"recon_warmup_steps": 10_000, "adv_warmup_steps": 10_000, "pixel_l1_weight": 1.0,
                       "lr": 1e-3}, 0.7),
    "regionwise": (100, 5, {"recon_warmup_steps": 10_000, "adv_warmup_steps": 10_000, "lr": 1e-3}, 0.7),
    # unconditional GANs, scored by their paper's latent optimisation on centre squares: an
    # untrained G already gives a smooth blob that fits the border, so the fall asked is smaller
    "dcgan": (500, 5, {}, 0.8),
    "wgan-gp": (450, 3, {"lr": 1e-3, "n_critic": 1}, 0.8),
}


@pytest.mark.parametrize("model", list(LEARNING))
def test_a_model_learns_to_fill_holes_on_a_fixed_batch(tmp_path, model, one_torch_thread):
    steps, validations, overrides, fall = LEARNING[model]
    data = _faces(tmp_path / "faces", 8, val_same_as_train=True)
    run = tmp_path / "run"
    train(_settings(data, run, model, steps, batch_size=8, val_every=steps // validations, val_images=8,
                    model_config=overrides))
    summary = json.loads((run / "train.json").read_text())["validation"]
    history = load_checkpoint(run / "checkpoint.pt")["validation"]
    start, best = history[0], summary["best"]
    assert start["step"] == 0  # the untrained model
    assert best["hole_l1"] < fall * start["hole_l1"], history
    if model in LATENT_VALIDATION:  # a raw G(z) composite: its grain costs PSNR, the L1 is the test
        assert best["hole_l1"] < summary["baselines"]["mean_fill"]["hole_l1"], summary
    else:
        assert beats(best, summary["baselines"]["mean_fill"]), summary

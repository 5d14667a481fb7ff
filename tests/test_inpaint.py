"""Batch inpainting: pairing, compositing, baselines, resume, and each method end to end on tiny data."""

import json
from pathlib import Path

import numpy as np
import pytest

from inpaintflow.conventions import DAMAGED_HOLE_VALUE, read_image, read_mask
from inpaintflow.tasks.blend.poisson import blend_batch, blend_experiment
from inpaintflow.tasks.data.prepare import prepare_items, synthetic_items, write_manifest
from inpaintflow.tasks.evaluate.scores import ScoresError, scored_results
from inpaintflow.tasks.inpaint.baselines import BASELINES
from inpaintflow.tasks.inpaint.batch import InpaintError, InpaintSettings, plan_pairs, run_experiment
from inpaintflow.tasks.masks.sets import make_masks, mask_jobs, write_mask_manifest
from inpaintflow.tasks.train.engine import TrainSettings, train

SIZE = 32


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("faces")
    items = synthetic_items({"train": 8, "test": 5}, seed=0)
    write_manifest(out, prepare_items(items, crop="none", size=SIZE, seed=0, out_dir=out), [], {"dataset": "t"})
    return out


def mask_set(root: Path, family: str, bins: list[str] | None, count: int, size: int = SIZE) -> Path:
    rows = make_masks(family, size, 3, mask_jobs(family, count, bins), root)
    write_mask_manifest(root, rows, [], {"family": family})
    return root


@pytest.fixture(scope="module")
def binned_masks(tmp_path_factory) -> Path:
    return mask_set(tmp_path_factory.mktemp("masks"), "free-form", ["0.1-0.2", "0.2-0.3"], 2)


@pytest.fixture(scope="module")
def centre_masks(tmp_path_factory) -> Path:
    return mask_set(tmp_path_factory.mktemp("centre"), "center-square", None, 3)


@pytest.fixture(scope="module")
def checkpoints(faces, tmp_path_factory) -> dict[str, Path]:
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for model in ("rmnet", "dcgan", "wgan-gp"):
        s = TrainSettings(model=model, data=str(faces), out=str(root / model), steps=2, batch_size=4, size=SIZE,
                          seed=1, checkpoint_every=2, preview_every=2, log_every=1, tiny=True,
                          allow_random_vgg=True, progress=False)
        out[model] = train(s).checkpoint
    return out


def test_pairs_cover_each_bin_with_its_own_masks_in_a_fixed_order(faces, binned_masks):
    pairs = plan_pairs(faces, binned_masks, limit=3)
    assert [p.bin for p in pairs] == ["0.1-0.2"] * 3 + ["0.2-0.3"] * 3
    # within a bin, image i gets mask i mod M (M = 2 masks per bin)
    assert [p.mask.name for p in pairs[:3]] == ["00000.png", "00001.png", "00000.png"]
    assert [p.mask.name for p in pairs[3:]] == ["00002.png", "00003.png", "00002.png"]
    assert len({p.name for p in pairs}) == 6
    assert plan_pairs(faces, binned_masks, limit=3) == pairs


def test_missing_manifests_and_size_mismatch_are_named(faces, tmp_path, binned_masks, checkpoints):
    with pytest.raises(InpaintError, match="manifest"):
        plan_pairs(tmp_path, binned_masks)
    big = mask_set(tmp_path / "big", "center-square", None, 2, size=48)
    with pytest.raises(InpaintError, match=r"32x32 but mask .*48x48"):
        run_experiment(InpaintSettings(method="feed-forward", data_dir=faces, masks_dir=big, out_dir=tmp_path / "o",
                                       checkpoint=checkpoints["rmnet"]))


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baselines_fill_the_hole_and_never_touch_known_pixels(name):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    hole = np.zeros((24, 24), np.uint8)
    hole[6:14, 8:20] = 1
    damaged = image.copy()
    damaged[hole.astype(bool)] = 255
    out = BASELINES[name][1](damaged, hole)
    np.testing.assert_array_equal(out[hole == 0], image[hole == 0])
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert not (out[hole == 1] == 255).all()  # the white hole was filled


def test_mean_fill_is_the_rounded_mean_of_the_known_pixels():
    image = np.zeros((4, 4, 3), np.uint8)
    image[..., 0] = [[10, 11, 0, 0]] * 4
    hole = np.zeros((4, 4), np.uint8)
    hole[:, 2:] = 1
    out = BASELINES["mean-fill"][1](image, hole)
    np.testing.assert_array_equal(out[0, 3], [np.rint(10.5), 0, 0])


def _check_composite(out_dir: Path, subdir: str, inputs: Path | None = None) -> int:
    """Known pixels of ``out_dir/subdir`` equal the target's (inputs: the inpaint run's folder)."""
    inputs = inputs or out_dir
    n = 0
    for target_path in sorted((inputs / "target").glob("*.png")):
        target = read_image(target_path)
        hole = read_mask(inputs / "masks" / target_path.name).astype(bool)
        result = read_image(out_dir / subdir / target_path.name)
        np.testing.assert_array_equal(result[~hole], target[~hole], err_msg=f"{subdir}/{target_path.name}")
        masked = read_image(inputs / "masked" / target_path.name)
        assert (masked[hole] == DAMAGED_HOLE_VALUE).all()
        np.testing.assert_array_equal(masked[~hole], target[~hole])
        n += 1
    return n


def test_feed_forward_run_keeps_known_pixels_and_resumes(faces, binned_masks, checkpoints, tmp_path, one_torch_thread):
    out = tmp_path / "ff"
    settings = InpaintSettings(method="feed-forward", data_dir=faces, masks_dir=binned_masks, out_dir=out,
                               checkpoint=checkpoints["rmnet"], label="R-MNet-0.4", limit=3, batch_size=2,
                               baselines=("telea", "mean-fill"))
    record = json.loads(run_experiment(settings).read_text())
    assert record["pairs"] == 6 and record["bins"] == {"0.1-0.2": 3, "0.2-0.3": 3}
    assert [r["dir"] for r in record["results"]] == ["output", "baselines/telea", "baselines/mean-fill"]
    assert record["train"]["steps"] == 2
    for result in record["results"]:
        assert _check_composite(out, result["dir"]) == 6
    first = {p.name: p.read_bytes() for p in (out / "output").glob("*.png")}

    # a killed run: one output and the record gone; the rerun redoes that batch only
    victim = sorted((out / "output").glob("*.png"))[-1]
    victim.unlink()
    (out / "inpaint.json").unlink()
    kept = sorted((out / "output").glob("*.png"))[0]
    before = kept.stat().st_mtime_ns
    run_experiment(settings)
    assert kept.stat().st_mtime_ns == before
    assert {p.name: p.read_bytes() for p in (out / "output").glob("*.png")} == first


def test_a_model_of_the_wrong_kind_is_refused(faces, centre_masks, checkpoints, tmp_path):
    with pytest.raises(InpaintError, match="not feed-forward"):
        run_experiment(InpaintSettings(method="feed-forward", data_dir=faces, masks_dir=centre_masks,
                                       out_dir=tmp_path / "x", checkpoint=checkpoints["dcgan"]))
    with pytest.raises(InpaintError, match="needs a 'wgan-gp' model"):
        run_experiment(InpaintSettings(method="vitoria", data_dir=faces, masks_dir=centre_masks,
                                       out_dir=tmp_path / "y", checkpoint=checkpoints["dcgan"]))


def test_yeh_refine_writes_first_pass_and_refinement_then_the_blend_step(faces, centre_masks, checkpoints, tmp_path,
                                                                        one_torch_thread):
    out = tmp_path / "yeh"
    settings = InpaintSettings(method="yeh-refine", data_dir=faces, masks_dir=centre_masks, out_dir=out,
                               checkpoint=checkpoints["dcgan"], label="Inpainting & Refinement", limit=3,
                               batch_size=2, steps=3, refine_steps=3, pattern="center-square")
    record = json.loads(run_experiment(settings).read_text())
    assert [(r["stage"], r["dir"], r["blend"]) for r in record["results"]] == \
        [("before", "generated", "blended"), ("after", "refined-generated", "refined")]
    assert _check_composite(out, "output") == 3
    blend = tmp_path / "yeh-blend"
    summary = json.loads(blend_experiment(out, blend).read_text())
    assert [(b["from"], b["to"], b["images"]) for b in summary["blended"]] == \
        [("generated", "blended", 3), ("refined-generated", "refined", 3)]
    for subdir in ("blended", "refined"):
        assert _check_composite(blend, subdir, inputs=out) == 3
    # the first pass the refinement started from is the blend step's result, bit for bit
    masked = np.stack([read_image(out / "masked" / p.name) for p in sorted((out / "generated").glob("*.png"))])
    holes = np.stack([read_mask(out / "masks" / p.name) for p in sorted((out / "generated").glob("*.png"))])
    generated = np.stack([read_image(p) for p in sorted((out / "generated").glob("*.png"))])
    step = np.stack([read_image(p) for p in sorted((blend / "blended").glob("*.png"))])
    np.testing.assert_array_equal(blend_batch(generated, masked, holes, "five-point"), step)
    # latents are seeded per image: a different batch size gives the same bytes
    again = tmp_path / "yeh-b1"
    run_experiment(InpaintSettings(**{**settings.__dict__, "out_dir": again, "batch_size": 1}))
    for p in (out / "refined-generated").glob("*.png"):
        assert (again / "refined-generated" / p.name).read_bytes() == p.read_bytes()


def test_vitoria_run_is_blended_into_the_known_pixels(faces, centre_masks, checkpoints, tmp_path, one_torch_thread):
    out = tmp_path / "vit"
    settings = InpaintSettings(method="vitoria", data_dir=faces, masks_dir=centre_masks, out_dir=out,
                               checkpoint=checkpoints["wgan-gp"], limit=2, batch_size=2, steps=3,
                               loss_weights={"alpha": 0.5, "beta": 0.5, "eta": 1.0})
    record = json.loads(run_experiment(settings).read_text())
    assert record["results"] == [{"method": "vitoria", "stage": None, "dir": "generated", "blend": "blended"}]
    with pytest.raises(ScoresError, match="blend it first"):
        scored_results(out)
    blend_experiment(out, tmp_path / "vit-blend")
    assert _check_composite(tmp_path / "vit-blend", "blended", inputs=out) == 2
    assert [(r["dir"], path) for r, path in scored_results(out, tmp_path / "vit-blend")] == \
        [("blended", tmp_path / "vit-blend" / "blended")]


def test_a_feed_forward_run_has_nothing_to_blend(tmp_path):
    out = tmp_path / "ff"
    out.mkdir()
    (out / "inpaint.json").write_text(json.dumps({"method": "feed-forward", "settings": {}, "results": [
        {"method": "R-MNet-0.4", "stage": None, "dir": "output"}]}))
    summary = json.loads(blend_experiment(out, tmp_path / "blend").read_text())
    assert summary["blended"] == [] and "composite" in summary["note"]
    assert sorted(p.name for p in (tmp_path / "blend").iterdir()) == ["blend.json"]

"""inpaintflow.tasks.evaluate.scoring: scoring PNG directories, checked against numpy and scikit-image per image."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from inpaintflow.conventions import write_image, write_mask
from inpaintflow.tasks.evaluate.scoring import PER_IMAGE_COLUMNS, EvaluationError, evaluate_dirs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = (24, 28)  # (H, W): small, not square, so a transposed size would be caught


def make_set(root: Path, n: int = 5, seed: int = 0) -> tuple[Path, Path, Path]:
    """pred/, gt/, masks/ with n PNGs each; image 0 is predicted exactly (PSNR inf)."""
    rng = np.random.default_rng(seed)
    dirs = [root / d for d in ("pred", "gt", "masks")]
    for d in dirs:
        d.mkdir(parents=True)
    h, w = SIZE
    for i in range(n):
        name = f"{i:05d}.png"
        gt = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (5, 5), 1.5)
        pred = gt if i == 0 else np.clip(gt.astype(int) + rng.integers(-30, 31, gt.shape), 0, 255).astype(np.uint8)
        mask = np.zeros((h, w), np.uint8)
        mask[6: 6 + 2 * i + 3, 8: 8 + 3 * i + 2] = 1
        write_image(dirs[0] / name, pred)
        write_image(dirs[1] / name, gt)
        write_mask(dirs[2] / name, mask)
    return tuple(dirs)


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def expected_row(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    diff = pred.astype(np.float64) - gt
    hole = mask.astype(bool)
    mse, hole_mse = np.mean(diff ** 2), np.mean(diff[hole] ** 2)
    ssim, full = structural_similarity(pred, gt, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                       data_range=255, channel_axis=-1, full=True)
    return {
        "hole_ratio": hole.mean(), "mae": np.abs(diff).mean(), "mse": mse,
        "psnr": 10 * np.log10(255 ** 2 / mse) if mse else math.inf, "ssim": ssim,
        "hole_mae": np.abs(diff[hole]).mean(), "hole_mse": hole_mse,
        "hole_psnr": 10 * np.log10(255 ** 2 / hole_mse) if hole_mse else math.inf,
        "hole_ssim": full[5:-5, 5:-5][hole[5:-5, 5:-5]].mean(),
        "l1": np.abs(diff).mean() / 255, "l2": mse / 255 ** 2,
        "hole_l1": np.abs(diff[hole]).mean() / 255, "hole_l2": hole_mse / 255 ** 2,
    }


def test_evaluate_dirs_matches_per_image_reference(tmp_path):
    pred_dir, gt_dir, masks_dir = make_set(tmp_path)
    out_csv, summary_csv, summary_json = evaluate_dirs(pred_dir, gt_dir, masks_dir, tmp_path / "out" / "scores.csv",
                                                       batch_size=2)
    assert summary_csv.name == "scores.summary.csv" and summary_json.name == "scores.summary.json"
    assert out_csv.read_text().splitlines()[0] == ",".join(PER_IMAGE_COLUMNS)
    rows = read_rows(out_csv)
    assert [r["file"] for r in rows] == [f"{i:05d}.png" for i in range(5)]
    for row in rows:
        pred = cv2.cvtColor(cv2.imread(str(pred_dir / row["file"])), cv2.COLOR_BGR2RGB)
        gt = cv2.cvtColor(cv2.imread(str(gt_dir / row["file"])), cv2.COLOR_BGR2RGB)
        mask = cv2.imread(str(masks_dir / row["file"]), cv2.IMREAD_GRAYSCALE) == 255
        assert row["bin"] == "all"
        for key, value in expected_row(pred, gt, mask).items():
            assert float(row[key]) == pytest.approx(value, abs=2e-6), (row["file"], key)
    assert rows[0]["psnr"] == "inf" and rows[0]["mae"] == "0.000000"

    summary = json.loads(summary_json.read_text())  # strict JSON: inf became null
    assert set(summary) == {"bins", "total"} and list(summary["bins"]) == ["all"]
    total = summary["total"]
    assert total["count"] == 5 and total["psnr_mean"] is None and total["psnr_std"] is None
    assert total["mae_mean"] == pytest.approx(np.mean([float(r["mae"]) for r in rows]), abs=1e-6)
    mean_mse = np.mean([float(r["mse"]) for r in rows])
    assert total["psnr_of_mean_mse"] == pytest.approx(10 * np.log10(255 ** 2 / mean_mse), abs=1e-6)
    assert [r["bin"] for r in read_rows(summary_csv)] == ["all", "total"]


def test_bins_from_manifest_in_manifest_order(tmp_path):
    pred_dir, gt_dir, masks_dir = make_set(tmp_path)
    manifest = "file,index,bin\n" + "".join(
        f"{i:05d}.png,{i},{'10-20%' if i < 2 else '20-30%'}\n" for i in (4, 3, 2, 0, 1))
    (masks_dir / "manifest.csv").write_text(manifest)
    out_csv, summary_csv, summary_json = evaluate_dirs(pred_dir, gt_dir, masks_dir, tmp_path / "scores.csv")
    rows = read_rows(out_csv)
    assert [r["bin"] for r in rows] == ["10-20%", "10-20%", "20-30%", "20-30%", "20-30%"]
    groups = read_rows(summary_csv)
    assert [(g["bin"], g["count"]) for g in groups] == [("20-30%", "3"), ("10-20%", "2"), ("total", "5")]
    bins = json.loads(summary_json.read_text())["bins"]
    expected = np.mean([float(r["hole_mae"]) for r in rows[2:]])
    assert bins["20-30%"]["hole_mae_mean"] == pytest.approx(expected, abs=1e-6)


def test_same_inputs_give_same_bytes(tmp_path):
    dirs = make_set(tmp_path)
    first = [p.read_bytes() for p in evaluate_dirs(*dirs, tmp_path / "a.csv", batch_size=3)]
    second = [p.read_bytes() for p in evaluate_dirs(*dirs, tmp_path / "b.csv", batch_size=1)]
    assert first == second


def _missing_gt(pred_dir, gt_dir, masks_dir):
    (gt_dir / "00002.png").unlink()
    return "gt/00002.png"


def _size_mismatch(pred_dir, gt_dir, masks_dir):
    write_image(pred_dir / "00003.png", np.zeros((SIZE[0], SIZE[1] + 2, 3), np.uint8))
    return "pred/00003.png"


def _mask_with_128(pred_dir, gt_dir, masks_dir):
    mask = np.zeros(SIZE, np.uint8)
    mask[4:9, 4:9] = 128
    cv2.imwrite(str(masks_dir / "00001.png"), mask)
    return "masks/00001.png"


def _unreadable_image(pred_dir, gt_dir, masks_dir):
    data = (gt_dir / "00004.png").read_bytes()
    (gt_dir / "00004.png").write_bytes(data[:40])  # valid header, truncated pixels
    return "gt/00004.png"


def _empty_pred_dir(pred_dir, gt_dir, masks_dir):
    for p in pred_dir.glob("*.png"):
        p.unlink()
    return "pred"


@pytest.mark.parametrize("break_input", [_missing_gt, _size_mismatch, _mask_with_128, _unreadable_image,
                                         _empty_pred_dir])
def test_bad_inputs_raise_naming_the_file_and_write_nothing(tmp_path, break_input):
    dirs = make_set(tmp_path)
    culprit = break_input(*dirs)
    out_dir = tmp_path / "out"
    with pytest.raises(EvaluationError) as info:
        evaluate_dirs(*dirs, out_dir / "scores.csv", batch_size=2)
    assert str(tmp_path / culprit) in str(info.value)
    assert not out_dir.exists() or not any(out_dir.iterdir())

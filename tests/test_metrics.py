"""inpaintflow.tasks.evaluate.metrics against scikit-image, numpy and hand calculations."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import structural_similarity

from inpaintflow.tasks.evaluate.metrics import (ALL_METRICS, HOLE_METRICS, METRICS, image_metrics, psnr_from_mse,
                                                psnr_of_mean_mse, ssim_map, summarise, summary_columns)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def skimage_ssim(a: np.ndarray, b: np.ndarray, full: bool = False):
    """Wang et al. 2004 settings, as the metrics module's docstring states them."""
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=255, channel_axis=-1, full=full)


def to_torch(images: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) numpy -> (B, 3, H, W) torch, same dtype."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)


def natural_batch(rng: np.random.Generator, n: int = 3, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Smooth real-photo targets (astronaut crops) and noisy, shifted predictions of them."""
    photo = data.astronaut()  # (512, 512, 3) uint8 RGB
    targets, preds = [], []
    for i in range(n):
        crop = photo[64 * i: 64 * i + 256, 100 + 32 * i: 356 + 32 * i]
        target = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
        noisy = target.astype(np.float64) + rng.normal(0, 4.0 * (i + 1), target.shape)
        targets.append(target)
        preds.append(np.clip(np.rint(np.roll(noisy, i, axis=1)), 0, 255).astype(np.uint8))
    return np.stack(preds), np.stack(targets)


def random_holes(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    """(n, h, w) uint8 masks, 1 = hole, each with a rectangle plus scattered pixels."""
    holes = (rng.random((n, h, w)) < 0.1).astype(np.uint8)
    for i in range(n):
        top, left = rng.integers(0, h // 2), rng.integers(0, w // 2)
        holes[i, top: top + h // 3, left: left + w // 3] = 1
    return holes


# ---------------------------------------------------------------------------------------------
# SSIM


def test_ssim_matches_skimage_on_random_images():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (4, 23, 37, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    ours = image_metrics(to_torch(a), to_torch(b), torch.ones(4, 1, 23, 37))["ssim"].numpy()
    reference = [skimage_ssim(a[i], b[i]) for i in range(4)]
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-6)


def test_ssim_matches_skimage_on_natural_images():
    rng = np.random.default_rng(1)
    preds, targets = natural_batch(rng)
    ours = image_metrics(to_torch(preds), to_torch(targets), torch.zeros(3, 1, 64, 64))["ssim"].numpy()
    reference = np.array([skimage_ssim(preds[i], targets[i]) for i in range(3)])
    assert np.all((reference > 0.3) & (reference < 0.99))  # a meaningful range, not saturated
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-6)


def test_ssim_map_is_skimage_map_without_its_border():
    rng = np.random.default_rng(2)
    preds, targets = natural_batch(rng, n=2, size=32)
    ours = ssim_map(to_torch(preds).double(), to_torch(targets).double())
    assert ours.shape == (2, 3, 22, 22) and ours.dtype == torch.float64
    for i in range(2):
        _, full = skimage_ssim(preds[i], targets[i], full=True)  # (H, W, 3), border padded
        np.testing.assert_allclose(ours[i].permute(1, 2, 0).numpy(), full[5:-5, 5:-5], rtol=0, atol=1e-9)


def test_ssim_of_identical_images_is_one_and_float_input_matches_uint8():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    hole = torch.zeros(2, 1, 16, 16)
    assert torch.allclose(image_metrics(to_torch(a), to_torch(a), hole)["ssim"], torch.ones(2, dtype=torch.float64))
    as_uint8 = image_metrics(to_torch(a), to_torch(b), hole)
    as_float = image_metrics(to_torch(a).float(), to_torch(b).double(), hole)
    for m in METRICS:
        torch.testing.assert_close(as_uint8[m], as_float[m], rtol=0, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# MAE, MSE, PSNR, l1, l2 and their hole forms


def test_pixel_metrics_match_numpy():
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (3, 20, 24, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (3, 20, 24, 3), dtype=np.uint8)
    holes = random_holes(rng, 3, 20, 24)
    got = image_metrics(to_torch(a), to_torch(b), torch.from_numpy(holes)[:, None])
    assert set(got) == set(ALL_METRICS)
    diff = a.astype(np.float64) - b.astype(np.float64)
    for i in range(3):
        mse = np.mean(diff[i] ** 2)
        inside = holes[i].astype(bool)  # (H, W); diff[i][inside] is (n, 3)
        hole_mse = np.mean(diff[i][inside] ** 2)
        expected = {
            "mae": np.mean(np.abs(diff[i])), "mse": mse, "psnr": 10 * np.log10(255 ** 2 / mse),
            "l1": np.mean(np.abs(diff[i])) / 255, "l2": mse / 255 ** 2,
            "hole_mae": np.mean(np.abs(diff[i][inside])), "hole_mse": hole_mse,
            "hole_psnr": 10 * np.log10(255 ** 2 / hole_mse),
            "hole_l1": np.mean(np.abs(diff[i][inside])) / 255, "hole_l2": hole_mse / 255 ** 2,
        }
        for m, value in expected.items():
            assert got[m][i].item() == pytest.approx(value, rel=1e-12), m
        assert got[m].dtype == torch.float64


def test_hole_ssim_is_skimage_full_map_over_hole_pixels_in_the_valid_region():
    rng = np.random.default_rng(5)
    preds, targets = natural_batch(rng, n=3, size=48)
    holes = random_holes(rng, 3, 48, 48)
    got = image_metrics(to_torch(preds), to_torch(targets), torch.from_numpy(holes)[:, None])["hole_ssim"]
    for i in range(3):
        _, full = skimage_ssim(preds[i], targets[i], full=True)
        inside = holes[i][5:-5, 5:-5].astype(bool)
        assert got[i].item() == pytest.approx(full[5:-5, 5:-5][inside].mean(), abs=1e-6)


def test_empty_hole_gives_nan_and_border_hole_gives_nan_hole_ssim_only():
    rng = np.random.default_rng(6)
    a = rng.integers(0, 256, (2, 24, 24, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (2, 24, 24, 3), dtype=np.uint8)
    holes = np.zeros((2, 1, 24, 24), np.uint8)
    holes[1, 0, :3, :] = 1  # only in the 5-pixel border the SSIM map drops
    got = image_metrics(to_torch(a), to_torch(b), torch.from_numpy(holes))
    for m in HOLE_METRICS:
        assert math.isnan(got[m][0].item()), m
    assert math.isnan(got["hole_ssim"][1].item())
    assert got["hole_mae"][1].item() == pytest.approx(np.abs(a[1, :3].astype(float) - b[1, :3]).mean())


def test_psnr_per_image_and_set_forms_by_hand():
    # image 0 is off by 1 everywhere (MSE 1), image 1 by 3 (MSE 9)
    target = torch.full((2, 3, 16, 16), 100, dtype=torch.uint8)
    pred = target.clone()
    pred[0] += 1
    pred[1] += 3
    got = image_metrics(pred, target, torch.ones(2, 1, 16, 16))
    torch.testing.assert_close(got["mse"], torch.tensor([1.0, 9.0], dtype=torch.float64))
    psnr_1, psnr_9 = 20 * math.log10(255), 20 * math.log10(255) - 10 * math.log10(9)
    assert got["psnr"].tolist() == pytest.approx([psnr_1, psnr_9], rel=1e-12)
    per_image = summarise([{"bin": "b", **{m: v[i].item() for m, v in got.items()}} for i in range(2)])[-1]
    assert per_image["psnr_mean"] == pytest.approx((psnr_1 + psnr_9) / 2, rel=1e-12)
    assert per_image["psnr_of_mean_mse"] == pytest.approx(20 * math.log10(255) - 10 * math.log10(5), rel=1e-12)
    assert psnr_of_mean_mse([1.0, 9.0]) == per_image["psnr_of_mean_mse"]


def test_psnr_of_identical_images_is_inf_and_nan_stays_nan():
    assert psnr_from_mse(torch.tensor([0.0, math.nan, 255.0 ** 2])).tolist()[::2] == [math.inf, 0.0]
    assert math.isnan(psnr_from_mse(math.nan).item())
    assert psnr_of_mean_mse([0.0, 0.0]) == math.inf
    assert psnr_of_mean_mse(np.array([4.0, math.nan])) == pytest.approx(10 * math.log10(255 ** 2 / 4))
    assert math.isnan(psnr_of_mean_mse([math.nan]))
    x = torch.randint(0, 256, (1, 3, 12, 12), dtype=torch.uint8)
    assert image_metrics(x, x, torch.ones(1, 1, 12, 12))["psnr"].item() == math.inf


# ---------------------------------------------------------------------------------------------
# summarise


def test_summarise_matches_numpy_per_group_and_total():
    rng = np.random.default_rng(7)
    rows = []
    for i in range(9):
        row = {m: float(rng.random()) for m in ALL_METRICS}
        row["bin"] = ["10-20%", "0-10%", "20-30%"][i % 3]
        if i in (1, 4):
            row["hole_ssim"] = math.nan
        rows.append(row)
    out = summarise(rows, "bin", order=["0-10%", "absent", "10-20%"])
    assert [g["bin"] for g in out] == ["0-10%", "10-20%", "20-30%", "total"]
    assert out[-1]["count"] == 9 and out[-1]["hole_ssim_count"] == 7 and out[-1]["hole_count"] == 9
    for group in out:
        members = rows if group["bin"] == "total" else [r for r in rows if r["bin"] == group["bin"]]
        assert group["count"] == len(members)
        for m in ALL_METRICS:
            values = np.array([r[m] for r in members])
            values = values[~np.isnan(values)]
            assert group[f"{m}_mean"] == pytest.approx(values.mean(), rel=1e-12)
            assert group[f"{m}_std"] == pytest.approx(np.sqrt(np.mean((values - values.mean()) ** 2)), rel=1e-9)
        mse = np.mean([r["mse"] for r in members])
        assert group["psnr_of_mean_mse"] == pytest.approx(10 * np.log10(255 ** 2 / mse), rel=1e-12)
        assert list(group) == summary_columns("bin")
    assert out[0]["hole_ssim_count"] == 1  # "0-10%" holds rows 1, 4, 7; 1 and 4 have NaN hole_ssim


def test_summarise_first_appearance_order_and_reserved_total():
    rows = [{"bin": b, **{m: 1.0 for m in ALL_METRICS}} for b in ("c", "a", "c", "b")]
    assert [g["bin"] for g in summarise(rows)] == ["c", "a", "b", "total"]
    with pytest.raises(ValueError, match="total"):
        summarise([{"bin": "total", **{m: 1.0 for m in ALL_METRICS}}])


# ---------------------------------------------------------------------------------------------
# input checks


@pytest.mark.parametrize("pred_shape, target_shape, hole_shape, message", [
    ((2, 1, 16, 16), (2, 1, 16, 16), (2, 1, 16, 16), r"\(B, 3, H, W\)"),
    ((3, 16, 16), (3, 16, 16), (1, 16, 16), r"\(B, 3, H, W\)"),
    ((2, 3, 16, 16), (2, 3, 16, 18), (2, 1, 16, 16), "differ in shape"),
    ((2, 3, 16, 16), (2, 3, 16, 16), (2, 3, 16, 16), "hole: expected shape"),
    ((1, 3, 8, 16), (1, 3, 8, 16), (1, 1, 8, 16), "at least 11x11"),
])
def test_bad_shapes_raise(pred_shape, target_shape, hole_shape, message):
    with pytest.raises(ValueError, match=message):
        image_metrics(torch.zeros(pred_shape), torch.zeros(target_shape), torch.zeros(hole_shape))


def test_bad_values_raise():
    x = torch.zeros(1, 3, 12, 12)
    hole = torch.zeros(1, 1, 12, 12)
    with pytest.raises(ValueError, match="0..255"):
        image_metrics(x - 1.0, x, hole)  # a model's [-1, 1] output, unconverted
    with pytest.raises(ValueError, match="0..255"):
        image_metrics(x, x + 300.0, hole)
    with pytest.raises(ValueError, match="only 0 and 1"):
        image_metrics(x, x, hole + 0.5)
    with pytest.raises(ValueError, match="dtype"):
        image_metrics(x.to(torch.int64), x.to(torch.int64), hole)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(8)
    preds, targets = natural_batch(rng, n=2, size=32)
    hole = torch.from_numpy(random_holes(rng, 2, 32, 32))[:, None]
    cpu = image_metrics(to_torch(preds), to_torch(targets), hole)
    gpu = image_metrics(to_torch(preds).cuda(), to_torch(targets).cuda(), hole.cuda())
    for m in ALL_METRICS:
        assert gpu[m].device.type == "cuda"
        torch.testing.assert_close(gpu[m].cpu(), cpu[m], rtol=0, atol=1e-9)

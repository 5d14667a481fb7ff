"""Metrics throughput: batched torch (inpaintflow.tasks.evaluate.metrics) against a per-image scikit-image loop.

    python benchmarks/metrics.py

Both sides score the same 64 RGB 256x256 uint8 pairs: ours computes every metric of
``ALL_METRICS`` (whole image and hole) in batches; the baseline computes only whole-image
SSIM (skimage ``structural_similarity``, Wang et al. settings) and numpy MAE/MSE/PSNR, one image
at a time. Torch and OpenCV are held to one thread, so the ratio compares algorithms, not cores.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import torch
from skimage.metrics import structural_similarity

from timing import best_of
from inpaintflow.tasks.evaluate.metrics import image_metrics

N_IMAGES = 64
SIZE = 256
BATCH = 32  # evaluate_dirs default




def _images(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, H, W, 3) smooth targets, noisy predictions, and (N, H, W) rectangular holes."""
    small = rng.integers(0, 256, (N_IMAGES, SIZE // 8, SIZE // 8, 3), dtype=np.uint8)
    targets = np.stack([cv2.resize(s, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR) for s in small])
    preds = np.clip(targets.astype(np.int16) + rng.integers(-20, 21, targets.shape), 0, 255).astype(np.uint8)
    holes = np.zeros((N_IMAGES, SIZE, SIZE), np.uint8)
    holes[:, SIZE // 4: 3 * SIZE // 4, SIZE // 4: 3 * SIZE // 4] = 1
    return preds, targets, holes


def main() -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    preds, targets, holes = _images(np.random.default_rng(0))
    pred_t = torch.from_numpy(preds).permute(0, 3, 1, 2)  # (N, 3, H, W) uint8
    target_t = torch.from_numpy(targets).permute(0, 3, 1, 2)
    hole_t = torch.from_numpy(holes)[:, None]  # (N, 1, H, W)

    def ours():
        for start in range(0, N_IMAGES, BATCH):
            part = slice(start, start + BATCH)
            image_metrics(pred_t[part], target_t[part], hole_t[part])

    def skimage_loop():
        for pred, target in zip(preds, targets):
            diff = pred.astype(np.float64) - target
            mse = np.mean(diff ** 2)
            _ = (np.mean(np.abs(diff)), 10 * np.log10(255 ** 2 / mse))
            structural_similarity(pred, target, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                  data_range=255, channel_axis=-1)

    ours()  # warm-up
    t_ours = best_of(ours)
    t_ref = best_of(skimage_loop)
    print(f"metrics on {N_IMAGES} RGB {SIZE}x{SIZE} pairs, torch and cv2 threads = 1 (fair single-core comparison)")
    print(f"  tasks/evaluate/metrics.py image_metrics, batch {BATCH}, all 12 metrics : {N_IMAGES / t_ours:8.1f} images/s")
    print(f"  per-image skimage SSIM + numpy MAE/MSE/PSNR (6 fewer)     : {N_IMAGES / t_ref:8.1f} images/s")
    print(f"  ratio (ours / skimage loop)                               : {t_ref / t_ours:8.2f}x")


if __name__ == "__main__":
    main()

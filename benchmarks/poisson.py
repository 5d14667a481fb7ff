"""Poisson blending speed: inpaintflow.tasks.blend.poisson against cv2.seamlessClone, per image.

    python benchmarks/poisson.py

For 64x64 and 256x256 images with a centred square hole of 10 %, 30 % and 50 % (interior, so
cv2 runs): milliseconds per image for
  fresh   inpaintflow.tasks.blend.poisson.poisson_blend: assemble, factorise (SuperLU) and solve for every image
  batch   inpaintflow.tasks.blend.poisson.blend_batch on 16 images sharing one mask: one factorisation, amortised
  3x3     as fresh, with paper 001's 3x3 operator (denser matrix)
  cv2     cv2.seamlessClone(NORMAL_CLONE), one thread (a DST solve on the mask's bounding box;
          it solves a different discretisation, see tasks/blend/poisson.py)
and the ratios against cv2. Best of three runs; SuperLU is single-threaded too.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from inpaintflow.conventions import damage
from inpaintflow.tasks.blend.poisson import blend_batch, poisson_blend

SIZES = (64, 256)
HOLE_RATIOS = (0.1, 0.3, 0.5)
BATCH = 16
REPEATS = 3


def centred_square(size: int, ratio: float) -> np.ndarray:
    side = int(round(size * np.sqrt(ratio)))
    hole = np.zeros((size, size), np.uint8)
    top = (size - side) // 2
    hole[top:top + side, top:top + side] = 1
    return hole


def _ms_per_image(fn, n_images: int) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return 1e3 * best / n_images


def bench_case(size: int, ratio: float, rng: np.random.Generator) -> dict[str, float]:
    hole = centred_square(size, ratio)
    generated = rng.integers(0, 256, (BATCH, size, size, 3), dtype=np.uint8)
    targets = rng.integers(0, 256, (BATCH, size, size, 3), dtype=np.uint8)
    damaged = np.stack([damage(t, hole) for t in targets])
    holes = np.broadcast_to(hole, (BATCH, size, size))
    n_fresh = 4 if size >= 256 else BATCH
    x, y, w, h = cv2.boundingRect(hole)
    center = (x + w // 2, y + h // 2)  # identity placement (see tests/test_poisson.py)
    mask255 = hole * 255
    return {
        "unknowns": int(hole.sum()),
        "fresh": _ms_per_image(lambda: [poisson_blend(generated[i], damaged[i], hole)
                                        for i in range(n_fresh)], n_fresh),
        "batch": _ms_per_image(lambda: blend_batch(generated, damaged, holes), BATCH),
        "3x3": _ms_per_image(lambda: [poisson_blend(generated[i], damaged[i], hole, "paper001-3x3")
                                      for i in range(n_fresh)], n_fresh),
        "cv2": _ms_per_image(lambda: [cv2.seamlessClone(generated[i], targets[i], mask255, center,
                                                        cv2.NORMAL_CLONE) for i in range(BATCH)], BATCH),
    }


def main() -> None:
    cv2.setNumThreads(1)
    rng = np.random.default_rng(0)
    print(f"Poisson blending, ms per image (best of {REPEATS}); batch = {BATCH} images sharing one mask")
    print(f"{'size':>5} {'hole':>5} {'unknowns':>8} {'fresh':>8} {'batch':>8} {'3x3':>8} {'cv2':>8}"
          f" {'fresh/cv2':>10} {'batch/cv2':>10} {'fresh/batch':>12}")
    for size in SIZES:
        for ratio in HOLE_RATIOS:
            r = bench_case(size, ratio, rng)
            print(f"{size:>5} {ratio:>5.0%} {r['unknowns']:>8} {r['fresh']:>8.2f} {r['batch']:>8.2f} "
                  f"{r['3x3']:>8.2f} {r['cv2']:>8.2f} {r['fresh'] / r['cv2']:>9.2f}x "
                  f"{r['batch'] / r['cv2']:>9.2f}x {r['fresh'] / r['batch']:>11.2f}x")


if __name__ == "__main__":
    main()

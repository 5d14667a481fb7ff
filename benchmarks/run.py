"""Throughput benchmarks for the foundation steps; prints ratios against a baseline in the same run.

    python benchmarks/run.py            (or: make bench)

1. Dataset resize: inpaintflow.tasks.data.prepare (cv2 INTER_AREA on decoded arrays) against a naive PIL loop
   (open, convert, resize with Image.BOX, save) over the same JPEG files, as images/s and ratio.
2. Mask generation: masks/s for every family at 256x256 (binned families in a paper bin), and
   the ratio against the fastest fixed pattern as a scale.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from timing import best_of
from inpaintflow.conventions import encode_image_png
from inpaintflow.tasks.data.prepare import crop_image, decode_to_rgb8, resize_image
from inpaintflow.tasks.masks.generators import FAMILIES, make_mask




def bench_resize(n: int = 200, src_hw=(218, 178), size: int = 64) -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = []
        for i in range(n):  # smooth random images, JPEG like aligned CelebA
            small = rng.integers(0, 256, (src_hw[0] // 8, src_hw[1] // 8, 3), dtype=np.uint8)
            im = Image.fromarray(small).resize(src_hw[::-1], Image.BILINEAR)
            path = tmp / f"{i:05d}.jpg"
            im.save(path, quality=90)
            files.append(path)
        out = tmp / "out"
        out.mkdir()

        def ours():
            for p in files:
                image = resize_image(crop_image(decode_to_rgb8(p.read_bytes(), p.name), "dcgan-108"), size)
                (out / f"{p.stem}.png").write_bytes(encode_image_png(image))

        def naive_pil():
            for p in files:
                with Image.open(p) as im:
                    im = im.convert("RGB")
                    w, h = im.size
                    left, top = round((w - 108) / 2), round((h - 108) / 2)
                    im = im.crop((left, top, left + 108, top + 108)).resize((size, size), Image.BOX)
                    buf = io.BytesIO()
                    im.save(buf, format="PNG")
                    (out / f"{p.stem}.pil.png").write_bytes(buf.getvalue())

        t_ours, t_pil = best_of(ours), best_of(naive_pil)
    print(f"resize {src_hw[1]}x{src_hw[0]} JPEG -> {size}x{size} PNG, {n} images (decode+verify, crop, resize, encode, write)")
    print(f"  inpaintflow (PIL decode, cv2 INTER_AREA):         {n / t_ours:8.0f} img/s")
    print(f"  naive PIL loop (open, crop, BOX resize, save):     {n / t_pil:8.0f} img/s")
    print(f"  ratio inpaintflow / naive PIL: {t_pil / t_ours:.2f}x")
    # the resize kernel alone, where cv2's SIMD shows
    big = np.random.default_rng(1).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    reps = 30
    t_cv = best_of(lambda: [resize_image(big, 256) for _ in range(reps)])
    pil_big = Image.fromarray(big)
    t_pil_only = best_of(lambda: [np.asarray(pil_big.resize((256, 256), Image.BOX)) for _ in range(reps)])
    print(f"  resize kernel 1024->256: cv2 INTER_AREA {reps / t_cv:7.0f}/s, PIL BOX {reps / t_pil_only:7.0f}/s, "
          f"ratio {t_pil_only / t_cv:.2f}x")


BINS = {"free-form": (0.2, 0.3), "regionwise-contiguous": (0.2, 0.3), "regionwise-discontiguous": (0.2, 0.3)}


def bench_masks(size: int = 256, n: int = 100) -> None:
    print(f"\nmasks {size}x{size}, {n} per family (binned families in bin {BINS['free-form']})")
    rates = {}
    for name, family in FAMILIES.items():
        ratio_bin = BINS.get(name) if not family.fixed_ratio else None
        t = best_of(lambda: [make_mask(name, size, 0, i, ratio_bin) for i in range(n)], repeats=2)
        rates[name] = n / t
    fastest = max(rates.values())
    for name, rate in sorted(rates.items(), key=lambda kv: -kv[1]):
        print(f"  {name:26s} {rate:9.0f} masks/s   ({rate / fastest:.3f} of the fastest)")
    t = best_of(lambda: [make_mask("free-form", size, 0, i, (0.4, 0.5)) for i in range(20)], repeats=1)
    print(f"  {'free-form in 0.4-0.5':26s} {20 / t:9.0f} masks/s   (rejection sampling: DeepFill masks are rarely that large)")


if __name__ == "__main__":
    import cv2

    cv2.setNumThreads(1)  # one core, both sides: the ratio compares algorithms, not thread counts
    bench_resize()
    bench_masks()

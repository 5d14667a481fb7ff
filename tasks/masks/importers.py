"""Importers of published mask sets: pure functions from a file to an in-memory mask (1 = hole).

NVIDIA irregular masks (Liu et al. 2018, "Image Inpainting for Irregular Holes Using Partial
Convolutions"), test set
    12,000 PNGs of 512x512, 255 = hole, named by index 00000-11999 and ordered by hole ratio
    in groups of 2,000: 0-1999 -> 1-10 %, 2000-3999 -> 10-20 %, ... 10000-11999 -> 50-60 %.
    In each group the first 1,000 masks keep a 50 px margin free of holes (Liu et al.'s
    "border constraint") and the last 1,000 touch the border. The sample's PROVENANCE.md says
    the opposite; the files say this: every first-half sample mask has its nearest hole pixel
    exactly 50 px from the border and every second-half one has hole pixels on it.
Quick Draw Irregular Mask Dataset (Iskakov)
    512x512 PNGs, holes are black (0); no ratio bins are published.

Both are resized with ``cv2.INTER_AREA`` and thresholded at 128: an output pixel is a hole when
about half of the area it averages was hole, so the ratio survives up to edge effects (measured
on the NVIDIA sample: +0.005 on average, at most +0.013, at 256 px).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from inpaintflow.conventions import ConventionError, binarize, hole_ratio
from inpaintflow.tasks.masks.generators import RatioBin, format_ratio_bin

MASK_SUFFIXES = (".png", ".jpg", ".jpeg")

NVIDIA_N_MASKS = 12_000
NVIDIA_GROUP = 2_000  # masks per ratio bin; the first half of each group avoids the border
NVIDIA_BINS: tuple[RatioBin, ...] = ((0.01, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4),
                                     (0.4, 0.5), (0.5, 0.6))


@dataclass(frozen=True)
class ImportedMask:
    """A mask read from a published set.

    ``bin`` is the set's published ratio bin as ``"lo-hi"``, ``""`` when it publishes none;
    ``touches_border`` likewise is the set's own flag, None when it has none.
    """

    source: Path
    mask: np.ndarray  # uint8 (size, size), 1 = hole
    ratio: float
    bin: str
    touches_border: bool | None


def nvidia_bin_from_index(index: int) -> tuple[RatioBin, bool]:
    """Published ratio bin of NVIDIA test mask ``index``, and whether it touches the border."""
    if not 0 <= index < NVIDIA_N_MASKS:
        raise ValueError(f"NVIDIA test mask index must be in 0..{NVIDIA_N_MASKS - 1}, "
                         f"got {index}")
    group, position = divmod(index, NVIDIA_GROUP)
    return NVIDIA_BINS[group], position >= NVIDIA_GROUP // 2


def import_nvidia_mask(path: Path, size: int) -> ImportedMask:
    """NVIDIA test mask ``path`` (e.g. ``01200.png``) resized to ``size``; bin from its name."""
    path = Path(path)
    try:
        index = int(path.stem)
        ratio_bin, touches_border = nvidia_bin_from_index(index)
    except ValueError:
        raise ConventionError(f"{path}: an NVIDIA test mask is named by its index "
                              f"00000-11999") from None
    mask = binarize(_read_gray(path, size), hole_is_dark=False)
    return ImportedMask(path, mask, hole_ratio(mask), format_ratio_bin(ratio_bin), touches_border)


def import_quickdraw_mask(path: Path, size: int) -> ImportedMask:
    """Read a Quick Draw mask ``path`` (holes black), resized to ``size``; no published bin."""
    path = Path(path)
    mask = binarize(_read_gray(path, size), hole_is_dark=True)
    return ImportedMask(path, mask, hole_ratio(mask), "", None)


def iter_mask_files(root: Path) -> list[Path]:
    """Every .png/.jpg/.jpeg file under ``root``, recursively, sorted by relative path."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: mask folder not found")
    files = [p for p in root.rglob("*") if p.suffix.lower() in MASK_SUFFIXES and p.is_file()]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _read_gray(path: Path, size: int) -> np.ndarray:
    """A square mask file as 8-bit gray (RGB files converted), area-resized to ``size``."""
    if size < 1:
        raise ValueError(f"mask size must be >= 1, got {size}")
    gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if gray is None:
        raise ConventionError(f"{path}: not a readable image file")
    height, width = gray.shape
    if height != width:
        raise ConventionError(f"{path}: expected a square mask, got {width}x{height}")
    if size != width:
        gray = cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)
    return gray

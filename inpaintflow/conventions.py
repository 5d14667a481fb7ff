"""The one place that defines how images and masks are stored and held in memory.

Every module reads and writes images and masks through these functions, so a polarity or
range convention is converted exactly once, at the boundary (a file, or a paper's own model).

On disk
    mask file   single-channel 8-bit PNG, 255 = hole (missing), 0 = known
    image file  8-bit RGB PNG (lossless), RGB channel order
    damaged     an image file whose hole pixels are white (255): what a model is shown, and
                where blending takes its known pixels from

In memory
    mask        numpy ``uint8``/``bool`` or torch float, 1 = hole, 0 = known, shape (H, W)
    image       numpy ``uint8`` (H, W, 3) RGB for file-level work (datasets, metrics);
                torch float (B, 3, H, W) in [-1, 1], RGB inside a model

Papers' own conventions (converted only at their edges)
    R-MNet (000)              M = 1 means *known*      -> :func:`to_known_is_one`
    region-wise (003), GLA (004)  0 = hole           -> :func:`to_known_is_one`
    Quick Draw masks          holes are black (0)     -> converted on import
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

MASK_HOLE_VALUE = 255  # value of a hole pixel in a mask PNG
MASK_KNOWN_VALUE = 0
DAMAGED_HOLE_VALUE = 255  # hole pixels of a damaged image file (white, as in the papers' figures)
IMAGE_DTYPE = np.uint8
IMAGE_CHANNELS = 3  # RGB, never BGR outside cv2 calls


class ConventionError(ValueError):
    """A file or array does not follow the project's conventions; the message names it."""


# ---------------------------------------------------------------------------------------------
# atomic writes: temp file in the same directory + rename, so no half-written output survives


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp",
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_csv_atomic(path: str | os.PathLike, columns, rows) -> Path:
    """A CSV with a fixed column order and ``\n`` line ends: same rows, same bytes."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomic(path, buf.getvalue())


# ---------------------------------------------------------------------------------------------
# masks


def as_hole_mask(mask: np.ndarray, *, name: str = "mask") -> np.ndarray:
    """Validate an in-memory mask and return it as ``uint8`` with 1 = hole, 0 = known."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ConventionError(f"{name}: expected a (H, W) mask, got shape {mask.shape}")
    if mask.dtype == bool:
        return mask.astype(np.uint8)
    values = np.unique(mask)
    if not np.isin(values, (0, 1)).all():
        raise ConventionError(f"{name}: in-memory mask must hold only 0 and 1 (1 = hole), "
                              f"found values {values[:8].tolist()}")
    return mask.astype(np.uint8)


def hole_ratio(mask: np.ndarray) -> float:
    """Fraction of hole pixels of an in-memory mask (1 = hole)."""
    return float(np.count_nonzero(mask)) / mask.size


def encode_mask_png(mask: np.ndarray) -> bytes:
    """In-memory mask (1 = hole) -> bytes of the mask PNG (255 = hole). Deterministic bytes."""
    hole = as_hole_mask(mask)
    ok, buf = cv2.imencode(".png", hole * MASK_HOLE_VALUE, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise ConventionError("could not encode mask as PNG")
    return buf.tobytes()


def write_mask(path: str | os.PathLike, mask: np.ndarray) -> Path:
    """Write an in-memory mask (1 = hole) as a single-channel PNG (255 = hole), atomically."""
    return write_bytes_atomic(path, encode_mask_png(mask))


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask PNG (255 = hole, 0 = known) -> ``uint8`` (H, W), 1 = hole.

    Raises :class:`ConventionError` naming the file if it is unreadable, has several channels
    or holds values other than 0 and 255.
    """
    path = Path(path)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise ConventionError(f"{path}: not a readable image file")
    if raw.ndim != 2 or raw.dtype != np.uint8:
        raise ConventionError(f"{path}: a mask must be a single-channel 8-bit PNG, "
                              f"got shape {raw.shape} dtype {raw.dtype}")
    values = np.unique(raw)
    if not np.isin(values, (MASK_KNOWN_VALUE, MASK_HOLE_VALUE)).all():
        raise ConventionError(f"{path}: a mask must hold only 0 (known) and 255 (hole), "
                              f"found values {values[:8].tolist()}")
    return (raw == MASK_HOLE_VALUE).astype(np.uint8)


def binarize(gray: np.ndarray, *, hole_is_dark: bool, threshold: int = 128) -> np.ndarray:
    """A grayscale mask from elsewhere -> in-memory mask (1 = hole).

    ``hole_is_dark`` names the source's polarity (Quick Draw: holes are black).
    """
    if gray.ndim != 2:
        raise ConventionError(f"expected a single-channel mask, got shape {gray.shape}")
    hole = gray < threshold if hole_is_dark else gray >= threshold
    return hole.astype(np.uint8)


def to_known_is_one(hole_mask):
    """1 = hole -> 1 = known: the convention of R-MNet's M and the region-wise/GLA papers.

    Works on numpy arrays and torch tensors alike; call it only at a paper model's edge.
    """
    return 1 - hole_mask


# ---------------------------------------------------------------------------------------------
# images


def encode_image_png(image: np.ndarray) -> bytes:
    """RGB ``uint8`` (H, W, 3) -> PNG bytes (lossless, deterministic)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != IMAGE_CHANNELS or image.dtype != IMAGE_DTYPE:
        raise ConventionError(f"expected an RGB uint8 (H, W, 3) image, got shape {image.shape} "
                              f"dtype {image.dtype}")
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise ConventionError("could not encode image as PNG")
    return buf.tobytes()


def write_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an RGB ``uint8`` image as an 8-bit RGB PNG, atomically."""
    return write_bytes_atomic(path, encode_image_png(image))


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file written by :func:`write_image` -> RGB ``uint8`` (H, W, 3).

    Only the project's own RGB PNGs are read here; foreign files go through
    :func:`inpaintflow.tasks.data.prepare.decode_to_rgb8`, which converts grayscale, alpha, palette and 16-bit.
    """
    path = Path(path)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise ConventionError(f"{path}: not a readable image file")
    if raw.ndim != 3 or raw.shape[2] != 3 or raw.dtype != np.uint8:
        raise ConventionError(f"{path}: expected an 8-bit RGB image, got shape {raw.shape} "
                              f"dtype {raw.dtype}")
    return cv2.cvtColor(raw, cv2.COLOR_BGR2RGB)


def damage(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """RGB ``uint8`` image + mask (1 = hole) -> the damaged image file's pixels (holes white)."""
    out = np.array(image, copy=True)
    out[as_hole_mask(hole).astype(bool)] = DAMAGED_HOLE_VALUE
    return out


def composite_uint8(output: np.ndarray, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Known pixels from ``image``, hole pixels from ``output`` (uint8, (..., H, W, 3), mask
    (..., H, W) 1 = hole). The file-level twin of ``inpaintflow.models.common.compose``: the known pixels of
    a saved result are the input's bytes, whatever a model's float round trip did to them."""
    return np.where(np.asarray(hole, dtype=bool)[..., None], output, image)


def uint8_to_model(image):
    """RGB uint8 in [0, 255] -> float in [-1, 1] (numpy or torch, same layout)."""
    return image / 127.5 - 1.0


def model_to_uint8(x):
    """Float in [-1, 1] -> uint8 in [0, 255], rounded to nearest (not truncated), clipped.

    Accepts numpy arrays; torch tensors are converted by the caller with ``.cpu().numpy()``.
    """
    return np.clip(np.rint((np.asarray(x, dtype=np.float64) + 1.0) * 127.5), 0, 255).astype(np.uint8)

"""Dataset preparation maths: decode any image to RGB uint8, crop, resize, shard, manifest.

Pure functions over files; the Prefect tasks in :mod:`inpaintflow.flows.data` wrap them. Output layout::

    DIR/<split>/<id>.png      8-bit RGB PNG (conventions.write_image), ids 000000.. per split
    DIR/<split>/<id>.json     attributes (synthetic-faces only)
    DIR/manifest.csv          id, split, file, source, sha256, size   (written last)
    DIR/report.csv            source, reason   for every skipped input file
    DIR/dataset.json          dataset, params, split rule, counts per split

A bad input file (unreadable, truncated, not an image) is skipped and listed in report.csv;
the run never stops halfway over one file and never drops a file silently.
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
from PIL import Image

from inpaintflow.conventions import encode_image_png, write_bytes_atomic, write_csv_atomic, write_text_atomic
from inpaintflow.tasks.data.datasets import DatasetSpec, split_from_file
from inpaintflow.tasks.pipeline.caching import sha256_bytes

MANIFEST_COLUMNS = ("id", "split", "file", "source", "sha256", "size")
REPORT_COLUMNS = ("source", "reason")
SYNTHETIC_SPLIT_OFFSET = {"train": 0, "val": 1_000_000, "test": 2_000_000}  # disjoint seed streams
HIDDEN_OR_META = {".ds_store", "thumbs.db"}


class BadImageError(ValueError):
    """An input file is not a usable image; the message names the file and the problem."""


class EmptySourceError(ValueError):
    """The source holds no usable image; the message names the source."""


# ---------------------------------------------------------------------------------------------
# decoding: every foreign format becomes RGB uint8 here, and only here


def _bits_per_sample(data: bytes, im: Image.Image) -> int:
    """Bit depth from the file header: Pillow opens 16-bit RGB PNG/TIFF as 8-bit "RGB"."""
    if im.format == "PNG" and len(data) > 24:
        return data[24]  # IHDR bit depth: 8-byte signature, length, "IHDR", width, height
    if im.format == "TIFF":
        bps = im.tag_v2.get(258, 8)
        return max(bps) if isinstance(bps, tuple) else int(bps)
    return 16 if ";16" in im.mode or im.mode in ("I", "F") else 8


def decode_to_rgb8(data: bytes, name: str) -> np.ndarray:
    """Bytes of any image file -> RGB uint8 (H, W, 3).

    Grayscale is replicated, alpha dropped (datasets store opaque photos), palette expanded,
    16-bit scaled by 255/65535 with rounding. Truncated or corrupt files raise BadImageError:
    PIL's full decode catches truncation that cv2 would silently fill with grey. Each file is
    decoded once: by PIL, or by cv2 for 16-bit files, where PIL would truncate to 8 bits.
    """
    if not data:
        raise BadImageError(f"{name}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                deep = _bits_per_sample(data, im) > 8
                if deep:
                    im.verify()  # structure and CRCs; cv2 decodes the pixels below
                else:
                    im.load()  # raises on truncation
                    rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception as exc:  # PIL raises many types for bad files; each is a skip, not a crash
        raise BadImageError(f"{name}: not a readable image ({type(exc).__name__}: {exc})") from None
    if not deep:
        return rgb

    raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype != np.uint16:
        raise BadImageError(f"{name}: not a readable 16-bit image")
    scaled = np.rint(raw.astype(np.float64) * (255.0 / 65535.0)).astype(np.uint8)
    if scaled.ndim == 2:
        return np.repeat(scaled[:, :, None], 3, axis=2)
    return cv2.cvtColor(scaled[:, :, :3], cv2.COLOR_BGR2RGB)


# ---------------------------------------------------------------------------------------------
# geometry


def center_crop(image: np.ndarray, side: int) -> np.ndarray:
    """Centre crop to side x side, rounding offsets as DCGAN-tensorflow's ``center_crop``."""
    h, w = image.shape[:2]
    if side > min(h, w):
        raise BadImageError(f"image {w}x{h} is smaller than the {side}x{side} crop")
    top, left = int(round((h - side) / 2.0)), int(round((w - side) / 2.0))
    return image[top:top + side, left:left + side]


def crop_image(image: np.ndarray, rule: str) -> np.ndarray:
    if rule == "none":
        return image
    if rule == "center-square":
        return center_crop(image, min(image.shape[:2]))
    if rule == "dcgan-108":  # aligned CelebA 178x218 -> the face box Yeh et al. trained on
        return center_crop(image, 108)
    raise ValueError(f"unknown crop rule {rule!r}")


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize to size x size: cv2.INTER_AREA when shrinking (paper 000, s4.2).

    INTER_AREA degenerates to nearest-neighbour when enlarging, so SVHN's 32 -> 64 uses
    INTER_LINEAR instead (paper 002 does not say how it resized).
    """
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    interpolation = cv2.INTER_AREA if size <= min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


# ---------------------------------------------------------------------------------------------
# source items


@dataclass(frozen=True)
class SourceItem:
    """One input image: where it comes from and where it goes."""

    id: str  # output file stem, unique within its split
    split: str
    source: str  # human-readable origin, recorded in the manifest
    path: Path | None = None  # file to read; the cache key hashes its bytes
    member: int | None = None  # index inside a container file (SVHN .mat)
    generator_index: int | None = None  # synthetic-faces index


def list_source_files(root: Path) -> list[str]:
    """Every regular file under ``root`` as sorted relative POSIX paths (hidden files excepted)."""
    root = Path(root)
    names = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or p.name.lower() in HIDDEN_OR_META:
            continue
        if p.is_file():
            names.append(rel.as_posix())
    return sorted(names)


def _cap(count: int | dict[str, int] | None, split: str) -> int | None:
    if isinstance(count, dict):
        return count.get(split, 0)
    return count


def _number(items_by_split: dict[str, list[tuple[str, dict[str, Any]]]],
            count: int | dict[str, int] | None) -> list[SourceItem]:
    items = []
    for split in sorted(items_by_split):
        cap = _cap(count, split)
        for k, (source, extra) in enumerate(items_by_split[split][:cap]):
            items.append(SourceItem(id=f"{k:06d}", split=split, source=source, **extra))
    return items


def synthetic_items(count: int | dict[str, int], seed: int) -> list[SourceItem]:
    counts = count if isinstance(count, dict) else {"train": count, "test": max(1, count // 10)}
    items = []
    for split, n in sorted(counts.items()):
        if split not in SYNTHETIC_SPLIT_OFFSET:
            raise ValueError(f"synthetic-faces count: unknown split {split!r}; use train/val/test")
        for k in range(n):
            index = SYNTHETIC_SPLIT_OFFSET[split] + k
            items.append(SourceItem(id=f"{k:06d}", split=split,
                                    source=f"synthetic-faces:seed={seed}:index={index}",
                                    generator_index=index))
    return items


def folder_items(root: Path, spec: DatasetSpec, split_rule: str,
                 count: int | dict[str, int] | None) -> tuple[list[SourceItem], list[dict[str, str]]]:
    """Items of a folder source, split by the spec's rule; unassigned files are reported."""
    names = list_source_files(root)
    if not names:
        raise EmptySourceError(f"{root}: the source holds no files")
    splits = spec.splits[split_rule](names)
    by_split: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    skipped = []
    for name, split in zip(names, splits):
        if not split:
            skipped.append({"source": name, "reason": f"not under a split folder of rule {split_rule!r}"})
            continue
        by_split.setdefault(split, []).append((name, {"path": Path(root) / name}))
    return _number(by_split, count), skipped


def per_split_items(files: dict[str, Path], count: int | dict[str, int] | None) -> list[SourceItem]:
    """Items of sources that come one per split: a folder (all of it is that split) or an
    SVHN-style .mat file (one item per image of its array ``X``)."""
    by_split = {}
    for split, path in sorted(files.items()):
        path = Path(path)
        if path.is_dir():
            names = list_source_files(path)
            if not names:
                raise EmptySourceError(f"{path}: the {split} source holds no files")
            by_split[split] = [(f"{path.name}/{n}", {"path": path / n}) for n in names]
        else:
            n = load_mat_images(str(path)).shape[0]
            by_split[split] = [(f"{path.name}#{i}", {"path": path, "member": i}) for i in range(n)]
    return _number(by_split, count)


@lru_cache(maxsize=4)
def load_mat_images(path: str) -> np.ndarray:
    """SVHN .mat -> (N, 32, 32, 3) uint8 RGB (the file stores X as (32, 32, 3, N))."""
    from scipy.io import loadmat

    try:
        x = loadmat(path, variable_names=["X"])["X"]
    except Exception as exc:
        raise BadImageError(f"{path}: not a readable SVHN .mat file ({exc})") from None
    return np.ascontiguousarray(np.transpose(x, (3, 0, 1, 2))).astype(np.uint8)


def load_item(item: SourceItem, seed: int, size: int) -> tuple[np.ndarray, dict[str, Any] | None]:
    """Decoded RGB uint8 image of an item (full resolution), plus attributes if generated."""
    if item.generator_index is not None:
        from inpaintflow.tasks.data.synthetic_faces import synthetic_face

        image, attrs = synthetic_face(seed, item.generator_index, size)
        return image, attrs.to_dict()
    if item.member is not None:
        return load_mat_images(str(item.path))[item.member], None
    path = Path(item.path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadImageError(f"{item.source}: cannot read ({exc.strerror})") from None
    return decode_to_rgb8(data, item.source), None


def prepare_items(items: Sequence[SourceItem], *, crop: str, size: int, seed: int,
                  out_dir: Path) -> list[dict[str, Any]]:
    """Decode, crop, resize and write each item; a row per item, ``reason`` set when skipped."""
    rows = []
    for item in items:
        try:
            image, attrs = load_item(item, seed, size)
            image = resize_image(crop_image(image, crop), size)
        except BadImageError as exc:
            rows.append({"source": item.source, "reason": str(exc)})
            continue
        rel = f"{item.split}/{item.id}.png"
        png = encode_image_png(image)
        write_bytes_atomic(Path(out_dir) / rel, png)
        if attrs is not None:
            write_text_atomic(Path(out_dir) / item.split / f"{item.id}.json", json.dumps(attrs, sort_keys=True))
        rows.append({"id": item.id, "split": item.split, "file": rel, "source": item.source,
                     "sha256": sha256_bytes(png), "size": size})
    return rows


def shard(items: Sequence[SourceItem], shard_size: int) -> list[list[SourceItem]]:
    return [list(items[i:i + shard_size]) for i in range(0, len(items), shard_size)]


# ---------------------------------------------------------------------------------------------
# manifest


def write_manifest(out_dir: Path, rows: Sequence[dict[str, Any]], skipped: Sequence[dict[str, str]],
                   info: dict[str, Any]) -> Path:
    """Write report.csv, dataset.json and, last, manifest.csv; delete files of earlier runs."""
    out_dir = Path(out_dir)
    ok = sorted((r for r in rows if "reason" not in r), key=lambda r: (r["split"], r["id"]))
    bad = list(skipped) + [r for r in rows if "reason" in r]
    write_csv_atomic(out_dir / "report.csv", REPORT_COLUMNS, bad)
    if not ok:
        raise EmptySourceError(f"{info.get('source') or info['dataset']}: no usable image "
                               f"({len(bad)} skipped, see {out_dir / 'report.csv'})")
    keep = {r["file"] for r in ok} | {str(Path(r["file"]).with_suffix(".json")) for r in ok}
    for p in out_dir.rglob("*"):  # stale images of an earlier, larger run
        if p.is_file() and p.parent != out_dir and p.relative_to(out_dir).as_posix() not in keep:
            p.unlink()
    counts: dict[str, int] = {}
    for r in ok:
        counts[r["split"]] = counts.get(r["split"], 0) + 1
    info = {**info, "counts": counts, "skipped": len(bad)}
    write_text_atomic(out_dir / "dataset.json", json.dumps(info, indent=2, sort_keys=True) + "\n")
    manifest = out_dir / "manifest.csv"
    write_csv_atomic(manifest, MANIFEST_COLUMNS, ok)
    return manifest


def read_manifest(out_dir: Path) -> list[dict[str, str]]:
    path = Path(out_dir) / "manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no manifest (the dataset was not prepared, or not completely)")
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def uses_file_splits(spec: DatasetSpec, split_rule: str) -> bool:
    return spec.splits[split_rule] is split_from_file

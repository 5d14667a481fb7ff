"""Score from disk: inpainted PNGs against ground truth and masks, binned by the mask set's bins.

    pred_dir/NAME.png   inpainted images (RGB PNG)        paired by file name with
    gt_dir/NAME.png     ground-truth images (RGB PNG)
    masks_dir/NAME.png  evaluation masks (255 = hole); masks_dir/manifest.csv, if it has
                        ``file`` and ``bin`` columns, gives each mask's bin (else bin "all")

Writes, atomically and only after every input has been read and scored (no partial output):

    OUT.csv             one row per image, sorted by file: file, hole_ratio, bin, then
                        :data:`inpaintflow.tasks.evaluate.metrics.ALL_METRICS`, floats as ``{:.6f}`` (``inf``, ``nan``)
    OUT.summary.csv     :func:`inpaintflow.tasks.evaluate.metrics.summarise` rows, one per bin, then ``total``
    OUT.summary.json    the same numbers as {"bins": {bin: {...}}, "total": {...}}, sorted keys,
                        floats rounded to 6 decimals; ``inf`` and NaN are written as ``null``
                        (JSON has neither)

The same inputs give the same bytes. Metric definitions live in :mod:`inpaintflow.tasks.evaluate.metrics` only.
"""

from __future__ import annotations

import csv
import json
import math
import os
import struct
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from inpaintflow.conventions import (ConventionError, hole_ratio, read_image, read_mask,
                                     write_csv_atomic, write_text_atomic)
from inpaintflow.tasks.evaluate.metrics import ALL_METRICS, image_metrics, summarise, summary_columns

DEFAULT_BIN = "all"  # bin of every image when the mask set has no manifest
MANIFEST_NAME = "manifest.csv"
FLOAT_FORMAT = "{:.6f}"
JSON_DECIMALS = 6
PER_IMAGE_COLUMNS = ("file", "hole_ratio", "bin") + ALL_METRICS

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class EvaluationError(ValueError):
    """Inputs that cannot be scored; the message names the offending file and the problem."""


# helpers


def _png_size(path: Path) -> tuple[int, int]:
    """(height, width) from a PNG's IHDR chunk, without decoding the pixels."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError as err:
        raise EvaluationError(f"{path}: cannot be read ({err})") from err
    if len(head) < 24 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise EvaluationError(f"{path}: not a readable PNG file")
    width, height = struct.unpack(">II", head[16:24])
    return height, width


def _read_bins(masks_dir: Path, names: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Bin of each file name and the manifest's bin order; bin "all" without a usable manifest."""
    manifest = masks_dir / MANIFEST_NAME
    if not manifest.is_file():
        return {name: DEFAULT_BIN for name in names}, [DEFAULT_BIN]
    with open(manifest, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not {"file", "bin"} <= set(reader.fieldnames or ()):
            return {name: DEFAULT_BIN for name in names}, [DEFAULT_BIN]
        by_file = {row["file"]: row["bin"] for row in reader}
    bins = {}
    for name in names:
        if name not in by_file:
            raise EvaluationError(f"{masks_dir / name}: not listed in {manifest}, so its bin is unknown")
        bins[name] = by_file[name]
    order = list(dict.fromkeys(by_file.values()))
    return bins, order


def _check_pairs(pred_dir: Path, gt_dir: Path, masks_dir: Path) -> list[str]:
    """Sorted file names after checking that every prediction has a ground truth and a mask of
    its size, and that all share one size (so batches stack). Reads PNG headers only."""
    if not pred_dir.is_dir():
        raise EvaluationError(f"{pred_dir}: prediction directory does not exist")
    names = sorted(p.name for p in pred_dir.glob("*.png"))
    if not names:
        raise EvaluationError(f"{pred_dir}: no *.png predictions to score")
    reference: tuple[Path, tuple[int, int]] | None = None
    for name in names:
        pred, gt, mask = pred_dir / name, gt_dir / name, masks_dir / name
        for path, what in ((gt, "ground-truth image"), (mask, "mask")):
            if not path.is_file():
                raise EvaluationError(f"{path}: missing {what} for prediction {pred}")
        pred_size = _png_size(pred)
        for path in (gt, mask):
            size = _png_size(path)
            if size != pred_size:
                raise EvaluationError(f"size mismatch: {pred} is {pred_size[0]}x{pred_size[1]} but "
                                      f"{path} is {size[0]}x{size[1]} (HxW)")
        if reference is None:
            reference = (pred, pred_size)
        elif pred_size != reference[1]:
            raise EvaluationError(f"{pred}: size {pred_size[0]}x{pred_size[1]} differs from "
                                  f"{reference[0]} ({reference[1][0]}x{reference[1][1]}); "
                                  f"a scored set must share one size")
    return names


def _load(pred_dir: Path, gt_dir: Path, masks_dir: Path, name: str) -> tuple[np.ndarray, ...]:
    """(pred, gt, mask) arrays of one file name; convention errors re-raised naming the file."""
    try:
        pred = read_image(pred_dir / name)
        gt = read_image(gt_dir / name)
        mask = read_mask(masks_dir / name)
    except ConventionError as err:
        raise EvaluationError(str(err)) from err
    if pred.shape != gt.shape or mask.shape != gt.shape[:2]:
        raise EvaluationError(f"size mismatch after decoding: {pred_dir / name} {pred.shape}, "
                              f"{gt_dir / name} {gt.shape}, {masks_dir / name} {mask.shape}")
    return pred, gt, mask


def _batches(names: Sequence[str], batch_size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(names), batch_size):
        yield names[start:start + batch_size]


def _format(value: Any) -> Any:
    return FLOAT_FORMAT.format(value) if isinstance(value, float) else value


def _json_number(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, JSON_DECIMALS) if math.isfinite(value) else None
    return value


def _summary_paths(out_csv: Path) -> tuple[Path, Path]:
    stem = out_csv.name[: -len(out_csv.suffix)] if out_csv.suffix else out_csv.name
    return out_csv.with_name(f"{stem}.summary.csv"), out_csv.with_name(f"{stem}.summary.json")


# scoring


def score_images(pred_dir: Path, gt_dir: Path, masks_dir: Path, names: Sequence[str],
                 bins: dict[str, str], *, batch_size: int, device: torch.device) -> list[dict[str, Any]]:
    """Per-image metric rows, decoding and scoring ``batch_size`` images at a time."""
    rows = []
    for batch in _batches(names, batch_size):
        preds, gts, masks = zip(*(_load(pred_dir, gt_dir, masks_dir, name) for name in batch))
        # (B, H, W, 3) uint8 -> (B, 3, H, W); the metrics convert to float64 on the device
        pred = torch.from_numpy(np.stack(preds)).permute(0, 3, 1, 2).to(device)
        gt = torch.from_numpy(np.stack(gts)).permute(0, 3, 1, 2).to(device)
        hole = torch.from_numpy(np.stack(masks))[:, None].to(device)  # (B, 1, H, W)
        values = {m: v.cpu().tolist() for m, v in image_metrics(pred, gt, hole).items()}
        for i, name in enumerate(batch):
            row: dict[str, Any] = {"file": name, "hole_ratio": hole_ratio(masks[i]), "bin": bins[name]}
            row.update({m: float(values[m][i]) for m in ALL_METRICS})
            rows.append(row)
    return rows


def plan_scoring(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike,
                 masks_dir: str | os.PathLike) -> tuple[list[str], dict[str, str], list[str]]:
    """(sorted file names, bin of each, bin order) of a scoring run, after the pairing and size
    checks of :func:`evaluate_dirs`; reads PNG headers and the mask manifest only."""
    pred_dir, gt_dir, masks_dir = map(Path, (pred_dir, gt_dir, masks_dir))
    names = _check_pairs(pred_dir, gt_dir, masks_dir)
    bins, bin_order = _read_bins(masks_dir, names)
    return names, bins, bin_order


def write_scores(out_csv: str | os.PathLike, rows: Sequence[dict[str, Any]],
                 bin_order: Sequence[str]) -> tuple[Path, Path, Path]:
    """Write the per-image CSV and the summaries of ``rows`` (in file-name order); the same rows
    give the same bytes, however they were split into batches or tasks."""
    out_csv = Path(out_csv)
    summary = summarise(rows, "bin", order=list(bin_order))
    summary_csv, summary_json = _summary_paths(out_csv)
    write_csv_atomic(out_csv, PER_IMAGE_COLUMNS,
                     [{k: _format(v) for k, v in row.items()} for row in rows])
    write_csv_atomic(summary_csv, summary_columns("bin"),
                     [{k: _format(v) for k, v in group.items()} for group in summary])
    nested = {
        "bins": {g["bin"]: {k: _json_number(v) for k, v in g.items() if k != "bin"} for g in summary[:-1]},
        "total": {k: _json_number(v) for k, v in summary[-1].items() if k != "bin"},
    }
    write_text_atomic(summary_json, json.dumps(nested, sort_keys=True, indent=2, allow_nan=False) + "\n")
    return out_csv, summary_csv, summary_json


def evaluate_dirs(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike, masks_dir: str | os.PathLike,
                  out_csv: str | os.PathLike, *, batch_size: int = 32,
                  device: str | torch.device = "cpu") -> tuple[Path, Path, Path]:
    """Score every ``pred_dir/*.png`` against ``gt_dir`` and ``masks_dir`` (same file names).

    Returns the paths of the per-image CSV, ``<stem>.summary.csv`` and ``<stem>.summary.json``
    (formats: module docstring). Raises :class:`EvaluationError` naming the file on an empty
    prediction directory, a missing pair, a size mismatch, an unreadable image or a
    non-binary mask, before any output is written.
    """
    if batch_size < 1:
        raise EvaluationError(f"batch_size must be at least 1, got {batch_size}")
    names, bins, bin_order = plan_scoring(pred_dir, gt_dir, masks_dir)
    rows = score_images(Path(pred_dir), Path(gt_dir), Path(masks_dir), names, bins, batch_size=batch_size,
                        device=torch.device(device))
    return write_scores(out_csv, rows, bin_order)

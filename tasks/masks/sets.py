"""Fixed evaluation mask sets: generated from (family, size, bins, count, seed), or imported.

Output layout (DVC-versioned)::

    DIR/00000.png ...   mask PNGs (255 = hole), numbered across bins in the order of ``bins``
    DIR/manifest.csv    file, index, ratio, bin, family, seed, source, sha256  (written last)
    DIR/report.csv      source, reason   (imports: files skipped)

Mask ``i`` is drawn from ``mask_rng(seed, i)``, so a set is the same bytes whatever the
sharding, and a larger ``count`` only appends masks to each bin's numbering.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from inpaintflow.conventions import (ConventionError, encode_mask_png, hole_ratio, write_bytes_atomic,
                                     write_csv_atomic, write_text_atomic)
from inpaintflow.tasks.masks.generators import FAMILIES, in_bin, make_mask, parse_ratio_bin
from inpaintflow.tasks.pipeline.caching import sha256_bytes

MANIFEST_COLUMNS = ("file", "index", "ratio", "bin", "family", "seed", "source", "sha256")
FIXED_BIN = "fixed"  # bin label of the fixed-ratio patterns (paper 001's six, three-squares)
RATIO_FORMAT = "{:.6f}"  # fixed float format: the same masks give the same manifest bytes


def mask_jobs(family: str, count: int, bins: Sequence[str] | None) -> list[tuple[int, str | None]]:
    """(index, bin) of every mask of a generated set; fixed-ratio patterns have one bin, None."""
    if family not in FAMILIES:
        raise ValueError(f"unknown mask family {family!r}; known: {', '.join(sorted(FAMILIES))}")
    if not bins:
        if not FAMILIES[family].fixed_ratio:
            raise ValueError(f"family {family!r} needs a hole-ratio bin (--ratio LO-HI)")
        return [(i, None) for i in range(count)]
    return [(b * count + i, text) for b, text in enumerate(bins) for i in range(count)]


def _row(index: int, mask, bin_text: str, family: str, seed: int | str, source: str,
         out_dir: Path) -> dict[str, Any]:
    png = encode_mask_png(mask)
    name = f"{index:05d}.png"
    write_bytes_atomic(Path(out_dir) / name, png)
    return {"file": name, "index": index, "ratio": RATIO_FORMAT.format(hole_ratio(mask)),
            "bin": bin_text, "family": family, "seed": seed, "source": source, "sha256": sha256_bytes(png)}


def make_masks(family: str, size: int, seed: int, jobs: Sequence[tuple[int, str | None]],
               out_dir: Path) -> list[dict[str, Any]]:
    """Draw and write the masks of ``jobs``; each lands inside its bin or MaskRatioError."""
    rows = []
    for index, bin_text in jobs:
        ratio_bin = parse_ratio_bin(bin_text) if bin_text else None
        mask, ratio = make_mask(family, size, seed, index, ratio_bin)
        label = bin_text or FIXED_BIN
        rows.append(_row(index, mask, label, family, seed, f"{family}:seed={seed}:index={index}", out_dir))
    return rows


IMPORT_OBTAIN = {
    "quickdraw": "Quick Draw Irregular Mask Dataset (Iskakov 2018): https://github.com/karfly/qd-imd "
                 "(train/test zip archives of 512x512 PNGs, holes black); pass --source.",
    "nvidia": "NVIDIA Irregular Mask Dataset, testing set (Liu et al. 2018): "
              "https://nv-adlr.github.io/publication/partialconv-inpainting (mask.zip); pass --source.",
}


def _importer(family: str):
    from inpaintflow.tasks.masks.importers import import_nvidia_mask, import_quickdraw_mask

    return {"nvidia": import_nvidia_mask, "quickdraw": import_quickdraw_mask}[family]


def scan_imports(family: str, files: Sequence[Path], size: int, root: Path) -> list[dict[str, Any]]:
    """Convert external mask files and return their metadata only (source, ratio, bin), or a
    ``reason`` for a bad file. The masks themselves are written by :func:`write_imported`."""
    importer = _importer(family)
    rows = []
    for path in files:
        rel = Path(path).relative_to(root).as_posix()
        try:
            imported = importer(Path(path), size)
        except (ConventionError, ValueError) as exc:
            rows.append({"source": rel, "reason": str(exc)})
            continue
        rows.append({"source": rel, "ratio": imported.ratio, "bin": imported.bin})
    return rows


def select_imported(rows: Sequence[dict[str, Any]], bins: Sequence[str] | None, count: int | None
                    ) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    """(source, bin) of the masks to keep: by the importer's bin (NVIDIA's file index), else
    by hole ratio; at most ``count`` per bin, in sorted source order."""
    chosen: dict[str, list[str]] = {b: [] for b in bins or []}
    skipped = [{"source": r["source"], "reason": r["reason"]} for r in rows if "reason" in r]
    for row in (r for r in rows if "reason" not in r):
        if not bins:
            chosen.setdefault(row["bin"] or "all", []).append(row["source"])
            continue
        target = row["bin"] if row["bin"] in chosen else next(
            (b for b in bins if in_bin(row["ratio"], parse_ratio_bin(b))), None)
        if target is None:
            skipped.append({"source": row["source"],
                            "reason": f"hole ratio {row['ratio']:.4f} is in none of the bins {list(bins)}"})
        else:
            chosen[target].append(row["source"])
    return [(src, b) for b, group in chosen.items() for src in group[:count]], skipped


def write_imported(family: str, selected: Sequence[tuple[str, str]], size: int, root: Path,
                   out_dir: Path, start: int = 0) -> list[dict[str, Any]]:
    """Write the selected masks as ``start``, ``start + 1``, ...: a chunk of the selection
    starting at ``start`` writes the same files as the whole selection at once."""
    importer = _importer(family)
    return [_row(start + i, importer(Path(root) / src, size).mask, b, family, "", src, out_dir)
            for i, (src, b) in enumerate(selected)]


def write_mask_manifest(out_dir: Path, rows: Sequence[dict[str, Any]], skipped: Sequence[dict[str, str]],
                        info: dict[str, Any]) -> Path:
    out_dir = Path(out_dir)
    rows = sorted(rows, key=lambda r: r["index"])
    if not rows:
        raise ValueError(f"{info.get('source') or info['family']}: no mask was produced "
                         f"({len(skipped)} skipped, see {out_dir / 'report.csv'})")
    write_csv_atomic(out_dir / "report.csv", ("source", "reason"), skipped)
    keep = {r["file"] for r in rows}
    for p in out_dir.glob("*.png"):  # masks of an earlier, larger set
        if p.name not in keep:
            p.unlink()
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["bin"]] = counts.get(r["bin"], 0) + 1
    write_text_atomic(out_dir / "maskset.json", json.dumps({**info, "counts": counts}, indent=2, sort_keys=True) + "\n")
    manifest = out_dir / "manifest.csv"
    write_csv_atomic(manifest, MANIFEST_COLUMNS, rows)
    return manifest

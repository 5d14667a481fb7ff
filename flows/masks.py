"""Prefect flows: build a fixed evaluation mask set (``inpaintflow masks make|import``).

Generation is sharded and cached like dataset preparation (see flows/data.py): one task per
shard, on the Dask cluster when ``INPAINTFLOW_DASK_ADDRESS`` is set. Mask ``i`` depends on
(seed, i) alone, so the bytes do not depend on the shard size or the runner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from inpaintflow import conventions
from inpaintflow.flows.fetch import clear_manifest, fetch_file
from inpaintflow.tasks.data.datasets import DatasetSpec
from inpaintflow.tasks.data.sources import resolve_source
from inpaintflow.tasks.masks import generators, importers, sets
from inpaintflow.tasks.masks.importers import iter_mask_files
from inpaintflow.tasks.pipeline.caching import content_key, outputs_intact, run_verified, verified_results

_MASK_CODE = [generators, sets, conventions]


@task(cache_key_fn=content_key(code=_MASK_CODE, keep_paths=["out_dir"]), persist_result=True)
def make_mask_shard(family: str, size: int, seed: int, jobs: list[tuple[int, str | None]],
                    out_dir: Path) -> list[dict[str, Any]]:
    return sets.make_masks(family, size, seed, jobs, out_dir)


@task(cache_key_fn=content_key(code=[*_MASK_CODE, importers]), persist_result=True)
def scan_mask_shard(family: str, files: list[Path], size: int, root: Path) -> list[dict[str, Any]]:
    return sets.scan_imports(family, files, size, root)


@task(cache_policy=NO_CACHE)
def write_imported_masks(family: str, selected: list[tuple[str, str]], size: int, root: Path,
                         out_dir: Path, start: int) -> list[dict[str, Any]]:
    return sets.write_imported(family, selected, size, root, out_dir, start)


@task(cache_policy=NO_CACHE)
def write_mask_manifest(out_dir: Path, rows: list[dict[str, Any]], skipped: list[dict[str, str]],
                        info: dict[str, Any]) -> Path:
    return sets.write_mask_manifest(out_dir, rows, skipped, info)


@flow(name="make-masks", log_prints=True)
def make_mask_set(family: str, size: int, count: int, bins: list[str] | None, seed: int,
                  out_dir: Path, shard_size: int = 250) -> Path:
    out_dir = Path(out_dir).resolve()
    clear_manifest(out_dir)
    jobs = sets.mask_jobs(family, count, bins)
    shards = [jobs[i:i + shard_size] for i in range(0, len(jobs), shard_size)]
    print(f"{family}: {len(jobs)} masks {size}x{size}, bins {bins or 'fixed'}, seed {seed} -> {out_dir}")
    futures = [run_verified(make_mask_shard, lambda rows: outputs_intact(rows, out_dir),
                            family=family, size=size, seed=seed, jobs=s, out_dir=out_dir) for s in shards]
    rows = [row for shard_rows in verified_results(futures) for row in shard_rows]
    info = {"family": family, "size": size, "count_per_bin": count, "bins": bins, "seed": seed}
    return write_mask_manifest(out_dir, rows, [], info)


@flow(name="import-masks", log_prints=True)
def import_mask_set(family: str, source: str, size: int, out_dir: Path, bins: list[str] | None = None,
                    count: int | None = None, sha256: str | None = None, shard_size: int = 500) -> Path:
    """Import Quick Draw or NVIDIA masks from a folder, archive or URL (+ sha256)."""
    out_dir = Path(out_dir).resolve()
    clear_manifest(out_dir)
    spec = DatasetSpec(name=family, description=f"{family} masks", kind="local", crop="none", splits={},
                       obtain=sets.IMPORT_OBTAIN[family])
    root = resolve_source(spec, source, sha256, fetch=lambda url, dest, c: fetch_file(url, dest, c))
    files = iter_mask_files(root)
    if not files:
        raise ValueError(f"{source}: holds no mask image files")
    futures = [scan_mask_shard.submit(family, files[i:i + shard_size], size, root)
               for i in range(0, len(files), shard_size)]
    scanned = [row for f in futures for row in f.result()]
    selected, skipped = sets.select_imported(scanned, bins, count)
    futures = [write_imported_masks.submit(family, selected[i:i + shard_size], size, root, out_dir, i)
               for i in range(0, len(selected), shard_size)]
    rows = [row for f in futures for row in f.result()]
    print(f"{family}: imported {len(rows)} of {len(files)} masks -> {out_dir}" +
          (f"; skipped {len(skipped)}, see report.csv" if skipped else ""))
    info = {"family": family, "size": size, "bins": bins, "count_per_bin": count, "source": source}
    return write_mask_manifest(out_dir, rows, skipped, info)

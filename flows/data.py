"""Prefect flow: prepare one dataset (``inpaintflow data prepare``, DVC stage ``data``).

source -> (download, extract) -> items -> shards of decode/crop/resize/write -> manifest.
Shards are cached on the bytes of their input files (tasks/caching.py), so a rerun with nothing
changed completes from cache and an interrupted run redoes only unfinished shards. Shards are
tasks submitted together: threads here, or the Dask cluster that ``INPAINTFLOW_DASK_ADDRESS``
names (:func:`inpaintflow.runtime.task_runner`). Each image depends on its item alone (a
synthetic face on (seed, index)) and this process writes the manifest from the rows in item
order, so the bytes do not depend on the shard size or the runner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

import inpaintflow.conventions
import inpaintflow.tasks.prepare
import inpaintflow.tasks.synthetic_faces
from inpaintflow.params import DatasetParams
from inpaintflow.tasks.caching import content_key, outputs_intact, retry_transient, run_verified, verified_results
from inpaintflow.tasks.datasets import get_spec
from inpaintflow.tasks.download import Checksum, download
from inpaintflow.tasks.prepare import SourceItem
from inpaintflow.tasks.sources import resolve_source


@task(retries=3, retry_delay_seconds=[2, 10, 30], retry_condition_fn=retry_transient, cache_policy=NO_CACHE)
def fetch_file(url: str, dest: Path, checksum: Checksum | None) -> Path:
    """Download with resume; a cut connection keeps the .part and the retry continues it."""
    return download(url, dest, checksum)


@task(cache_key_fn=content_key(code=[inpaintflow.tasks.prepare, inpaintflow.tasks.synthetic_faces, inpaintflow.conventions],
                               keep_paths=["out_dir"]),
      persist_result=True)
def prepare_shard(items: list[SourceItem], crop: str, size: int, seed: int, out_dir: Path) -> list[dict[str, Any]]:
    return inpaintflow.tasks.prepare.prepare_items(items, crop=crop, size=size, seed=seed, out_dir=out_dir)


@task(cache_policy=NO_CACHE)
def write_manifest(out_dir: Path, rows: list[dict[str, Any]], skipped: list[dict[str, str]],
                   info: dict[str, Any]) -> Path:
    return inpaintflow.tasks.prepare.write_manifest(out_dir, rows, skipped, info)


def clear_manifest(out_dir: Path) -> None:
    """A manifest marks a complete output folder: there is none while a rebuild is under way."""
    stale = Path(out_dir) / "manifest.csv"
    if stale.exists():
        stale.unlink()


@flow(name="prepare-dataset", log_prints=True)
def prepare_dataset(params: DatasetParams, out_dir: Path, shard_size: int = 200) -> Path:
    """Build ``out_dir`` (images, manifest.csv, report.csv, dataset.json); returns the manifest."""
    spec = get_spec(params.dataset)
    split_rule = params.split or spec.default_split
    out_dir = Path(out_dir).resolve()
    clear_manifest(out_dir)

    skipped: list[dict[str, str]] = []
    if spec.kind == "generated":
        items = inpaintflow.tasks.prepare.synthetic_items(params.count, params.seed)
    else:
        root = resolve_source(spec, params.source, params.sha256,
                              fetch=lambda url, dest, checksum: fetch_file(url, dest, checksum))
        if isinstance(root, dict):
            items = inpaintflow.tasks.prepare.per_split_items(root, params.count)
        else:
            items, skipped = inpaintflow.tasks.prepare.folder_items(root, spec, split_rule, params.count)

    shards = inpaintflow.tasks.prepare.shard(items, shard_size)
    print(f"{spec.name}: {len(items)} images in {len(shards)} shards -> {out_dir}")
    futures = [run_verified(prepare_shard, lambda rows: outputs_intact([r for r in rows if "reason" not in r], out_dir),
                            items=s, crop=spec.crop, size=params.size, seed=params.seed, out_dir=out_dir)
               for s in shards]
    rows = [row for shard_rows in verified_results(futures) for row in shard_rows]
    info = {"dataset": spec.name, "split_rule": split_rule, "crop": spec.crop,
            "params": params.model_dump(mode="json"), "source": params.source}
    manifest = write_manifest(out_dir, rows, skipped, info)
    n_bad = len(skipped) + sum("reason" in r for r in rows)
    print(f"{spec.name}: wrote {manifest}" + (f"; skipped {n_bad} files, see report.csv" if n_bad else ""))
    return manifest

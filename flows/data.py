"""Prefect flow: prepare one dataset (``inpaintflow data prepare``, DVC stage ``data``).

source -> (download, extract) -> items -> shards of decode/crop/resize/write -> manifest.
Shards are cached on the bytes of their input files (tasks/pipeline/caching.py), so a rerun with nothing
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

from inpaintflow import conventions
from inpaintflow.flows.fetch import clear_manifest, fetch_file
from inpaintflow.params import DatasetParams
from inpaintflow.tasks.data import prepare, synthetic_faces
from inpaintflow.tasks.data.datasets import get_spec
from inpaintflow.tasks.data.prepare import SourceItem
from inpaintflow.tasks.data.sources import resolve_source
from inpaintflow.tasks.pipeline.caching import content_key, outputs_intact, run_verified, verified_results


@task(cache_key_fn=content_key(code=[prepare, synthetic_faces, conventions],
                               keep_paths=["out_dir"]),
      persist_result=True)
def prepare_shard(items: list[SourceItem], crop: str, size: int, seed: int, out_dir: Path) -> list[dict[str, Any]]:
    return prepare.prepare_items(items, crop=crop, size=size, seed=seed, out_dir=out_dir)


@task(cache_policy=NO_CACHE)
def write_manifest(out_dir: Path, rows: list[dict[str, Any]], skipped: list[dict[str, str]],
                   info: dict[str, Any]) -> Path:
    return prepare.write_manifest(out_dir, rows, skipped, info)


@flow(name="prepare-dataset", log_prints=True)
def prepare_dataset(params: DatasetParams, out_dir: Path, shard_size: int = 200) -> Path:
    """Build ``out_dir`` (images, manifest.csv, report.csv, dataset.json); returns the manifest."""
    spec = get_spec(params.dataset)
    split_rule = params.split or spec.default_split
    out_dir = Path(out_dir).resolve()
    clear_manifest(out_dir)

    skipped: list[dict[str, str]] = []
    if spec.kind == "generated":
        items = prepare.synthetic_items(params.count, params.seed)
    else:
        root = resolve_source(spec, params.source, params.sha256,
                              fetch=lambda url, dest, checksum: fetch_file(url, dest, checksum))
        if isinstance(root, dict):
            items = prepare.per_split_items(root, params.count)
        else:
            items, skipped = prepare.folder_items(root, spec, split_rule, params.count)

    shards = prepare.shard(items, shard_size)
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

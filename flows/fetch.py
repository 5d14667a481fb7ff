"""The Prefect pieces the data and masks flows share: a dataset source's files fetched with
retries, and the manifest cleared before a rebuild."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from inpaintflow.tasks.data.download import Checksum, download, retry_transient


@task(retries=3, retry_delay_seconds=[2, 10, 30], retry_condition_fn=retry_transient, cache_policy=NO_CACHE)
def fetch_file(url: str, dest: Path, checksum: Checksum | None) -> Path:
    """Download with resume; a cut connection keeps the .part and the retry continues it."""
    return download(url, dest, checksum)


def clear_manifest(out_dir: Path) -> None:
    """A manifest marks a complete output folder: there is none while a rebuild is under way."""
    stale = Path(out_dir) / "manifest.csv"
    if stale.exists():
        stale.unlink()

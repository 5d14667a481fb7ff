"""Prefect flow: Poisson-blend a directory of generated images into damaged ones (``inpaintflow blend``)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from tasks.poisson import blend_dirs


@task(cache_policy=NO_CACHE)
def blend_directory(generated: Path, damaged: Path, masks: Path, out: Path, operator: str) -> list[Path]:
    return blend_dirs(generated, damaged, masks, out, operator=operator)


@flow(name="blend", log_prints=True)
def blend_flow(generated: Path, damaged: Path, masks: Path, out: Path, operator: str = "five-point") -> int:
    written = blend_directory(generated, damaged, masks, out, operator)
    print(f"blended {len(written)} images ({operator}) -> {out}")
    return len(written)

"""Prefect flows: Poisson blending (``inpaintflow blend``; DVC stage ``blend``).

``blend_flow`` blends any directory of generated images into damaged ones (paired by name);
``blend_experiment_flow`` is the pipeline step: the results an inpaint run marks for blending.
"""

from __future__ import annotations

import json
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from inpaintflow.tasks.blend.poisson import blend_dirs, blend_experiment


@task(cache_policy=NO_CACHE)
def blend_directory(generated: Path, damaged: Path, masks: Path, out: Path, operator: str) -> list[Path]:
    return blend_dirs(generated, damaged, masks, out, operator=operator)


@flow(name="blend", log_prints=True)
def blend_flow(generated: Path, damaged: Path, masks: Path, out: Path, operator: str = "five-point") -> int:
    written = blend_directory(generated, damaged, masks, out, operator)
    print(f"blended {len(written)} images ({operator}) -> {out}")
    return len(written)


@task(cache_policy=NO_CACHE)
def blend_inpaint_run(experiment: Path, out: Path) -> Path:
    return blend_experiment(experiment, out)


@flow(name="blend-experiment", log_prints=True)
def blend_experiment_flow(experiment: Path, out: Path) -> Path:
    record = blend_inpaint_run(Path(experiment), Path(out))
    summary = json.loads(Path(record).read_text())
    done = ", ".join(f"{b['from']} -> {b['to']} ({b['images']} images)" for b in summary["blended"])
    print(f"{experiment}: {done or summary['note']} [{summary['operator']}] -> {out}")
    return Path(record)

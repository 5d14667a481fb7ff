"""Prefect flow: batch inpainting of one experiment (``inpaintflow inpaint``, DVC stage ``inpaint``).

One task: inpainting a test split is one logical step with one output directory. It is not
cached by Prefect (the DVC stage guards it) and not retried; a killed run resumes batch by
batch from the results already on disk (tasks/inpaint/batch.py).
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from inpaintflow.tasks.inpaint.batch import InpaintSettings, run_experiment


@task(cache_policy=NO_CACHE, retries=0)
def inpaint_split(settings: InpaintSettings) -> Path:
    return run_experiment(settings)


@flow(name="inpaint", log_prints=True)
def inpaint_flow(settings: InpaintSettings) -> Path:
    return inpaint_split(settings)

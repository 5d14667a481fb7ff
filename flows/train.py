"""Prefect flow: train one paper's model (``inpaintflow train``, DVC stage ``train``).

One task, because training is one logical step with one side effect (the run directory). It
is never retried (a failed run resumes from its checkpoint instead) and not cached by Prefect:
the DVC stage guards it, and its checkpoint is its resume point.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from inpaintflow.tasks.train.engine import TrainSettings, train


@task(cache_policy=NO_CACHE, retries=0)
def train_model(settings: TrainSettings, resume: bool | str) -> Path:
    result = train(settings, resume=resume)
    print(f"{settings.model}: {result.steps} steps, {result.images_per_s:.1f} img/s, "
          f"losses {result.losses} -> {result.checkpoint}")
    return result.checkpoint


@flow(name="train", log_prints=True)
def train_flow(settings: TrainSettings, resume: bool | str = False) -> Path:
    return train_model(settings, resume)

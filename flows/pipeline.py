"""Prefect flow: one paper's whole pipeline (``inpaintflow pipeline PAPER``).

The same stages as ``dvc repro table@<paper>``, for users who drive runs from Prefect: one task
per DVC stage (tasks/pipeline/stages.py plans them from params.yaml and dvc.yaml), run one after another,
each as ``dvc repro --single-item <stage>`` through tasks/pipeline/dvc.py ``run_dvc``, which holds the
repository's lock (DVC allows one repro per repository; a nightly run or a user's own ``dvc`` in
another process waits its turn instead of failing). DVC stays the judge of what is stale and
records every run in dvc.lock, so ``dvc status`` and ``dvc repro`` agree with this flow.

Task caching, and why the key comes from DVC. DVC reruns a stage when its command, a dependency,
a params value or the set of deps/outs changed, or an output is missing or modified (a fresh
clone, a deleted ``results/<paper>``, a ``cache: false`` output edited by hand). A key computed
here from file contents would re-implement those rules (directory hashes, ``persist``,
``cache: false``, dependencies on folders other stages write into) and hash gigabytes of data
at paper scale, yet would still need DVC's verdict on the outputs. So the key function asks DVC
directly: ``dvc status --json <stage>`` (about 1-2 s, what a no-op ``dvc repro`` of one stage
costs).

* DVC lists any change for the stage: the key is None, so the task runs and is not cached.
* DVC reports the stage up to date: its dvc.lock record (the md5 of every dependency and output,
  the params values, the command) then describes the current state exactly, and the key is the
  sha256 of (repository, stage, that record). A hit means this flow has already reproduced the
  stage in exactly this state and DVC confirms nothing needs doing: Prefect marks it *Cached*
  and skips ``dvc repro``.

So a skip always rests on DVC's own check made at that moment; the price is that the first
flow run after a change runs the stage, the next one finds it up to date and records it (a
no-op ``dvc repro``), and later runs show it Cached.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task

from inpaintflow.runtime import project_root
from inpaintflow.tasks.pipeline.dvc import run_dvc
from inpaintflow.tasks.pipeline.stages import lock_entry, paper_stages, parse_status, state_fingerprint


def stage_state(stage: str, repo: Path) -> tuple[list[Any], str | None]:
    """What DVC reports as changed for ``stage`` ([] = up to date), and when up to date the
    fingerprint of its dvc.lock record (the cache key; see the module docstring)."""
    repo = Path(repo)
    changes = parse_status(run_dvc(["status", "--json", stage], repo).stdout, stage)
    if changes:
        return changes, None
    entry = lock_entry(repo / "dvc.lock", stage)
    return changes, None if entry is None else state_fingerprint(stage, entry, repo)


def stage_cache_key(context: Any, parameters: dict[str, Any]) -> str | None:
    """Prefect ``cache_key_fn``: None (run, cache nothing) unless DVC reports the stage up to date."""
    stage = parameters["stage"]
    changes, key = stage_state(stage, parameters["repo"])
    if changes:
        get_run_logger().info("%s: DVC reports %s", stage, json.dumps(changes, separators=(",", ":")))
    return key


@task(name="dvc-stage", task_run_name="{stage}", cache_key_fn=stage_cache_key, persist_result=True,
      retries=0)  # a failed stage is a real failure (training, a missing source): never retried
def repro_stage(stage: str, repo: Path) -> list[str]:
    """``dvc repro --single-item STAGE``, DVC's output streamed to the task log; returns the
    stage's outputs as dvc.lock records them."""
    run_dvc(["repro", "--single-item", stage], repo, log=get_run_logger().info)
    entry = lock_entry(Path(repo) / "dvc.lock", stage) or {}
    return [out["path"] for out in entry.get("outs") or []]  # metrics and plots included


@flow(name="paper-pipeline", flow_run_name="{paper}", log_prints=True)
def paper_pipeline(paper: str, repo: Path | None = None) -> list[dict[str, Any]]:
    """Reproduce ``table@<paper>`` and everything upstream of it in ``repo`` (default: the
    project around the working directory). Returns one record per stage: name, cached, seconds,
    outputs."""
    root = Path(repo).resolve() if repo is not None else project_root()
    stages = paper_stages(paper, root / "params.yaml", root / "dvc.yaml")
    logger = get_run_logger()
    logger.info("paper %s: %d stages in %s: %s", paper, len(stages), root, ", ".join(stages))
    start = time.monotonic()
    records = []
    for i, stage in enumerate(stages, 1):
        tag = f"[{i}/{len(stages)}] {stage}"
        logger.info("%s: start", tag)
        began = time.monotonic()
        state = repro_stage(stage, root, return_state=True)
        seconds = time.monotonic() - began
        try:
            outs = state.result()
        except Exception:
            logger.error("%s: failed after %.1f s", tag, seconds)
            raise
        cached = state.name == "Cached"
        logger.info("%s: %s in %.1f s (%.1f s so far)", tag, "cached, up to date" if cached else "done",
                    seconds, time.monotonic() - start)
        records.append({"stage": stage, "cached": cached, "seconds": round(seconds, 1), "outs": outs})
    ran = [r["stage"] for r in records if not r["cached"]]
    logger.info("paper %s: %d stages in %.1f s (%d cached)%s", paper, len(records), time.monotonic() - start,
                len(records) - len(ran), f"; ran {', '.join(ran)}" if ran else "")
    return records

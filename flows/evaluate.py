"""Prefect flows: score results from disk (``inpaintflow evaluate``, DVC stage ``evaluate``).

Metric definitions live in tasks/evaluate/metrics.py alone; these flows only pair files and write tables.
Each result directory is scored in chunks of images, one task per chunk, submitted together
with the FID tasks so that a Dask task runner (``INPAINTFLOW_DASK_ADDRESS``,
:func:`inpaintflow.runtime.task_runner`) spreads them over its workers. The flow gathers the
rows in file-name order and writes every table itself: the bytes do not depend on the runner
or the chunk size (per-image metrics do not depend on the batch an image is scored in).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture

from inpaintflow.tasks.evaluate.fid import fid_between_dirs
from inpaintflow.tasks.evaluate.scores import read_experiment, scored_results, slug, write_metrics
from inpaintflow.tasks.evaluate.scoring import EvaluationError, plan_scoring, score_images, write_scores

CHUNK_SIZE = 256  # images per scoring task: a few seconds of CPU at 256 px, few tasks per set


def _num(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


@task(cache_policy=NO_CACHE)
def check_pairs(pred: Path, gt: Path, masks: Path) -> tuple[list[str], dict[str, str], list[str]]:
    return plan_scoring(pred, gt, masks)


@task(cache_policy=NO_CACHE)
def score_chunk(pred: Path, gt: Path, masks: Path, names: list[str], bins: dict[str, str], batch_size: int,
                device: str) -> list[dict[str, Any]]:
    return score_images(pred, gt, masks, names, bins, batch_size=batch_size, device=torch.device(device))


@task(cache_policy=NO_CACHE)
def fid_directory(pred: Path, gt: Path, weights: str | None, batch_size: int, device: str) -> dict[str, Any]:
    return fid_between_dirs(pred, gt, weights, batch_size=batch_size, device=device)


@dataclass
class _Scoring:
    """One result directory's chunk tasks in flight, and where their rows go."""

    out_csv: Path
    bin_order: list[str]
    chunks: list[PrefectFuture]

    def write(self) -> dict[str, Any]:
        """Wait for every chunk, write the CSVs and summary; returns the summary."""
        rows = [row for chunk in self.chunks for row in chunk.result()]
        _, _, summary_json = write_scores(self.out_csv, rows, self.bin_order)
        return json.loads(summary_json.read_text())


def submit_scoring(pred: Path, gt: Path, masks: Path, out_csv: Path, batch_size: int, device: str,
                   chunk_size: int) -> _Scoring:
    """Check the pairs in this process (PNG headers only, so a bad set fails before any scoring),
    then submit one scoring task per ``chunk_size`` images."""
    for name, value in (("batch_size", batch_size), ("chunk_size", chunk_size)):
        if value < 1:
            raise EvaluationError(f"{name} must be at least 1, got {value}")
    names, bins, bin_order = check_pairs(pred, gt, masks)
    chunks = [names[i:i + chunk_size] for i in range(0, len(names), chunk_size)]
    return _Scoring(Path(out_csv), bin_order,
                    [score_chunk.submit(pred, gt, masks, chunk, {n: bins[n] for n in chunk}, batch_size, device)
                     for chunk in chunks])


@flow(name="evaluate", log_prints=True)
def evaluate_flow(pred: Path, gt: Path, masks: Path, out: Path, batch_size: int = 32, fid: bool = False,
                  inception_weights: str | None = None, device: str = "cpu", chunk_size: int = CHUNK_SIZE) -> Path:
    scoring = submit_scoring(pred, gt, masks, out, batch_size, device, chunk_size)
    fid_future = fid_directory.submit(pred, gt, inception_weights, batch_size, device) if fid else None
    total = scoring.write()["total"]
    print(f"{pred}: {total['count']} images; MAE {_num(total['mae_mean'])}, PSNR {_num(total['psnr_mean'])} dB "
          f"(per image) / {_num(total['psnr_of_mean_mse'])} dB (set), SSIM {_num(total['ssim_mean'], '.4f')} -> {out}")
    if fid_future is not None:
        result = fid_future.result()
        print(f"FID {result['fid']:.3f}" if result["fid"] is not None else f"FID n/a: {result['reason']}")
    return Path(out)


@flow(name="evaluate-experiment", log_prints=True)
def evaluate_experiment_flow(experiment: Path, out: Path, metrics: Path | None = None, batch_size: int = 32,
                             inception_weights: str | None = None, device: str = "cpu", blend: Path | None = None,
                             chunk_size: int = CHUNK_SIZE) -> Path:
    """Score every result an inpaint run lists (model, refinement stages, baselines) and FID;
    latent methods' results are scored as the blend step (``blend``) wrote them. Per-image CSVs
    go to ``out``, the summary for ``dvc metrics`` and the tables to ``metrics``."""
    experiment, out = Path(experiment), Path(out)
    metrics = Path(metrics) if metrics else out / "metrics.json"
    record = read_experiment(experiment)
    submitted = []
    for result, pred in scored_results(experiment, Path(blend) if blend else None):
        name = slug(result["method"], result["stage"])  # everything in flight before the first wait
        scoring = submit_scoring(pred, experiment / "target", experiment / "masks", out / f"{name}.csv",
                                 batch_size, device, chunk_size)
        fid = fid_directory.submit(pred, experiment / "target", inception_weights, batch_size, device)
        submitted.append((result, name, scoring, fid))
    results = []
    for result, name, scoring, fid_future in submitted:
        scores, fid = scoring.write(), fid_future.result()
        results.append({**result, "slug": name, "fid": fid["fid"], "fid_reason": fid["reason"],
                        "inception_weights": fid["weights"], "total": scores["total"], "bins": scores["bins"]})
        print(f"{result['method']}{' ' + result['stage'] if result['stage'] else ''}: "
              f"PSNR {_num(scores['total']['psnr_mean'])} dB, SSIM {_num(scores['total']['ssim_mean'], '.4f')}, "
              f"FID {_num(fid['fid'])}")
    return write_metrics(metrics, record, results)

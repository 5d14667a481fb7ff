"""Prefect flows: score results from disk (``inpaintflow evaluate``, DVC stage ``evaluate``).

Metric definitions live in tasks/metrics.py alone; these flows only pair files and write tables.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from tasks.evaluate import evaluate_dirs
from tasks.fid import fid_between_dirs
from tasks.scores import read_experiment, slug, write_metrics


def _num(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


@task(cache_policy=NO_CACHE)
def score_directory(pred: Path, gt: Path, masks: Path, out_csv: Path, batch_size: int, device: str) -> Path:
    csv_path, _, summary_json = evaluate_dirs(pred, gt, masks, out_csv, batch_size=batch_size, device=device)
    return summary_json


@task(cache_policy=NO_CACHE)
def fid_directory(pred: Path, gt: Path, weights: str | None, batch_size: int, device: str) -> dict[str, Any]:
    return fid_between_dirs(pred, gt, weights, batch_size=batch_size, device=device)


@flow(name="evaluate", log_prints=True)
def evaluate_flow(pred: Path, gt: Path, masks: Path, out: Path, batch_size: int = 32, fid: bool = False,
                  inception_weights: str | None = None, device: str = "cpu") -> Path:
    summary = score_directory(pred, gt, masks, out, batch_size, device)
    total = json.loads(Path(summary).read_text())["total"]
    print(f"{pred}: {total['count']} images; MAE {_num(total['mae_mean'])}, PSNR {_num(total['psnr_mean'])} dB "
          f"(per image) / {_num(total['psnr_of_mean_mse'])} dB (set), SSIM {_num(total['ssim_mean'], '.4f')} -> {out}")
    if fid:
        result = fid_directory(pred, gt, inception_weights, batch_size, device)
        print(f"FID {result['fid']:.3f}" if result["fid"] is not None else f"FID n/a: {result['reason']}")
    return Path(out)


@flow(name="evaluate-experiment", log_prints=True)
def evaluate_experiment_flow(experiment: Path, out: Path, metrics: Path | None = None, batch_size: int = 32,
                             inception_weights: str | None = None, device: str = "cpu") -> Path:
    """Score every result an inpaint run lists (model, refinement stages, baselines) and FID;
    per-image CSVs go to ``out``, the summary for ``dvc metrics`` and the tables to ``metrics``."""
    experiment, out = Path(experiment), Path(out)
    metrics = Path(metrics) if metrics else out / "metrics.json"
    record = read_experiment(experiment)
    results = []
    for result in record["results"]:
        name = slug(result["method"], result["stage"])
        pred = experiment / result["dir"]
        summary = score_directory(pred, experiment / "target", experiment / "masks", out / f"{name}.csv",
                                  batch_size, device)
        scores = json.loads(Path(summary).read_text())
        fid = fid_directory(pred, experiment / "target", inception_weights, batch_size, device)
        results.append({**result, "slug": name, "fid": fid["fid"], "fid_reason": fid["reason"],
                        "inception_weights": fid["weights"], "total": scores["total"], "bins": scores["bins"]})
        print(f"{result['method']}{' ' + result['stage'] if result['stage'] else ''}: "
              f"PSNR {_num(scores['total']['psnr_mean'])} dB, SSIM {_num(scores['total']['ssim_mean'], '.4f')}, "
              f"FID {_num(fid['fid'])}")
    return write_metrics(metrics, record, results)

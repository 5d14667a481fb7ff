"""Metric regressions (tasks/tables/regression.py) and the nightly run's pure helpers (tasks/pipeline/nightly.py)."""

import datetime as dt
import math
from pathlib import Path

import pytest

from inpaintflow.params import Tolerances
from inpaintflow.tasks.evaluate.metrics import HIGHER_IS_BETTER
from inpaintflow.tasks.pipeline.nightly import (Remote, commit_paths, default_remote, lock_outputs, pipeline_owned,
                                                run_date)
from inpaintflow.tasks.tables.regression import compare_files, compare_scores, metric_of

TOL = {"psnr": 0.5, "ssim": 0.01, "mae": 1.0, "mse": 25.0, "l1": 0.004, "l2": 0.0004, "fid": 1.0}


def scores(psnr=20.0, ssim=0.8, mae=9.5, hole_psnr=12.0, fid=None, std=4.0):
    """The shape of runs/metrics/<experiment>.json (tasks/evaluate/scoring.py)."""
    total = {"count": 40, "psnr_mean": psnr, "psnr_std": std, "psnr_of_mean_mse": psnr - 1.5,
             "ssim_mean": ssim, "mae_mean": mae, "hole_psnr_mean": hole_psnr}
    return {"experiment": {"label": "R-MNet-0.4", "pairs": 40},
            "results": [{"method": "R-MNet-0.4", "fid": fid, "total": total,
                         "bins": {"0.01-0.6": dict(total)}},
                        {"method": "Telea (cv2)", "fid": None, "total": dict(total, psnr_mean=18.0)}]}


def test_every_tolerance_has_a_direction_and_back():
    assert set(Tolerances.model_fields) == set(HIGHER_IS_BETTER)
    assert HIGHER_IS_BETTER["psnr"] and HIGHER_IS_BETTER["ssim"]
    assert not any(HIGHER_IS_BETTER[m] for m in ("mae", "mse", "l1", "l2", "fid"))


@pytest.mark.parametrize("key, metric", [
    ("psnr_mean", "psnr"), ("hole_psnr_mean", "psnr"), ("psnr_of_mean_mse", "psnr"),
    ("hole_psnr_of_mean_mse", "psnr"), ("ssim_mean", "ssim"), ("hole_l2_mean", "l2"), ("fid", "fid"),
    ("psnr_std", None), ("count", None), ("hole_ssim_count", None), ("pairs", None), ("lpips_mean", None),
])
def test_metric_keys(key, metric):
    assert metric_of(key) == metric


def test_identical_scores_change_nothing():
    assert compare_scores(scores(), scores(), "m.json", TOL) == []


def test_direction_and_tolerance_per_metric():
    # psnr -0.6 dB (tolerance 0.5): regressed; ssim -0.005 (0.01): within; mae +2.0 (1.0): regressed
    changes = compare_scores(scores(), scores(psnr=19.4, ssim=0.795, mae=11.5), "m.json", TOL)
    regressed = {(c.key, c.metric) for c in changes if c.regressed}
    assert ("results[R-MNet-0.4].total.psnr_mean", "psnr") in regressed
    assert ("results[R-MNet-0.4].total.mae_mean", "mae") in regressed
    assert not any(metric == "ssim" for _, metric in regressed)
    psnr = next(c for c in changes if c.key == "results[R-MNet-0.4].total.psnr_mean")
    assert psnr.old == 20.0 and psnr.new == 19.4 and psnr.delta == pytest.approx(-0.6) and psnr.tolerance == 0.5
    assert all(not c.key.endswith("_std") for c in changes)  # spread is not quality


def test_improvements_never_regress():
    changes = compare_scores(scores(), scores(psnr=25.0, ssim=0.95, mae=2.0, hole_psnr=30.0), "m.json", TOL)
    assert changes and not any(c.regressed for c in changes)


def test_a_drop_of_exactly_the_tolerance_passes():
    changes = compare_scores(scores(psnr=20.1), scores(psnr=19.6), "m.json", TOL)  # 0.5 in decimal
    assert changes and not any(c.regressed for c in changes)


def test_a_value_that_disappears_regresses_one_that_appears_does_not():
    old, new = scores(fid=30.0), scores(fid=None)
    lost = [c for c in compare_scores(old, new, "m.json", TOL) if c.regressed]
    assert [(c.key, c.new) for c in lost] == [("results[R-MNet-0.4].fid", None)]
    assert "missing" in lost[0].describe()
    gained = compare_scores(scores(fid=None), scores(fid=30.0), "m.json", TOL)
    assert [c.key for c in gained] == ["results[R-MNet-0.4].fid"] and not gained[0].regressed
    nan = compare_scores(scores(psnr=math.nan), scores(psnr=math.nan), "m.json", TOL)
    assert nan == []


def test_infinite_psnr():
    assert compare_scores(scores(psnr=math.inf), scores(psnr=math.inf), "m.json", TOL) == []
    assert [c.regressed for c in compare_scores(scores(psnr=math.inf), scores(psnr=40.0), "m.json", TOL)
            if c.key.endswith("total.psnr_mean")] == [True]


def test_report_names_file_key_values_delta_and_tolerance():
    comparison = compare_files({"runs/metrics/a.json": scores(), "runs/metrics/new.json": None},
                               {"runs/metrics/a.json": scores(psnr=18.0, ssim=0.805),
                                "runs/metrics/new.json": scores()}, TOL)
    assert comparison.no_baseline == ["runs/metrics/new.json"]
    report = comparison.report()
    line = next(l for l in report.splitlines() if "total.psnr_mean" in l and "R-MNet" in l)
    assert line.strip() == ("runs/metrics/a.json results[R-MNet-0.4].total.psnr_mean: psnr 20 -> 18 (-2); "
                            "higher is better, tolerance 0.5")
    assert report.index("regressed") < report.index("within tolerance")  # regressions first
    assert "no committed baseline for: runs/metrics/new.json" in report
    assert "+0.005" in report  # ssim's improvement is listed too


def test_a_vanished_score_file_regresses():
    comparison = compare_files({"runs/metrics/a.json": scores()}, {}, TOL)
    assert comparison.regressions and all(c.new is None for c in comparison.regressions)


def test_remote_values_and_local_paths(tmp_path):
    listed = "remote.local.url=/srv/dvc remote\ncore.analytics=false\ncore.remote=local\nremote.s3.url=s3://b/p\n"
    assert default_remote(listed) == Remote("local", "/srv/dvc remote")
    assert default_remote("WARNING: x=y\ncore.remote=s3\nremote.s3.url=s3://b/p\n") == Remote("s3", "s3://b/p")
    assert default_remote("core.analytics=false\nremote.local.url=/srv\n") is None
    assert Remote("s3", "s3://bucket/inpaintflow").local_path(tmp_path) is None
    assert Remote("local", "../dvc-remote").local_path(tmp_path) == (tmp_path / "dvc-remote").resolve()
    assert Remote("local", "/srv/x").local_path(tmp_path) == Path("/srv/x")
    assert Remote("f", "file:///srv/x").local_path(tmp_path) == Path("/srv/x")


def test_outputs_owned_and_committed():
    lock = {"schema": "2.0", "stages": {
        "data@faces": {"outs": [{"path": "data/datasets/faces", "md5": "x"}]},
        "table@rmnet": {"outs": [{"path": "results/rmnet"}, {"path": "results/summary-rmnet.json"}]},
        "train@rm": {"outs": [{"path": "runs/rm/checkpoint.pt"}, {"path": "runs/rm/train.json"}]}}}
    outputs = lock_outputs(lock)
    assert outputs == ["data/datasets/faces", "results/rmnet", "results/summary-rmnet.json",
                       "runs/rm/checkpoint.pt", "runs/rm/train.json"]
    assert pipeline_owned("results/rmnet/table-1.csv", outputs) and pipeline_owned("dvc.lock", outputs)
    assert pipeline_owned("data/datasets/.gitignore", outputs) and pipeline_owned("runs/rm/.gitignore", outputs)
    assert not pipeline_owned("params.yaml", outputs) and not pipeline_owned("results/rmnet2/x", outputs)
    assert not pipeline_owned("tasks/.gitignore", outputs)
    ignored = {"data/datasets/faces", "runs/rm/checkpoint.pt"}
    paths = commit_paths(outputs, ignored, exists=lambda p: p != "results/summary-rmnet.json")
    assert paths == ["dvc.lock", "data/datasets/.gitignore", "results/rmnet", "runs/rm/.gitignore",
                     "runs/rm/train.json"]


def test_run_date_is_the_day_in_the_schedule_zone():
    late = dt.datetime(2026, 1, 1, 23, 30, tzinfo=dt.timezone.utc)
    assert run_date(late, "UTC") == "2026-01-01"
    assert run_date(late, "Europe/Berlin") == "2026-01-02"
    assert run_date(dt.datetime(2026, 1, 1, 2, 0), "UTC") == "2026-01-01"  # naive = UTC

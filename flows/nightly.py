"""Prefect flow and deployment: nightly retraining (``nightly-retrain``; docs/nightly.md).

One run, in the DVC + git repository ``repo``, with the settings of params.yaml ``nightly``:

1. ``dvc pull`` the selected papers' pipelines from the default DVC remote (skipped, with a
   log line, when there is none or it is empty), so that unchanged stages are not rerun;
2. ``dvc repro table@<paper>`` for each paper, one after another;
3. every experiment's ``runs/metrics/<paper>/<experiment>.json`` against the last commit's,
   metric by metric, direction-aware, with the per-metric tolerances (tasks/tables/regression.py);
4. within tolerance: ``dvc push`` (when there is a remote and ``push`` is on), then commit
   dvc.lock and the git-tracked outputs on the branch ``<branch_prefix><date>``; otherwise the
   run fails with a report of every metric that moved too far.

The date is the day of the run's scheduled start in the schedule's time zone (``date``
overrides it). Every DVC command goes through inpaintflow.tasks.pipeline.dvc.run_dvc, one at a time per repository.
The deployment is declared twice, here (:func:`build_deployment`, `inpaintflow schedule serve`)
and in prefect.yaml (`prefect deploy`); tests/test_nightly.py checks that both agree.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.schedules import Cron

from inpaintflow.params import NightlyParams, active_profile, load_entry, load_group, read_yaml
from inpaintflow.tasks.pipeline import git as gitops
from inpaintflow.tasks.pipeline.dvc import run_dvc
from inpaintflow.tasks.pipeline.nightly import (LOCK_FILE, Remote, check_date, commit_message, commit_paths,
                                                default_remote, is_empty_dir, lock_outputs, pipeline_owned, run_date)
from inpaintflow.tasks.tables.regression import REPORT_LINES, Comparison, compare_files
from inpaintflow.tasks.tables.render import metrics_file

DEPLOYMENT = "nightly-retrain"
FLOW_NAME = "nightly-retrain"
ENTRYPOINT = "flows/nightly.py:nightly_retrain"


class RegressionError(RuntimeError):
    """A nightly run's metrics fell beyond tolerance; the message is the full report."""


def _log(line: str) -> None:
    get_run_logger().info(line)


def _lock(repo: Path) -> dict | None:
    path = repo / LOCK_FILE
    return yaml.safe_load(path.read_text()) if path.is_file() else None


@task(cache_policy=NO_CACHE)
def preflight(repo: Path, params_path: Path, papers: list[str] | None) -> tuple[NightlyParams, list[str]]:
    """Settings and papers, checked before anything runs: a git + DVC repository whose tracked
    files hold no changes except the pipeline's own outputs (those would be committed)."""
    for needed in ("dvc.yaml", ".dvc", ".git"):
        if not (repo / needed).exists():
            raise FileNotFoundError(f"{repo / needed}: missing; the nightly run needs a git + DVC checkout "
                                    f"of the project")
    if gitops.head(repo) is None:
        raise gitops.GitError(f"{repo}: the repository has no commit yet; commit the project first")
    settings = load_group("nightly", params_path)
    selected = list(papers or settings.papers)
    for paper in selected:
        load_entry("tables", paper, params_path)  # an unknown paper: names tables.<paper> and the known ones
    outputs = lock_outputs(_lock(repo))
    foreign = [p for p in gitops.modified_tracked(repo) if not pipeline_owned(p, outputs)]
    if foreign:
        raise gitops.GitError(f"{repo}: uncommitted changes in {', '.join(foreign[:10])}; commit or stash them "
                              f"(a nightly commit must record the code and params its results came from)")
    return settings, selected


@task(cache_policy=NO_CACHE)
def find_remote(repo: Path) -> Remote | None:
    """The default DVC remote (.dvc/config), or None with a log line saying why."""
    # not `dvc remote list`: it wraps long lines to the terminal width
    remote = default_remote(run_dvc(["config", "--list"], repo).stdout)
    if remote is None:
        _log("no default DVC remote (`dvc remote add -d NAME URL`): nothing is pulled or pushed")
    return remote


@task(cache_policy=NO_CACHE)  # a failed pull is a warning, not an error: nothing to retry
def pull(repo: Path, remote: Remote, targets: list[str]) -> bool:
    local = remote.local_path(repo)
    if local is not None and is_empty_dir(local):
        _log(f"DVC remote {remote.name!r} ({local}) is empty: nothing to pull")
        return False
    result = run_dvc(["pull", "--with-deps", *targets], repo, log=_log, check=False)
    if result.returncode != 0:
        # e.g. outputs never pushed: `dvc repro` rebuilds whatever is still missing
        get_run_logger().warning(f"`dvc pull` from {remote.name!r} was incomplete (exit {result.returncode}); "
                                 f"the missing outputs are rebuilt")
    return result.returncode == 0


@task(cache_policy=NO_CACHE)  # DVC decides what reruns; never retried (training)
def reproduce(repo: Path, paper: str) -> None:
    run_dvc(["repro", f"table@{paper}"], repo, log=_log)


def score_files(params_path: Path, papers: list[str]) -> list[str]:
    """The evaluate stage's score file of every experiment of the papers' tables, once each."""
    files: dict[str, None] = {}
    for paper in papers:
        for name in load_entry("tables", paper, params_path).experiments:
            files.setdefault(metrics_file(paper, name).as_posix(), None)
    return list(files)


@task(cache_policy=NO_CACHE)
def compare(repo: Path, files: list[str], tolerances: dict[str, float]) -> Comparison:
    current, baseline = {}, {}
    for file in files:
        path = repo / file
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing after `dvc repro` "
                                    f"(is it an output of evaluate@{Path(file).stem}?)")
        current[file] = json.loads(path.read_text())
        committed = gitops.committed_text(repo, file)
        baseline[file] = json.loads(committed) if committed is not None else None
    return compare_files(baseline, current, tolerances)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=30)  # a cloud remote may hiccup
def push(repo: Path, remote: Remote, targets: list[str]) -> None:
    run_dvc(["push", "--with-deps", *targets], repo, log=_log)


@task(cache_policy=NO_CACHE)
def commit_results(repo: Path, branch: str, message: str) -> str | None:
    outputs = lock_outputs(_lock(repo))
    ignored = gitops.ignored(repo, outputs)
    paths = commit_paths(outputs, ignored, lambda p: (repo / p).exists())
    _log(gitops.switch_to(repo, branch))
    sha = gitops.commit(repo, paths, message)
    _log(f"committed {sha[:12]} on {branch}" if sha else f"nothing changed: no commit on {branch}")
    return sha


def _scheduled_date(timezone: str) -> str:
    from prefect.runtime import flow_run

    when = flow_run.scheduled_start_time or dt.datetime.now(dt.timezone.utc)
    return run_date(when, timezone)


@flow(name=FLOW_NAME, log_prints=True)
def nightly_retrain(papers: list[str] | None = None, params_path: str = "params.yaml", repo: str = ".",
                    date: str | None = None) -> dict:
    """Retrain and re-score ``papers`` (default: params.yaml nightly.papers), then commit or fail.

    ``params_path`` is relative to ``repo``; ``date`` (YYYY-MM-DD) names the branch instead of
    the run's scheduled day."""
    root = Path(repo).resolve()
    params = Path(params_path) if Path(params_path).is_absolute() else root / params_path
    day = check_date(date) if date else None
    settings, selected = preflight(root, params, papers)
    day = day or _scheduled_date(settings.timezone)
    branch = f"{settings.branch_prefix}{day}"
    gitops.check_branch_name(root, branch)  # before hours of training, not after
    targets = [f"table@{p}" for p in selected]
    base = gitops.head(root)

    remote = find_remote(root)
    if remote is not None:
        pull(root, remote, targets)
    for paper in selected:
        reproduce(root, paper)
    comparison = compare(root, score_files(params, selected), settings.tolerances.model_dump())
    report = comparison.report(limit=REPORT_LINES)
    print(report)
    create_markdown_artifact(key="nightly-report", markdown=f"# Nightly {day}: {', '.join(selected)}\n\n"
                             f"```\n{report}\n```\n", description=f"metrics against {base[:12]}")
    if comparison.regressions:
        raise RegressionError(f"nightly {day}: metrics regressed against {base[:12]} (no push, no commit)\n{report}")

    pushed = False
    if remote is not None and settings.push:
        push(root, remote, targets)
        pushed = True
    elif remote is not None:
        print("nightly.push is off: the DVC remote is left as it was")
    profile = active_profile(read_yaml(params), params)
    sha = commit_results(root, branch, commit_message(day, selected, base, profile, report))
    return {"branch": branch, "commit": sha, "papers": selected, "pushed": pushed,
            "changes": len(comparison.changes)}


# --- the deployment ------------------------------------------------------------------------


def schedule(params_path: Path = Path("params.yaml")) -> Cron:
    settings = load_group("nightly", params_path)
    return Cron(settings.cron, timezone=settings.timezone)


def build_deployment(params_path: Path = Path("params.yaml"), repo: Path | None = None):
    """The ``nightly-retrain`` deployment, scheduled from params.yaml ``nightly`` (served by
    `inpaintflow schedule serve`; prefect.yaml declares the same for `prefect deploy`)."""
    repo = Path(repo).resolve() if repo else Path(params_path).resolve().parent
    return nightly_retrain.to_deployment(
        name=DEPLOYMENT, schedule=schedule(params_path),
        parameters={"params_path": str(Path(params_path).resolve()), "repo": str(repo)},
        description="Retrain the papers, compare metrics with the last commit, commit on a dated branch",
        tags=["nightly"])


def next_runs(cron: str, timezone: str, count: int, after: dt.datetime | None = None) -> list[dt.datetime]:
    """The next ``count`` run times at or after ``after`` (default now), as Prefect's scheduler
    computes them, in the schedule's time zone. Needs no server."""
    from prefect.server.schemas.schedules import CronSchedule

    if count <= 0:
        raise ValueError(f"count must be positive, got {count}")
    after = after or dt.datetime.now(dt.timezone.utc)
    if after.tzinfo is None:
        raise ValueError(f"{after.isoformat()}: give a time zone (e.g. 2026-01-01T00:00:00+00:00)")
    dates = asyncio.run(CronSchedule(cron=cron, timezone=timezone).get_dates(n=count, start=after))
    return [dt.datetime.fromtimestamp(d.timestamp(), tz=ZoneInfo(timezone)) for d in dates]


if __name__ == "__main__":
    nightly_retrain()

"""Prefect flow: a paper's result tables (``inpaintflow table PAPER``, DVC stage ``table``).

Reads the scores of the experiments ``params.yaml`` lists under ``tables.<paper>`` and writes
the tables beside the paper's own numbers (tasks/tables.py), with a provenance header, and
provenance.json (what they were rendered from, for ``inpaintflow audit``).
"""

from __future__ import annotations

import json
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from inpaintflow.params import active_profile, load_entry, load_group, load_step, read_yaml
from inpaintflow.tasks.tables import (Experiment, code_commit, collect_provenance, package_versions, write_grid, write_paper,
                          write_provenance)

# dvc.yaml: inpaint@NAME, blend@NAME and evaluate@NAME write under <root>/<paper>/NAME, with
# <paper> = inpaint.NAME.paper_id, so a paper's table stage depends on that paper's results only
INPAINT_RUNS = Path("runs/inpaint")
BLEND_RUNS = Path("runs/blend")
METRICS = Path("runs/metrics")


def experiment_dir(paper: str, name: str) -> Path:
    return INPAINT_RUNS / paper / name


def blend_dir(paper: str, name: str) -> Path:
    return BLEND_RUNS / paper / name


def metrics_file(paper: str, name: str) -> Path:
    return METRICS / paper / f"{name}.json"


def _experiment(name: str, params_path: Path) -> tuple[Experiment, list[str]]:
    """The experiment's scores and the header lines that describe its inputs."""
    entry = load_entry("inpaint", name, params_path)
    scores = metrics_file(entry.paper_id, name)
    if not scores.is_file():
        raise FileNotFoundError(f"{scores}: missing; score the experiment first (dvc repro evaluate@{name})")
    metrics = json.loads(scores.read_text())
    data = load_step("data", entry.data, params_path)
    masks = load_step("masks", entry.masks, params_path)
    data_paper = load_step("data", entry.data, params_path, "paper")
    masks_paper = load_step("masks", entry.masks, params_path, "paper")
    train = metrics["experiment"].get("train") or {}
    inception = sorted({r.get("inception_weights") or f"none ({r.get('fid_reason')})" for r in metrics["results"]})
    p = load_step("inpaint", name, params_path)
    steps = "" if p.method == "feed-forward" else \
        f", steps {p.steps or 'paper'}" + (f" + {p.refine_steps or 'paper'}" if p.method == "yeh-refine" else "")
    lines = [f"{name}: {metrics['experiment']['label']} ({p.method}{steps}), {metrics['experiment']['pairs']} "
             f"pairs; data {entry.data} = {data.dataset} {data.size}px (paper: {data_paper.dataset}); "
             f"masks {entry.masks} = {masks.family}, seed {masks.seed}, bins {masks.bins or 'fixed'}; "
             f"run {entry.run}: {train.get('steps', '?')} steps, VGG-19 {train.get('vgg19', 'n/a')}; "
             f"Inception {', '.join(inception)}"]
    exp = Experiment(name=name, dataset=data_paper.dataset, masks=masks_paper.family, setting=entry.setting,
                     metrics=metrics, params_count=train.get("parameters", {}))
    return exp, lines


@task(cache_policy=NO_CACHE)
def render_tables(paper: str, out: Path, params_path: Path, summary: Path | None) -> list[Path]:
    entry = load_entry("tables", paper, params_path)
    names = entry.experiments
    raw = read_yaml(params_path)
    experiments, header = [], [f"profile: {active_profile(raw, params_path)}"]
    for name in names:
        exp, lines = _experiment(name, params_path)
        experiments.append(exp)
        header += lines
    load_group("evaluate", params_path)
    header += [f"code: git {code_commit()}", f"packages: {package_versions()}"]
    written = write_paper(paper, experiments, header, out, summary_path=summary, labels=entry.labels)
    for name in names:
        written.append(write_grid(experiment_dir(paper, name), Path(out) / f"grid-{name}.png", blend_dir(paper, name)))
    # read from dvc.lock now: under `dvc repro` every upstream stage has been locked by this point
    written.append(write_provenance(out, collect_provenance(paper, params_path)))
    return written


@flow(name="table", log_prints=True)
def table_flow(paper: str, out: Path, params_path: Path = Path("params.yaml"),
               summary: Path | None = None) -> list[Path]:
    written = render_tables(paper, Path(out), Path(params_path), summary)
    print(f"paper {paper}: {len(written)} files -> {out}")
    return written

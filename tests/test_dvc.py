"""dvc.yaml, run by DVC itself in a temporary copy of the project: every step on tiny data
(data, masks, train, inpaint, evaluate, table); slow: every paper's stages twice from scratch
(same bytes), and the demo's settings on real faces (every row above mean fill)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["dvc.yaml", "params.yaml", "pyproject.toml", ".dvcignore", ".dvc/config",
                 "inpaintflow", "flows", "tasks", "models", "references",
                 "data/weights"]  # the shipped VGG-19 blocks 1-3, a dependency of every train stage

TINY = {
    "profile": "demo",
    "data": {"faces": {"demo": {"dataset": "synthetic-faces", "size": 32, "count": {"train": 20, "test": 4}},
                       "paper": {"dataset": "celeba", "size": 64}}},
    "masks": {
        "centre": {"demo": {"family": "center-square", "size": 32, "count": 4, "seed": 1},
                   "paper": {"family": "center-square", "size": 64, "count": 4, "seed": 1}},
        "free": {"demo": {"family": "free-form", "size": 32, "count": 3, "bins": ["0.1-0.3"], "seed": 2},
                 "paper": {"family": "free-form", "size": 64, "count": 3, "bins": ["0.1-0.3"], "seed": 2}},
    },
    "train": {"gan": {"data": "faces", "code": "models/dcgan.py",
                      "demo": {"model": "dcgan", "steps": 2, "batch_size": 4, "size": 32, "tiny": True},
                      "paper": {"model": "dcgan", "steps": 2, "batch_size": 4, "size": 32}},
              "rm": {"data": "faces", "code": "models/rmnet.py",
                     "demo": {"model": "rmnet", "steps": 2, "batch_size": 4, "size": 32, "tiny": True,
                              "allow_random_vgg": True},
                     "paper": {"model": "rmnet", "steps": 2, "batch_size": 4, "size": 32}}},
    "inpaint": {
        "yeh-centre": {"paper_id": "refinement", "run": "gan", "data": "faces", "masks": "centre", "label": "Inpainting & Refinement",
                       "setting": "1500+1500",
                       "demo": {"method": "yeh-refine", "limit": 3, "batch_size": 2, "steps": 2, "refine_steps": 2},
                       "paper": {"method": "yeh-refine"}},
        "rm-free": {"paper_id": "rmnet", "run": "rm", "data": "faces", "masks": "free", "label": "R-MNet-0.4",
                    "baselines": ["telea", "mean-fill"],
                    "demo": {"method": "feed-forward", "limit": 4, "batch_size": 4},
                    "paper": {"method": "feed-forward"}},
    },
    "evaluate": {"demo": {"batch_size": 8}, "paper": {"batch_size": 8}},
    "tables": {"refinement": {}, "rmnet": {}},
}


def copy_project(dest: Path, params: dict | None = None) -> Path:
    for name in PROJECT_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif src.exists():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    if params is not None:
        (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    # a fixed date: the same files give the same commit, which the tables' headers record
    fixed = {**os.environ, "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"}
    subprocess.run([*git, "commit", "-qm", "init"], cwd=dest, check=True, env=fixed)
    return dest


def dvc(cwd: Path, *args: str, own_server: bool = False, timeout: float = 900) -> str:
    """``dvc ARGS`` in ``cwd``. The stages use the test harness's API when a test has started it,
    or with ``own_server`` the copy's own local server, as ``inpaintflow demo`` does."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "INPAINTFLOW_STATE_DIR": str(cwd / ".inpaintflow")}
    if own_server:
        env.pop("PREFECT_API_URL", None)
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, text=True,
                            capture_output=True, timeout=timeout)
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.mark.usefixtures("prefect_harness")  # the stages' processes share the harness API
def test_repro_builds_data_and_masks_then_is_a_noop(tmp_path):
    project = copy_project(tmp_path / "proj", TINY)
    out = dvc(project, "repro")
    assert "Running stage 'data@faces'" in out and "Running stage 'masks@free'" in out
    assert (project / "data/datasets/faces/manifest.csv").is_file()
    assert len(list((project / "data/masks/centre").glob("*.png"))) == 4
    assert (project / "dvc.lock").is_file()
    assert (project / "runs/gan/checkpoint.pt").is_file() and (project / "runs/gan/train.json").is_file()
    assert len(list((project / "runs/blend/refinement/yeh-centre/refined").glob("*.png"))) == 3
    metrics = yaml.safe_load((project / "runs/metrics/rmnet/rm-free.json").read_text())
    assert [r["method"] for r in metrics["results"]] == ["R-MNet-0.4", "Telea (cv2)", "mean fill"]
    table = (project / "results/refinement/table-2.csv").read_text().splitlines()
    assert table[0] == "method,setting,MAE ↓,MSE ↓,PSNR ↑,MSSIM ↑"
    reproduced = [row for row in table if row.startswith("Inpainting & Refinement (inpaintflow),1500+1500,")]
    assert len(reproduced) == 1
    assert all(np.isfinite(float(cell)) for cell in reproduced[0].split(",")[2:])  # MAE, MSE, PSNR, MSSIM
    shown = dvc(project, "metrics", "show")
    assert "results/summary-rmnet.json" in shown and "runs/metrics/rmnet/rm-free.json" in shown

    again = dvc(project, "repro")
    assert "Running stage" not in again
    assert "up to date" in again.lower()

    # editing one mask set's params reruns that stage alone
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["masks"]["free"]["demo"]["seed"] = 3
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = dvc(project, "repro")
    assert "Running stage 'masks@free'" in changed
    assert "Running stage 'data@faces'" not in changed and "Running stage 'masks@centre'" not in changed


def _stop_server(project: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    subprocess.run([sys.executable, "-m", "inpaintflow.cli", "server", "stop"], cwd=project, check=False,
                   env={**env, "INPAINTFLOW_STATE_DIR": str(project / ".inpaintflow")}, capture_output=True)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_all_papers_repro_twice_from_scratch_gives_identical_outputs(tmp_path):
    """Every stage of every paper (the tiny all-papers profile: each model, each inpainting
    method, blending, scoring, tables), twice in fresh copies: the same bytes (dvc.lock outs).
    Determinism is a property of the code paths, not of the budgets, so the tiny budgets check
    it; the demo's own budgets are exercised on real faces below."""
    from test_e2e import TINY_ALL

    locks = []
    for run in ("a", "b"):
        project = copy_project(tmp_path / run, TINY_ALL)
        try:
            dvc(project, "repro", own_server=True, timeout=1800)
            lock = yaml.safe_load((project / "dvc.lock").read_text())
            locks.append({name: stage["outs"] for name, stage in lock["stages"].items()})
            assert "up to date" in dvc(project, "repro", own_server=True).lower()
        finally:
            _stop_server(project)
    assert locks[0] == locks[1]  # every output, train.json and the tables' provenance included


REAL_FACES = REPO.parent / "shared" / "data" / "celeba-faces-dev"
# Known gaps, open in issue 12 (its note gives the figures): on real faces paper 001's tiny
# DCGAN (1,000 steps) fills square and half-image holes with a noisy face, whose hole PSNR is
# under mean fill's (hole L1 about equal). Paper 002's WGAN-GP on the same centre squares beats it.
REAL_FACE_GAPS = {f"refinement/refinement-{p}" for p in
                  ("big-random-square", "center-square", "center-square-1500", "center-square-3000",
                   "left-half", "random-square")}


@pytest.mark.slow
@pytest.mark.skipif(not REAL_FACES.is_dir(), reason=f"no real faces at {REAL_FACES}")
@pytest.mark.usefixtures("prefect_harness")
def test_demo_settings_on_real_faces_beat_mean_fill_in_every_bin(tmp_path):
    """The demo profile unchanged but for its face data: 1,000 real CelebA crops at 64 px in
    place of the synthetic faces (every dataset the five papers' experiments read). Every
    reproduced row but the known gaps must beat mean fill on hole L1 and hole PSNR in every bin
    (the verdicts of tasks/tables/verdicts.py, read from the metrics the tables are made of)."""
    from inpaintflow.tasks.tables.verdicts import read_verdicts, render

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert params["profile"] == "demo"
    faces = {"dataset": "folder", "source": str(REAL_FACES), "size": 64}
    for name in {e["data"] for e in params["inpaint"].values()}:
        params["data"][name]["demo"] = faces
    project = copy_project(tmp_path / "real", params)
    try:
        dvc(project, "repro", own_server=True, timeout=3000)
    finally:
        _stop_server(project)
    verdicts = read_verdicts(project / "runs" / "metrics")
    print(render(verdicts))  # the Telea gaps too, for the record (-s or --durations shows it)
    assert len(verdicts) >= 30, render(verdicts)
    losing = [v for v in verdicts if not v.beats_mean_fill and v.experiment not in REAL_FACE_GAPS]
    assert not losing, "rows at or below mean fill on real faces:\n" + render(losing)
    # the feed-forward papers and paper 002 hold everywhere; of paper 001 at least the patterns
    # with thin holes (stripes, random pixels) do
    assert {v.experiment for v in verdicts} - REAL_FACE_GAPS >= {
        "rmnet/rmnet-celeba-hq", "regionwise/regionwise-contiguous", "regionwise/regionwise-discontiguous",
        "gla/gla-free-form", "iwgan/iwgan-center-square", "iwgan/iwgan-three-squares",
        "refinement/refinement-stripes", "refinement/refinement-random-pixels"}

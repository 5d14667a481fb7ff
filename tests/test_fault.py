"""A training stage killed mid-run (SIGKILL to DVC and everything it started) leaves a complete
checkpoint and no half-written files; the next ``dvc repro`` resumes from that checkpoint and
ends with the state an uninterrupted run ends with (slow)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from inpaintflow.tasks.train.engine import rebuild_from_checkpoint
from test_dvc import TINY, copy_project, dvc

pytestmark = pytest.mark.slow

RUN = "gla"  # a masked model: the checkpoint must carry the training-mask stream's state too
STEPS, EVERY = 20, 2
# the tiny profile of test_dvc plus one run long enough to be killed midway
PARAMS = {**TINY, "train": {**TINY["train"], RUN: {
    "data": "faces", "code": "models/gla.py",
    # previews only at the end: the kill lands in training, not in a preview write
    "demo": {"model": "gla", "steps": STEPS, "batch_size": 4, "size": 32, "tiny": True,
             "checkpoint_every": EVERY, "preview_every": STEPS, "log_every": EVERY},
    "paper": {"model": "gla", "steps": STEPS, "batch_size": 4, "size": 32}}}}
CHECKPOINT_KEYS = {"format", "model", "model_config", "settings", "step", "code_sha256", "nets", "optimizers",
                   "torch_rng", "cuda_rng", "mask_rng", "validation"}


def _env(project: Path) -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "INPAINTFLOW_STATE_DIR": str(project / ".inpaintflow")}


def _gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def kill_when_checkpointed(project: Path, timeout_s: float = 600) -> None:
    """Start ``dvc repro train@RUN``; SIGKILL its whole process group once a checkpoint exists."""
    checkpoint = project / "runs" / RUN / "checkpoint.pt"
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", f"train@{RUN}"], cwd=project,
                            env=_env(project), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + timeout_s
    try:
        while not checkpoint.exists():
            assert proc.poll() is None, f"dvc repro train@{RUN} exited ({proc.returncode}) before a checkpoint"
            assert time.monotonic() < deadline, f"no {checkpoint} after {timeout_s:.0f} s"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for _ in range(500):  # the stage's processes are orphans now: wait until init has reaped them
        if _gone(proc.pid):
            break
        time.sleep(0.02)
    assert _gone(proc.pid), "processes of the killed repro survived SIGKILL"


@pytest.mark.usefixtures("prefect_harness")
def test_a_killed_training_stage_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_run(tmp_path, monkeypatch):
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # tiny nets, busy 2-core machine; the same for every run here
    # the stages' processes use the harness (else each would start a Prefect server of its own)
    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
    killed = copy_project(tmp_path / "killed", PARAMS)
    run_dir = killed / "runs" / RUN
    dvc(killed, "repro", "data@faces")  # so the kill lands in training
    kill_when_checkpointed(killed)

    # no half-written file: every write is a temp file (.NAME.random) renamed into place
    assert temp_files(run_dir) == []
    ckpt = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert set(ckpt) == CHECKPOINT_KEYS
    reached = ckpt["step"]
    assert reached % EVERY == 0 and 0 < reached < STEPS, f"killed at step {reached}: not mid-run"
    recipe, _, _ = rebuild_from_checkpoint(run_dir / "checkpoint.pt")  # strict load: every tensor there
    assert set(recipe.nets) <= set(ckpt["nets"])
    assert not (run_dir / "train.json").exists() and not (run_dir / "timing.json").exists()  # written at the end
    lock = yaml.safe_load((killed / "dvc.lock").read_text())
    assert f"train@{RUN}" not in lock["stages"]  # DVC recorded nothing for the killed stage

    out = dvc(killed, "repro", f"train@{RUN}")
    assert f"Running stage 'train@{RUN}'" in out
    assert json.loads((run_dir / "train.json").read_text())["steps"] == STEPS
    timing = json.loads((run_dir / "timing.json").read_text())  # this process's run only
    assert timing["resumed_from"] == reached and timing["steps_run"] == STEPS - reached
    final = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert final["step"] == STEPS
    live = json.loads((run_dir / "live" / "metrics.json").read_text())
    assert live["step"] == STEPS
    assert "up to date" in dvc(killed, "repro", f"train@{RUN}").lower()
    assert temp_files(run_dir) == []  # none in the outputs DVC has just cached

    # the same stage's command, never interrupted, into another folder: the same state (CPU
    # training is deterministic, and the checkpoint restores data order, masks and RNG states)
    subprocess.run(["inpaintflow", "train", "stage", RUN, "--data", "data/datasets/faces", "--out", "runs/straight"],
                   cwd=killed, env=_env(killed), check=True, capture_output=True, timeout=600)
    straight = killed / "runs" / "straight"
    assert json.loads((straight / "timing.json").read_text())["resumed_from"] == 0
    other = torch.load(straight / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert other["settings"].pop("out") == "runs/straight" and final["settings"].pop("out") == f"runs/{RUN}"
    assert_same(final, other)
    # byte for byte too (same out path) is tests/test_train.py's resumed-checkpoint test
    assert json.loads((run_dir / "live" / "metrics.json").read_text()) == \
        json.loads((straight / "live" / "metrics.json").read_text())
    assert not (killed / ".inpaintflow/prefect/server.json").exists(), "a stage started its own Prefect server"


def temp_files(folder: Path) -> list[str]:
    """Leftovers of atomic writes (inpaintflow/conventions.py: ``.NAME.<random>``); DVC's own
    .gitignore files are no such thing."""
    return [p.name for p in folder.rglob(".*") if p.is_file() and p.name != ".gitignore"]


def assert_same(a, b, where: str = "checkpoint") -> None:
    """Equal nested checkpoint contents: same keys, values, and tensors bit for bit."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif torch.is_tensor(a):
        assert a.dtype == b.dtype and torch.equal(a, b), f"{where} differs"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"

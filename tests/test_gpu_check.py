"""benchmarks/gpu_check.py without a GPU: the CPU smoke mode measures every model on both paths,
and the GPU mode refuses to run rather than report CPU figures."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from inpaintflow.models import RECIPES

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # two shared cores: one thread per model process


def test_smoke_mode_times_every_model_on_both_paths(tmp_path):
    out = tmp_path / "smoke.json"
    result = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out)], cwd=REPO, env=ENV,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(out.read_text())
    assert figures["mode"] == "smoke" and figures["header"]["torch"] == torch.__version__
    assert set(figures["models"]) == set(RECIPES) and figures["skipped_for_budget"] == []
    for model, record in figures["models"].items():
        assert "error" not in record, (model, record)
        assert record["device"] == "cpu" and record["tiny"]
        for path in ("fp32", "optimised"):
            assert record[path]["images_per_s"] > 0 and record[path]["steps"] == 2, (model, path)
            assert record[path]["peak_mib"] > 0
        assert record["ratio"] == pytest.approx(record["optimised"]["images_per_s"] / record["fp32"]["images_per_s"])
        assert model in result.stdout
    assert figures["repro"] == {"skipped": "--smoke"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the GPU mode would run")
def test_without_cuda_the_gpu_mode_refuses_with_a_message():
    result = subprocess.run([sys.executable, str(SCRIPT), "--skip-repro"], cwd=REPO, env=ENV,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "no CUDA device: run with --smoke for the CPU check" in result.stderr

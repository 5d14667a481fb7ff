"""A non-editable ``pip install .`` into a fresh venv imports every module under ``inpaintflow.``
and installs no top-level ``tasks``, ``flows`` or ``models`` (README, "Layout")."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

IMPORT_ALL = """
import importlib, pkgutil, inpaintflow
names = ["inpaintflow.cli"]
for sub in ("flows", "tasks", "models"):
    package = importlib.import_module(f"inpaintflow.{sub}")
    names += [package.__name__] + [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
for name in names:
    module = importlib.import_module(name)
    assert "site-packages" in module.__file__, module.__file__
print(len(names))
"""


def _python(env_dir: Path) -> Path:
    return env_dir / ("Scripts" if sys.platform == "win32" else "bin") / "python"


@pytest.mark.slow
def test_a_non_editable_install_imports_every_module(tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = _python(env_dir)
    subprocess.run([python, "-m", "pip", "install", "--quiet", str(REPO)], check=True, cwd=tmp_path)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    done = subprocess.run([python, "-c", IMPORT_ALL], cwd=outside, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) > 40
    for name in ("tasks", "flows", "models"):
        gone = subprocess.run([python, "-c", f"import {name}"], cwd=outside, capture_output=True, text=True)
        assert gone.returncode != 0 and "No module named" in gone.stderr
    help_text = subprocess.run([env_dir / "bin" / "inpaintflow", "--help"], cwd=outside, capture_output=True, text=True)
    assert help_text.returncode == 0 and "usage: inpaintflow" in help_text.stdout

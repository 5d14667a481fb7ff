"""The command line as a user runs it: a subprocess, against the test harness's Prefect API."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("prefect_harness")


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([sys.executable, "-m", "inpaintflow.cli", *args], cwd=cwd, env=env,
                          text=True, capture_output=True, timeout=300)


def test_masks_make_writes_pngs_and_manifest(tmp_path):
    out = tmp_path / "masks"
    result = run_cli("masks", "make", "stripes", "--size", "64", "--count", "3", "--seed", "7", "--out", str(out))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    assert [r["file"] for r in rows] == ["00000.png", "00001.png", "00002.png"]
    assert {r["family"] for r in rows} == {"stripes"} and {r["seed"] for r in rows} == {"7"}


def test_data_prepare_synthetic_faces(tmp_path):
    out = tmp_path / "faces"
    result = run_cli("data", "prepare", "synthetic-faces", "--size", "48", "--count", "train=5,test=2",
                     "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (out / "test").glob("*.png")) == ["000000.png", "000001.png"]
    assert cv2.imread(str(out / "train" / "000004.png")).shape == (48, 48, 3)


def test_quickdraw_import_converts_polarity(tmp_path):
    src = tmp_path / "qd"
    src.mkdir()
    for i, width in enumerate([40, 120]):  # black vertical band = hole, white elsewhere
        img = np.full((512, 512), 255, np.uint8)
        img[:, 100:100 + width] = 0
        cv2.imwrite(str(src / f"{i:05d}.png"), img)
    out = tmp_path / "out"
    result = run_cli("masks", "import", "quickdraw", "--source", str(src), "--size", "128", "--out", str(out))
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    ratios = sorted(float(r["ratio"]) for r in rows)
    assert ratios == pytest.approx([40 / 512, 120 / 512], abs=1e-3)
    mask = cv2.imread(str(out / "00000.png"), cv2.IMREAD_UNCHANGED)
    assert mask[64, 30] == 255 and mask[64, 5] == 0  # the black band became the 255 hole


@pytest.mark.parametrize("args, message", [
    (["data", "prepare", "celebb", "--size", "64", "--out", "x"], "unknown dataset 'celebb'"),
    (["data", "prepare", "paris-streetview", "--size", "64", "--out", "x"], "paris-streetview: no source given"),
    (["data", "prepare", "folder", "--source", "/nonexistent/photos", "--size", "64", "--out", "x"],
     "/nonexistent/photos: dataset source not found"),
    (["data", "prepare", "folder", "--source", "http://127.0.0.1:9/a.zip", "--size", "64", "--out", "x"],
     "needs --sha256"),
    (["masks", "make", "free-form", "--size", "64", "--count", "2", "--seed", "0", "--out", "x"],
     "needs a hole-ratio bin"),
    (["masks", "make", "free-form", "--size", "64", "--count", "2", "--seed", "0", "--ratio", "0.6-0.2", "--out", "x"],
     "0.6-0.2"),
])
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x" / "manifest.csv").exists()


def test_stage_command_reports_params_errors_with_the_key(tmp_path):
    (tmp_path / "params.yaml").write_text(
        "data:\n  faces:\n    demo: {dataset: synthetic-faces, size: 64, cont: 3}\n"
        "    paper: {dataset: celeba, size: 64}\n")
    result = run_cli("data", "stage", "faces", "--out", "x", cwd=tmp_path)
    assert result.returncode != 0
    assert "data.faces.demo.cont" in result.stderr


def _pairs(root: Path, names=("a.png", "b.png"), size=24) -> tuple[Path, Path, Path]:
    from inpaintflow.conventions import damage, write_image, write_mask

    rng = np.random.default_rng(0)
    dirs = [root / d for d in ("pred", "gt", "masks")]
    for name in names:
        gt = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        hole = np.zeros((size, size), np.uint8)
        hole[6:14, 4:20] = 1
        write_image(dirs[0] / name, np.clip(gt.astype(int) + 5, 0, 255).astype(np.uint8))
        write_image(dirs[1] / name, damage(gt, hole))
        write_mask(dirs[2] / name, hole)
    return tuple(dirs)


def test_evaluate_and_blend_from_the_command_line(tmp_path):
    pred, gt, masks = _pairs(tmp_path)
    out = tmp_path / "scores.csv"
    result = run_cli("evaluate", "--pred", str(pred), "--gt", str(gt), "--masks", str(masks), "--out", str(out),
                     "--fid")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(open(out)))
    assert [r["file"] for r in rows] == ["a.png", "b.png"] and rows[0]["bin"] == "all"
    assert (tmp_path / "scores.summary.json").is_file()
    assert "FID n/a" in result.stdout + result.stderr
    blended = tmp_path / "blended"
    result = run_cli("blend", "--generated", str(pred), "--damaged", str(gt), "--masks", str(masks), "--out",
                     str(blended))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in blended.glob("*.png")) == ["a.png", "b.png"]


@pytest.mark.parametrize("command", ["evaluate", "blend"])
def test_a_missing_pair_is_one_line_naming_the_file(tmp_path, command):
    pred, gt, masks = _pairs(tmp_path)
    (gt / "b.png").unlink()
    out = tmp_path / ("scores.csv" if command == "evaluate" else "out")
    flags = ["--pred", str(pred), "--gt", str(gt)] if command == "evaluate" else \
        ["--generated", str(pred), "--damaged", str(gt)]
    result = run_cli(command, *flags, "--masks", str(masks), "--out", str(out))
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("inpaintflow: error:") and "b.png" in last
    assert not out.exists() or not any(out.glob("*.png"))

"""The demo pipeline of all five papers on a tiny profile, run by DVC in a temporary clone (slow):
every paper's tables in the paper's own layout, a second ``dvc repro`` that changes nothing, and
an edited mask set that reruns exactly the stages downstream of it."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from inpaintflow.tasks.tables.render import PAPERS, REPRODUCED, build_table, load_references, render_csv
from test_dvc import copy_project, dvc

pytestmark = pytest.mark.slow


def _train(model: str, code: str, data: str, **demo) -> dict:
    return {"data": data, "code": code,
            "demo": {"model": model, "steps": 2, "batch_size": 4, "size": 32, "tiny": True, **demo},
            "paper": {"model": model, "steps": 2, "batch_size": 4, "size": 32}}


def _experiment(paper: str, run: str, data: str, masks: str, label: str, method: str, setting: str | None = None,
                baselines: tuple[str, ...] = (), **demo) -> dict:
    entry = {"paper_id": paper, "run": run, "data": data, "masks": masks, "label": label}
    if setting:
        entry["setting"] = setting
    if baselines:
        entry["baselines"] = list(baselines)
    entry["demo"] = {"method": method, "limit": 2, "batch_size": 4, **demo}
    entry["paper"] = {"method": method}
    return entry


# Every stage group, model kind and inpainting method at 32 px, two steps, two test images.
# Two data artefacts and four mask sets because the tables match experiments by the *paper*
# profile's dataset and mask family: this way each paper's main table gets a reproduced row.
TINY_ALL = {
    "profile": "demo",
    "data": {
        "faces": {"demo": {"dataset": "synthetic-faces", "size": 32, "count": {"train": 8, "test": 2}},
                  "paper": {"dataset": "celeba", "size": 64}},
        "faces-hq": {"demo": {"dataset": "synthetic-faces", "size": 32, "count": {"train": 8, "test": 2}, "seed": 1},
                     "paper": {"dataset": "celeba-hq", "size": 256, "source": "data/raw/celeba-hq"}},
    },
    "masks": {
        "centre": {"demo": {"family": "center-square", "size": 32, "count": 2, "seed": 1},
                   "paper": {"family": "center-square", "size": 64, "count": 2, "seed": 1}},
        "strokes": {"demo": {"family": "free-form", "size": 32, "count": 2, "bins": ["0.1-0.3"], "seed": 2},
                    "paper": {"family": "quickdraw", "size": 256, "count": 2, "bins": ["0.01-0.6"],
                              "source": "data/raw/quickdraw/test"}},
        "region": {"demo": {"family": "regionwise-contiguous", "size": 32, "count": 2, "bins": ["0.1-0.2"], "seed": 3},
                   "paper": {"family": "regionwise-contiguous", "size": 256, "count": 2, "bins": ["0.1-0.2"], "seed": 3}},
        "free": {"demo": {"family": "free-form", "size": 32, "count": 2, "bins": ["0.2-0.3"], "seed": 4},
                 "paper": {"family": "free-form", "size": 256, "count": 2, "bins": ["0.2-0.3"], "seed": 4}},
    },
    "train": {
        "rmnet": _train("rmnet", "models/rmnet.py", "faces-hq", allow_random_vgg=True),
        "dcgan": _train("dcgan", "models/dcgan.py", "faces"),
        "wgan": _train("wgan-gp", "models/wgan_gp.py", "faces"),
        "regionwise": _train("regionwise", "models/regionwise.py", "faces-hq", allow_random_vgg=True),
        "gla": _train("gla", "models/gla.py", "faces-hq"),
    },
    "inpaint": {
        "rm": _experiment("rmnet", "rmnet", "faces-hq", "strokes", "R-MNet-0.4", "feed-forward", "lambda=0.4", ("mean-fill",)),
        "refine": _experiment("refinement", "dcgan", "faces", "centre", "Inpainting & Refinement", "yeh-refine", "1500+1500",
                              steps=2, refine_steps=2),
        "yeh": _experiment("refinement", "dcgan", "faces", "centre", "Inpainting", "yeh", "1500", steps=2),
        "vitoria": _experiment("iwgan", "wgan", "faces", "centre", "Our proposed loss", "vitoria",
                               "alpha=0.1,beta=0.9,eta=0.5", steps=2),
        "region": _experiment("regionwise", "regionwise", "faces-hq", "region", "ours", "feed-forward"),
        "gla": _experiment("gla", "gla", "faces-hq", "free", "Ours", "feed-forward"),
    },
    "evaluate": {"demo": {"batch_size": 8}, "paper": {"batch_size": 8}},
    "tables": {"rmnet": {}, "refinement": {}, "iwgan": {}, "regionwise": {},
               "gla": {"labels": {"4": {"Ours": "Proposed"}, "5": {"Ours": "Full"}}}},
}

# tables that must hold a reproduced row or column with the profile above (dataset and masks match)
FILLED = {"rmnet": {"1", "2", "3"}, "refinement": {"1", "2"}, "iwgan": {"1"}, "regionwise": {"2"}, "gla": {"3", "4"}}
# the mask set edited by the last test, and what lies downstream of it
EDITED_MASKS = "free"
# DVC's bookkeeping and Prefect's state change on every command; they are not pipeline outputs
UNTRACKED = (".git/", ".dvc/tmp/", ".inpaintflow/")


def stages_of(params: dict) -> set[str]:
    """Every stage dvc.yaml defines for ``params``."""
    names = {f"data@{k}" for k in params["data"]} | {f"masks@{k}" for k in params["masks"]}
    names |= {f"train@{k}" for k in params["train"]} | {f"table@{k}" for k in params["tables"]}
    for exp in params["inpaint"]:
        names |= {f"inpaint@{exp}", f"blend@{exp}", f"evaluate@{exp}"}
    return names


def downstream_of_masks(params: dict, masks: str) -> set[str]:
    exps = {name for name, e in params["inpaint"].items() if e["masks"] == masks}
    papers = {params["inpaint"][e]["paper_id"] for e in exps}
    return ({f"masks@{masks}"} | {f"{step}@{e}" for e in exps for step in ("inpaint", "blend", "evaluate")}
            | {f"table@{p}" for p in papers})


def ran(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """(mtime_ns, size, sha256) of every file DVC or the stages could have written."""
    files = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith(UNTRACKED):
            st = path.stat()
            files[rel] = (st.st_mtime_ns, st.st_size, hashlib.sha256(path.read_bytes()).hexdigest())
    return files


def dvc_json(cwd: Path, *args: str):
    """``dvc ARGS --json`` parsed (stdout only: DVC logs warnings to stderr)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "INPAINTFLOW_STATE_DIR": str(cwd / ".inpaintflow")}
    result = subprocess.run([sys.executable, "-m", "dvc", *args, "--json"], cwd=cwd, env=env, text=True,
                            capture_output=True, timeout=300)
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def ours(label: str) -> bool:
    return label.endswith(REPRODUCED) or label.endswith("Δ")


def papers_part(grid: list[list[str]], n_labels: int, methods_as_columns: bool) -> list[list[str]]:
    """The table without this pipeline's rows (or columns): what the paper itself prints."""
    if methods_as_columns:
        keep = [j for j, title in enumerate(grid[0]) if j < n_labels or not ours(title)]
        return [[row[j] for j in keep] for row in grid]
    return [grid[0]] + [row for row in grid[1:] if not any(ours(c) for c in row[:n_labels])]


def label_matches(key: str, cell: str, value, metrics: dict) -> bool:
    """A printed row label against the reference record's value for that layout key."""
    if value is None:
        return cell == ""
    if key == "metric":
        return cell.startswith(metrics[value]["label"])
    if key == "bin":
        lo, hi = (float(x) for x in str(value).split("-"))
        return cell == f"{lo * 100:g}-{hi * 100:g}%"
    return cell == str(value)


@pytest.fixture(scope="module")
def project(tmp_path_factory, prefect_harness):
    """The tiny all-papers pipeline, reproduced once from scratch."""
    from prefect.settings import PREFECT_API_URL

    root = copy_project(tmp_path_factory.mktemp("e2e") / "proj", TINY_ALL)
    with pytest.MonkeyPatch.context() as mp:
        # the harness sets the URL for this process only; without it every stage process would
        # start (and leave running) a Prefect server of its own in the clone
        mp.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
        # tiny convolutions on a busy 2-core machine: one thread per stage is faster
        mp.setenv("OMP_NUM_THREADS", "1")
        out = dvc(root, "repro")
        yield root, out
    assert not (root / ".inpaintflow/prefect/server.json").exists(), "a stage started its own Prefect server"


def test_first_repro_runs_every_stage_and_fills_every_papers_tables(project):
    root, out = project
    assert sorted(ran(out)) == sorted(stages_of(TINY_ALL))
    refs = load_references()
    for paper in PAPERS:
        results = root / "results" / paper
        assert (results / "README.md").is_file(), f"{results}/README.md missing"
        summary = json.loads((root / f"results/summary-{paper}.json").read_text())
        assert set(summary) == {f"table-{t['id']}" for t in refs[paper]["tables"]}
        for ref in refs[paper]["tables"]:
            stem = results / f"table-{ref['id']}"
            for ext in (".csv", ".md", ".tex"):
                assert stem.with_suffix(ext).is_file(), f"{stem}{ext} missing"
            rows, cols = ref["layout"]["rows"], ref["layout"]["columns"]
            grid = read_csv(stem.with_suffix(".csv").read_text(encoding="utf-8"))
            where = f"{paper} table {ref['id']}"
            assert grid[0][:len(rows)] == rows, where  # the paper's row keys down the side
            # without our rows (or columns) the CSV is exactly the paper's table, numbers included
            own = papers_part(grid, len(rows), "method" in cols)
            empty = build_table(paper, {**ref, "file": refs[paper].get("file", "")}, [])
            assert own == read_csv(render_csv(empty)), where
            # and its label cells are the reference records' values, in print order
            printed = [tuple(r[:len(rows)]) for r in own[1:]]
            records = list(dict.fromkeys(tuple(rec.get(k) for k in rows) for rec in ref["records"]))
            assert len(printed) == len(records), where
            for cells, values in zip(printed, records):
                assert all(label_matches(k, c, v, ref["metrics"]) for k, c, v in zip(rows, cells, values)), \
                    f"{where}: row {cells} is not {values}"
            labels = grid[0] if "method" in cols else [c for r in grid[1:] for c in r[:len(rows)]]
            filled = any(ours(c) for c in labels)
            assert filled == (str(ref["id"]) in FILLED[paper]), f"{where}: reproduced entries {filled}"
            if filled:
                reproduced = [v.get("reproduced") for row in summary[f"table-{ref['id']}"].values()
                              for v in row.values()]
                assert any(isinstance(v, float) for v in reproduced), f"{where}: no reproduced number"


def test_second_repro_is_a_noop(project):
    root, _ = project
    before = snapshot(root)
    again = dvc(root, "repro")
    assert ran(again) == []
    assert "Data and pipelines are up to date" in again
    after = snapshot(root)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert changed == [], f"a no-op repro touched {changed}"
    assert dvc_json(root, "status") == {}


def test_an_edited_mask_set_reruns_only_the_stages_downstream_of_it(project):
    root, _ = project
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["masks"][EDITED_MASKS]["demo"]["seed"] += 100
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    before = snapshot(root)

    # DVC sees the direct change only: downstream deps change once the stage has rerun
    assert set(dvc_json(root, "status")) == {f"masks@{EDITED_MASKS}"}
    out = dvc(root, "repro")
    expected = downstream_of_masks(TINY_ALL, EDITED_MASKS)
    assert set(ran(out)) == expected and len(ran(out)) == len(expected), out
    assert dvc_json(root, "status") == {}

    # every other stage's outputs kept their bytes and mtimes
    after = snapshot(root)
    exps = {(TINY_ALL["inpaint"][e]["paper_id"], e) for e in (s.split("@")[1] for s in expected if s.startswith("inpaint@"))}
    papers = {s.split("@")[1] for s in expected if s.startswith("table@")}
    owned = (f"data/masks/{EDITED_MASKS}/", *(f"runs/{d}/{p}/{e}/" for d in ("inpaint", "blend", "scores") for p, e in exps),
             *(f"runs/metrics/{p}/{e}.json" for p, e in exps), *(f"results/{p}/" for p in papers),
             *(f"results/summary-{p}.json" for p in papers), "dvc.lock", "params.yaml")
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    cached = [k for k in changed if k.startswith(".dvc/cache/") and k not in before]  # the new outputs' copies
    assert [k for k in changed if not k.startswith(owned) and k not in cached] == []
    assert cached
    assert any(k.startswith(f"data/masks/{EDITED_MASKS}/") for k in changed)

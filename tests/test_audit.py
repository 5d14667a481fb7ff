"""``inpaintflow audit``: provenance.json, `dvc status` and a byte-for-byte re-render of a paper's
tables. The comparison logic runs fast on plain dicts and files; one slow test runs the tiny
pipeline under DVC and audits it clean, tampered and with an upstream param edited."""

import contextlib
import copy
import json
import os
from pathlib import Path

import pytest
import yaml

from inpaintflow.cli import main
from inpaintflow.tasks.tables.audit import (AuditReport, CheckResult, Finding, Target, compare_bytes, compare_dirs,
                                            compare_provenance, flatten, key_text, parse_status, render_report,
                                            resolve_target, status_findings, table_summary)
from inpaintflow.tasks.tables.render import (PROVENANCE_FILE, provenance_json, provenance_record, stage_inputs,
                                             write_provenance)
from test_dvc import REPO, TINY, copy_project, dvc

# TINY without its latent-optimisation experiment: the rmnet table alone, about half the repro time
RMNET_ONLY = copy.deepcopy(TINY)
del RMNET_ONLY["train"]["gan"], RMNET_ONLY["inpaint"]["yeh-centre"], RMNET_ONLY["masks"]["centre"]
del RMNET_ONLY["tables"]["refinement"]


def lock_stage(outs: dict[str, str], deps: dict[str, str] | None = None) -> dict:
    return {"cmd": "x", "deps": [{"path": p, "md5": m} for p, m in (deps or {}).items()],
            "outs": [{"path": p, "md5": m} for p, m in outs.items()]}


LOCK = {
    "data@faces": lock_stage({"data/datasets/faces": "d1.dir"}),
    "masks@free": lock_stage({"data/masks/free": "m1.dir"}),
    "train@rm": lock_stage({"runs/rm/checkpoint.pt": "c1", "runs/rm/previews": "p1.dir", "runs/rm/train.json": "t1"},
                           {"data/datasets/faces": "d1.dir"}),
    "inpaint@rm-free": lock_stage({"runs/inpaint/rmnet/rm-free": "i1.dir"},
                                  {"data/datasets/faces": "d1.dir", "data/masks/free": "m1.dir",
                                   "runs/rm/checkpoint.pt": "c1"}),
    "blend@rm-free": lock_stage({"runs/blend/rmnet/rm-free": "b1.dir"}, {"runs/inpaint/rmnet/rm-free": "i1.dir"}),
    "evaluate@rm-free": lock_stage({"runs/scores/rmnet/rm-free": "s1.dir", "runs/metrics/rmnet/rm-free.json": "j1"},
                                   {"runs/inpaint/rmnet/rm-free": "i1.dir", "runs/blend/rmnet/rm-free": "b1.dir"}),
}
DVC_STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
PACKAGES = {"python": "3.11.7", "numpy": "2.4.6"}


def record(params=RMNET_ONLY, lock=LOCK, dvc_stages=DVC_STAGES, code="abc123", packages=PACKAGES) -> dict:
    return provenance_record("rmnet", params, params["profile"], lock, dvc_stages, code, packages)


# ---------------------------------------------------------------------------------------------
# provenance.json


def test_provenance_records_lock_md5s_params_and_seeds_deterministically(tmp_path):
    rec = record()
    assert rec["inputs"]["evaluate@rm-free"] == {"runs/scores/rmnet/rm-free": "s1.dir",
                                                 "runs/metrics/rmnet/rm-free.json": "j1"}
    assert rec["inputs"]["inpaint@rm-free"] == {"runs/inpaint/rmnet/rm-free": "i1.dir"}
    # a train stage: the checkpoint the experiment uses, not its previews or wall-clock train.json
    assert rec["inputs"]["train@rm"] == {"runs/rm/checkpoint.pt": "c1"}
    assert rec["inputs"]["data@faces"] == {"data/datasets/faces": "d1.dir"}
    assert rec["inputs"]["blend@rm-free"] == {"runs/blend/rmnet/rm-free": "b1.dir"} and rec["notes"] == []
    assert rec["params"]["masks.free.demo"] == RMNET_ONLY["masks"]["free"]["demo"]
    assert rec["params"]["inpaint.rm-free"] == RMNET_ONLY["inpaint"]["rm-free"]
    assert rec["params"]["tables.rmnet"] == {} and rec["params"]["profile"] == "demo"
    assert rec["seeds"] == {"data.faces": 0, "masks.free": 2, "train.rm": 0, "inpaint.rm-free": 0}
    assert rec["code"] == "abc123" and rec["packages"] == PACKAGES and rec["experiments"] == ["rm-free"]

    # same inputs, same bytes: two renders, whatever the dicts' insertion order
    shuffled = dict(reversed(list(LOCK.items())))
    a = write_provenance(tmp_path / "a", rec).read_bytes()
    b = write_provenance(tmp_path / "b", record(lock=shuffled)).read_bytes()
    assert a == b
    text = a.decode()
    assert str(tmp_path) not in text and '"/' not in text  # no absolute paths
    assert json.loads(text) == rec
    assert list(json.loads(text)) == sorted(rec)  # sorted keys


def test_provenance_without_dvc_lock_records_nulls_with_notes_and_skips_undefined_stages():
    rec = record(lock={})  # tables rendered outside `dvc repro`
    stages = {"evaluate@rm-free", "inpaint@rm-free", "train@rm", "data@faces", "masks@free"}
    assert stages <= set(rec["inputs"]) and all(rec["inputs"][s] is None for s in stages)
    assert any(n.startswith("evaluate@rm-free: not in dvc.lock") for n in rec["notes"])
    # blend@<exp> is recorded only where dvc.yaml defines it for the experiment
    with_blend = {**DVC_STAGES, "blend": {"foreach": "${inpaint}", "do": {"cmd": "x"}}}
    without_blend = {k: v for k, v in DVC_STAGES.items() if k != "blend"}
    assert "blend@rm-free" in record(lock={}, dvc_stages=with_blend)["inputs"]
    assert "blend@rm-free" not in record(lock={}, dvc_stages=without_blend)["inputs"]
    only_other = {**DVC_STAGES, "blend": {"foreach": ["other-exp"], "do": {"cmd": "x"}}}
    assert "blend@rm-free" not in record(lock={}, dvc_stages=only_other)["inputs"]
    assert record(dvc_stages=with_blend)["inputs"]["blend@rm-free"] == {"runs/blend/rmnet/rm-free": "b1.dir"}


def test_stage_inputs_records_a_train_stage_nobody_depends_on_as_null():
    lock = {"train@rm": LOCK["train@rm"]}
    inputs, notes = stage_inputs(["inpaint@rm-free", "train@rm"], lock, DVC_STAGES, RMNET_ONLY)
    assert inputs == {"inpaint@rm-free": None, "train@rm": None}
    assert len(notes) == 2 and "train@rm" in notes[1]


# ---------------------------------------------------------------------------------------------
# check 1: comparing a recorded provenance with the workspace's


def test_compare_provenance_names_each_key_with_recorded_and_workspace_values():
    recorded = record()
    params = copy.deepcopy(RMNET_ONLY)
    params["masks"]["free"]["demo"]["seed"] = 3
    lock = {**LOCK, "train@rm": lock_stage({"runs/rm/checkpoint.pt": "c2"}, {})}
    current = record(params=params, lock=lock, packages={**PACKAGES, "numpy": "2.5.0"})
    found = {f.subject: f.message for f in compare_provenance(recorded, current)}
    assert found == {
        "params[masks.free.demo].seed": "recorded 2, workspace 3",
        "seeds[masks.free]": "recorded 2, workspace 3",
        "inputs.train@rm[runs/rm/checkpoint.pt]": 'recorded "c1", workspace "c2"',
        "packages.numpy": 'recorded "2.4.6", workspace "2.5.0"',
    }
    assert compare_provenance(recorded, record()) == []


def test_compare_provenance_reports_missing_keys_and_a_dirty_tree_without_failing_on_it():
    recorded = record(code="abc + uncommitted changes")
    current = record(code="abc + uncommitted changes")
    del current["inputs"]["data@faces"]
    findings = compare_provenance(recorded, current)
    failing = [f for f in findings if f.fails]
    assert [(f.subject, f.message) for f in failing] == [
        ("inputs.data@faces[data/datasets/faces]", 'recorded "d1.dir", workspace <absent>')]
    notes = [f for f in findings if not f.fails]
    assert len(notes) == 1 and "uncommitted changes" in notes[0].message
    moved = compare_provenance(record(code="abc"), record(code="def + uncommitted changes"))
    assert moved[0].subject == "code" and moved[0].fails
    assert compare_provenance({**record(), "notes": ["x"]}, record()) == []  # notes explain; not compared
    unlocked = compare_provenance(record(lock={}), record(lock={}))
    assert unlocked and not any(f.fails for f in unlocked)  # nothing to verify them by: reported only
    assert any("evaluate@rm-free: not in dvc.lock" in f.message for f in unlocked)


def test_flatten_and_key_text():
    flat = flatten({"a": {"b": 1, "c/d.json": [1, 2]}, "e": {}})
    assert flat == {("a", "b"): 1, ("a", "c/d.json"): [1, 2], ("e",): {}}
    assert key_text(("params", "masks.free.demo", "seed")) == "params[masks.free.demo].seed"
    assert key_text(("inputs", "train@rm", "runs/rm/checkpoint.pt")) == "inputs.train@rm[runs/rm/checkpoint.pt]"


# ---------------------------------------------------------------------------------------------
# check 2: dvc status


def test_status_findings_and_parsing_around_warnings():
    output = ("WARNING: something DVC wanted to say\n"
              '{"masks@free": [{"changed deps": {"params.yaml": {"masks.free": "modified"}}}], '
              '"table@rmnet": [{"changed outs": {"results/rmnet": "modified"}}, "always changed"]}\n')
    found = status_findings(parse_status(output))
    assert [(f.subject, f.message) for f in found] == [
        ("masks@free", "changed deps: params.yaml masks.free modified"),
        ("table@rmnet", "changed outs: results/rmnet modified; always changed")]
    assert status_findings(parse_status("{}")) == []
    with pytest.raises(ValueError, match="no JSON"):
        parse_status("ERROR: unable to acquire lock")


# ---------------------------------------------------------------------------------------------
# check 3: byte comparison


def test_compare_bytes_gives_a_unified_diff_for_text_and_hashes_for_binary():
    assert compare_bytes(b"a,b\n1,2\n", b"a,b\n1,2\n", "t.csv") is None
    text = compare_bytes(b"a,b\n1,2\n3,4\n", b"a,b\n1,9\n3,4\n", "results/rmnet/table-1.csv")
    assert text.subject == "results/rmnet/table-1.csv" and text.fails
    lines = text.detail.splitlines()
    assert lines[0] == "--- results/rmnet/table-1.csv (recorded)"
    assert lines[1] == "+++ results/rmnet/table-1.csv (recomputed)"
    assert "-1,2" in lines and "+1,9" in lines
    binary = compare_bytes(b"\x89PNG\x00\x01", b"\x89PNG\x00\x02\x03", "grid.png", binary=True)
    assert binary.message == "binary differs"
    assert "recorded   6 bytes, sha256 " in binary.detail and "recomputed 7 bytes, sha256 " in binary.detail
    assert "line endings" in compare_bytes(b"a\r\nb\r\n", b"a\nb\n", "x.md").message
    long = compare_bytes("\n".join(map(str, range(500))).encode(), b"", "big.md")
    assert "more diff lines" in long.detail.splitlines()[-1]


def test_compare_dirs_reports_missing_and_left_over_files(tmp_path):
    rec, new = tmp_path / "rec", tmp_path / "new"
    for folder, files in ((rec, {"a.csv": "1\n", "old.md": "x\n", PROVENANCE_FILE: "{}\n"}),
                          (new, {"a.csv": "2\n", "b.png": "p", PROVENANCE_FILE: "{1}\n"})):
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_text(text)
    findings, count = compare_dirs(rec, new, "results/rmnet", skip=[PROVENANCE_FILE])
    assert count == 3
    assert {f.subject: f.message.split(" (")[0].split(":")[0] for f in findings} == {
        "results/rmnet/a.csv": "differs", "results/rmnet/b.png": "missing",
        "results/rmnet/old.md": "not written by the table stage"}
    only, count = compare_dirs(rec, new, "results/rmnet", only=["a.csv"])
    assert count == 1 and [f.subject for f in only] == ["results/rmnet/a.csv"]


def test_table_summary_is_read_from_dvc_yaml():
    assert table_summary(REPO, "rmnet") == Path("results/summary-rmnet.json")


# ---------------------------------------------------------------------------------------------
# target and report


def test_a_path_outside_results_paper_is_a_one_line_error_naming_it(tmp_path, capsys):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "results" / "rmnet").mkdir(parents=True)
    (tmp_path / "results" / "rmnet" / "table-1.csv").write_text("x\n")
    (tmp_path / "runs").mkdir()
    target = resolve_target(tmp_path / "results" / "rmnet" / "table-1.csv")
    assert (target.root, target.paper, target.file.name) == (tmp_path, "rmnet", "table-1.csv")
    assert resolve_target(tmp_path / "results" / "rmnet").file is None
    for bad, message in ((tmp_path / "runs", "not a paper's results folder"),
                         (tmp_path / "results", "not a paper's results folder"),
                         (tmp_path / "results" / "nope", "no such file or folder")):
        with pytest.raises(SystemExit) as exc:
            main(["audit", str(bad)])
        text = str(exc.value)
        assert text.startswith(f"inpaintflow: error: {bad}: {message}") and "\n" not in text
        assert "results/rmnet/table-1.csv" in text  # the fix: what to pass instead


def test_report_prints_ok_per_check_or_the_failures_with_their_fix(tmp_path):
    target = Target(root=tmp_path, paper="rmnet", results=tmp_path / "results" / "rmnet", file=None)
    ok = AuditReport(target, [CheckResult("provenance", "code abc"), CheckResult("dvc status", skipped="--skip-status"),
                              CheckResult("recompute", "12 files re-rendered byte-identical")])
    text = render_report(ok)
    assert ok.passed and text.splitlines() == [
        "audit results/rmnet (paper rmnet)", "  provenance  OK    code abc", "  dvc status  SKIP  --skip-status",
        "  recompute   OK    12 files re-rendered byte-identical", "OK"]
    diff = Finding("results/rmnet/table-1.csv", "differs (2 lines added or removed)", detail="--- a\n+++ b")
    bad = AuditReport(target, [CheckResult("provenance", "x", [Finding("code", "dirty", fails=False)]),
                               CheckResult("recompute", "x", [diff], fix="dvc repro")])
    text = render_report(bad)
    assert not bad.passed and text.endswith("FAILED: recompute\n")
    assert "      results/rmnet/table-1.csv: differs (2 lines added or removed)\n        --- a\n        +++ b\n" in text
    assert "      fix: dvc repro" in text and "      note: code: dirty" in text


# ---------------------------------------------------------------------------------------------
# end to end under DVC


def audit_cli(project: Path, *args: str, capsys) -> tuple[int, str]:
    with contextlib.chdir(project):
        try:
            main(["audit", *args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
            if not isinstance(exc.code, int):
                print(exc.code)
    return code, capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")  # the stages' processes share the harness API
def test_audit_of_a_reproduced_paper_passes_then_catches_tampering_and_upstream_edits(tmp_path, capsys):
    project = copy_project(tmp_path / "proj", RMNET_ONLY)
    dvc(project, "repro", "table@rmnet")
    results = project / "results" / "rmnet"

    # the stage's provenance.json holds dvc.lock's md5s, and a second render gives the same bytes
    stored = (results / PROVENANCE_FILE).read_bytes()
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    prov = json.loads(stored)
    assert prov["inputs"]["train@rm"] == {"runs/rm/checkpoint.pt": next(
        o["md5"] for o in lock["train@rm"]["outs"] if o["path"] == "runs/rm/checkpoint.pt")}
    assert prov["inputs"]["evaluate@rm-free"]["runs/metrics/rmnet/rm-free.json"] == next(
        o["md5"] for o in lock["evaluate@rm-free"]["outs"] if o["path"] == "runs/metrics/rmnet/rm-free.json")
    assert prov["notes"] == [] and all(v is not None for v in prov["inputs"].values())
    from inpaintflow.tasks.tables.render import render_paper

    with contextlib.chdir(project):
        for again in ("again-1", "again-2"):
            render_paper("rmnet", tmp_path / again, Path("params.yaml"), tmp_path / f"{again}.json")
    renders = [(tmp_path / again / PROVENANCE_FILE).read_bytes() for again in ("again-1", "again-2")]
    assert renders[0] == renders[1] == stored

    code, out = audit_cli(project, "results/rmnet", capsys=capsys)
    assert code == 0, out
    checks = [line.split() for line in out.splitlines() if line.startswith("  ") and not line.startswith("   ")]
    assert [c[:2] for c in checks] == [["provenance", "OK"], ["dvc", "status"], ["recompute", "OK"]]
    assert checks[1][2] == "OK" and "up to date" in out and out.rstrip().endswith("OK")

    # a hand-edited table: the recompute names the file with a diff, and DVC sees the changed out
    csv = results / "table-1.csv"
    original = csv.read_bytes()
    lines = original.decode().splitlines(keepends=True)
    lines[2] = lines[2].rsplit(",", 1)[0] + ",99.99\n"
    csv.write_text("".join(lines))
    code, out = audit_cli(project, "results/rmnet", capsys=capsys)
    assert code == 1
    assert "results/rmnet/table-1.csv: differs" in out
    assert "+" + original.decode().splitlines()[2] in out and "-" + lines[2].strip() in out
    assert "table@rmnet: changed outs: results/rmnet modified" in out
    assert "provenance  OK" in out and "FAILED: dvc status, recompute" in out
    code, out = audit_cli(project, "results/rmnet/table-1.csv", "--skip-status", capsys=capsys)
    assert code == 1 and "1 difference\n" in out and "dvc status  SKIP" in out
    csv.write_bytes(original)
    grid = results / "grid-rm-free.png"
    png = grid.read_bytes()
    grid.write_bytes(png + b"\x00")
    code, out = audit_cli(project, "results/rmnet/grid-rm-free.png", "--skip-status", capsys=capsys)
    assert code == 1 and "results/rmnet/grid-rm-free.png: binary differs" in out
    assert f"recorded   {len(png) + 1} bytes" in out and f"recomputed {len(png)} bytes" in out
    grid.write_bytes(png)
    assert audit_cli(project, "results/rmnet", capsys=capsys)[0] == 0

    # a param used upstream: the provenance names the key, dvc status the stage
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["masks"]["free"]["demo"]["seed"] = 3
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    code, out = audit_cli(project, "results/rmnet", capsys=capsys)
    assert code == 1
    assert "params[masks.free.demo].seed: recorded 2, workspace 3" in out
    assert "masks@free: changed deps: params.yaml masks.free modified" in out
    assert "FAILED: provenance, dvc status, recompute" in out

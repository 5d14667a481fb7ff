"""The paper pipeline flow (flows/pipeline.py): its plan from params.yaml and dvc.yaml, the
repository lock around DVC, stage caching decided by DVC, and one tiny paper run end to end."""

import threading
import time
from pathlib import Path

import pytest
import yaml

from inpaintflow.tasks.pipeline.dvc import run_dvc
from inpaintflow.tasks.pipeline.stages import PlanError, foreach_keys, paper_stages, parse_status
from test_dvc import TINY, copy_project, dvc

REPO = Path(__file__).resolve().parents[1]
PARAMS, DVC_YAML = REPO / "params.yaml", REPO / "dvc.yaml"
PAPERS = ("rmnet", "refinement", "iwgan", "regionwise", "gla")


# --- the plan ---------------------------------------------------------------------------------


def test_plan_rmnet():
    assert paper_stages("rmnet", PARAMS, DVC_YAML) == [
        "data@celeba-hq-256", "masks@rmnet-quickdraw", "train@rmnet", "inpaint@rmnet-celeba-hq",
        "blend@rmnet-celeba-hq", "evaluate@rmnet-celeba-hq", "table@rmnet"]


def test_plan_iwgan():
    assert paper_stages("iwgan", PARAMS, DVC_YAML) == [
        "data@celeba-64", "masks@iwgan-center-square", "masks@iwgan-three-squares", "train@iwgan",
        "inpaint@iwgan-center-square", "inpaint@iwgan-three-squares",
        "blend@iwgan-center-square", "blend@iwgan-three-squares",
        "evaluate@iwgan-center-square", "evaluate@iwgan-three-squares", "table@iwgan"]


def test_plan_gla():
    assert paper_stages("gla", PARAMS, DVC_YAML) == [
        "data@celeba-hq-256", "masks@gla-free-form", "train@gla", "inpaint@gla-free-form",
        "blend@gla-free-form", "evaluate@gla-free-form", "table@gla"]


@pytest.mark.parametrize("paper", PAPERS)
def test_plan_of_every_paper_covers_its_experiments_in_group_order(paper):
    raw = yaml.safe_load(PARAMS.read_text())
    groups = yaml.safe_load(DVC_YAML.read_text())["stages"]
    plan = paper_stages(paper, PARAMS, DVC_YAML)
    assert len(plan) == len(set(plan))
    order = ["data", "masks", "train", "inpaint", "blend", "evaluate", "table"]
    ranks = [order.index(stage.split("@")[0]) for stage in plan]
    assert ranks == sorted(ranks)
    for stage in plan:  # every planned stage is one dvc.yaml defines
        group, key = stage.split("@")
        assert key in foreach_keys(groups[group], raw), stage
    experiments = [name for name, entry in raw["inpaint"].items() if entry["paper_id"] == paper]
    assert experiments
    for name in experiments:
        entry = raw["inpaint"][name]
        for stage in (f"data@{entry['data']}", f"masks@{entry['masks']}", f"train@{entry['run']}",
                      f"data@{raw['train'][entry['run']]['data']}", f"inpaint@{name}", f"blend@{name}",
                      f"evaluate@{name}"):
            assert stage in plan
    assert plan[-1] == f"table@{paper}"
    assert sum(s.startswith("evaluate@") for s in plan) == len(set(experiments))


def test_plan_refinement_shares_one_dataset_run_and_centre_mask_set():
    plan = paper_stages("refinement", PARAMS, DVC_YAML)
    assert [s for s in plan if s.split("@")[0] in ("data", "train")] == ["data@celeba-64", "train@refinement"]
    # two experiments reuse the centre-square masks: one masks stage, eight inpaint stages
    assert plan.count("masks@refinement-center-square") == 1
    assert sum(s.startswith("masks@") for s in plan) == 6 and sum(s.startswith("inpaint@") for s in plan) == 8


def test_unknown_paper_names_it_and_the_known_ids():
    with pytest.raises(PlanError) as err:
        paper_stages("000", PARAMS, DVC_YAML)
    assert "'000'" in str(err.value) and "known: rmnet, refinement, iwgan, regionwise, gla" in str(err.value)


def test_cli_dry_run_prints_the_plan_and_rejects_an_unknown_paper(monkeypatch, capsys):
    from inpaintflow.cli import main

    monkeypatch.chdir(REPO)
    main(["pipeline", "iwgan", "--dry-run"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("paper iwgan: 11 stages")
    assert [line.split()[1] for line in lines[1:]] == paper_stages("iwgan", PARAMS, DVC_YAML)
    with pytest.raises(SystemExit, match="unknown paper 'nope'.*known: rmnet, refinement"):
        main(["pipeline", "nope", "--dry-run"])


def _dvc_yaml(tmp_path: Path, edit) -> Path:
    stages = yaml.safe_load(DVC_YAML.read_text())
    edit(stages["stages"])
    path = tmp_path / "dvc.yaml"
    path.write_text(yaml.safe_dump(stages, sort_keys=False))
    return path


def test_blend_stages_only_where_dvc_yaml_defines_them(tmp_path):
    without = _dvc_yaml(tmp_path, lambda s: s.pop("blend", None))
    assert not any(s.startswith("blend@") for s in paper_stages("iwgan", PARAMS, without))
    assert "evaluate@iwgan-three-squares" in paper_stages("iwgan", PARAMS, without)

    def blend_one(stages):  # a blend group over an explicit list of experiments
        stages["blend"] = {"foreach": ["iwgan-three-squares"], "do": {"cmd": "true"}}

    subset = paper_stages("iwgan", PARAMS, _dvc_yaml(tmp_path, blend_one))
    assert [s for s in subset if s.startswith("blend@")] == ["blend@iwgan-three-squares"]
    assert subset.index("blend@iwgan-three-squares") < subset.index("evaluate@iwgan-center-square")


def test_plan_errors_name_the_missing_stage_group(tmp_path):
    with pytest.raises(PlanError, match=r"dvc.yaml: no stage group table"):
        paper_stages("rmnet", PARAMS, _dvc_yaml(tmp_path, lambda s: s.pop("table")))

    def evaluate_list(stages):
        stages["evaluate"]["foreach"] = ["iwgan-center-square"]

    with pytest.raises(PlanError, match=r"stage evaluate@iwgan-three-squares does not exist"):
        paper_stages("iwgan", PARAMS, _dvc_yaml(tmp_path, evaluate_list))


def test_parse_status_reads_dvc_json_after_warnings():
    assert parse_status("{}\n", "a") == []
    report = 'WARNING: something\n{"a": [{"changed outs": {"out.txt": "deleted"}}]}\n'
    assert parse_status(report, "a") == [{"changed outs": {"out.txt": "deleted"}}]
    with pytest.raises(PlanError, match="printed no JSON"):
        parse_status("ERROR: failed to reproduce\n", "a")


# --- the repository lock ----------------------------------------------------------------------

SLOW_STAGE = """import sys, time
print("begin", repr(time.time()), flush=True)
time.sleep(float(sys.argv[1]))
print("end", repr(time.time()), flush=True)
"""


def _mini_repo(path: Path, stages: dict) -> Path:
    path.mkdir()
    dvc(path, "init", "--no-scm", "-q")
    (path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    return path


def test_run_dvc_never_overlaps_two_threads_on_one_repo(tmp_path):
    """A repro holds the repository while its stage runs; a second thread's DVC command starts
    only after it. (`dvc version` takes no DVC lock, so without run_dvc's own lock it would
    finish in the middle of the stage.)"""
    (tmp_path / "slow.py").write_text(SLOW_STAGE)
    repo = _mini_repo(tmp_path / "repo", {"slow": {"cmd": f"python {tmp_path / 'slow.py'} 3"}})
    events: list[tuple[float, str, str]] = []  # (wall time, thread, line)
    began = threading.Event()
    errors: list[BaseException] = []

    def first():
        def log(line):
            events.append((time.time(), "repro", line))
            if line.startswith("begin"):
                began.set()
        try:
            run_dvc(["repro", "--force", "--single-item", "slow"], repo, log=log)
        except BaseException as exc:  # noqa: BLE001  (reported by the main thread)
            errors.append(exc)
            began.set()

    def second():
        began.wait(120)
        try:
            run_dvc(["version"], repo, log=lambda line: events.append((time.time(), "version", line)))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert not errors, errors
    stage_end = next(float(line.split()[1]) for _, who, line in events if who == "repro" and line.startswith("end"))
    version_lines = [(t, line) for t, who, line in events if who == "version"]
    assert any("DVC version" in line for _, line in version_lines)
    assert min(t for t, _ in version_lines) > stage_end
    # every line of the repro (DVC's own, after the stage) came before the first of `dvc version`
    last_repro = max(t for t, who, _ in events if who == "repro")
    assert last_repro <= min(t for t, _ in version_lines)


# --- caching decided by DVC -------------------------------------------------------------------

COPY = "python -c \"import shutil; shutil.copy('in.txt', 'out.txt')\""


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.filterwarnings("ignore:Logger 'prefect.task_runs' attempted to send logs")  # no flow run
def test_stage_task_is_cached_only_while_dvc_says_up_to_date(tmp_path):
    from inpaintflow.flows.pipeline import repro_stage

    repo = _mini_repo(tmp_path / "repo", {"copy": {"cmd": COPY, "deps": ["in.txt"], "outs": ["out.txt"]}})
    (repo / "in.txt").write_text("one\n")

    def run() -> str:
        state = repro_stage("copy", repo, return_state=True)
        assert state.result() == ["out.txt"]
        return state.name

    assert run() == "Completed" and (repo / "out.txt").read_text() == "one\n"  # DVC: changed, no key
    assert run() == "Completed"  # up to date, first seen in this state: recorded (a no-op repro)
    assert run() == "Cached"
    (repo / "out.txt").unlink()  # an output gone (a fresh clone with the DVC cache only)
    assert run() == "Completed" and (repo / "out.txt").read_text() == "one\n"
    assert run() == "Cached"  # the same dvc.lock record as before the deletion: the same key


# --- one tiny paper end to end ----------------------------------------------------------------


@pytest.mark.slow  # 1-2 min: seven tiny stages, each a process that imports torch and prefect
@pytest.mark.usefixtures("prefect_harness")
def test_tiny_rmnet_pipeline_runs_then_is_a_noop_then_is_cached(tmp_path):
    from inpaintflow.flows.pipeline import paper_pipeline

    project = copy_project(tmp_path / "proj", TINY)
    expected = ["data@faces", "masks@free", "train@rm", "inpaint@rm-free", "blend@rm-free", "evaluate@rm-free",
                "table@rmnet"]

    first = paper_pipeline(paper="rmnet", repo=project)
    assert [r["stage"] for r in first] == expected and not any(r["cached"] for r in first)
    tables = sorted((project / "results/rmnet").glob("table-*.csv"))
    assert tables and (project / "results/summary-rmnet.json").is_file()
    assert "results/rmnet" in first[-1]["outs"]
    # each planned stage is up to date (not --with-deps: table@<paper> depends on the runs/ folders
    # that every paper's experiments write into, and the other paper's are not built here)
    assert "up to date" in dvc(project, "status", *expected).lower()
    lock = (project / "dvc.lock").read_text()
    written = {p: p.stat().st_mtime_ns for p in tables}

    second = paper_pipeline(paper="rmnet", repo=project)  # DVC: nothing to do; the cache records it
    assert (project / "dvc.lock").read_text() == lock
    assert {p: p.stat().st_mtime_ns for p in tables} == written

    third = paper_pipeline(paper="rmnet", repo=project)
    assert all(r["cached"] for r in third), third
    assert [r["outs"] for r in third] == [r["outs"] for r in second]

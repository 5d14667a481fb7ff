"""Nightly retraining: the `nightly-retrain` deployment (prefect.yaml and flows/nightly.py), its
schedule, the `nightly` params, and the flow itself in temporary git + DVC repositories."""

import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from inpaintflow.cli import main
from inpaintflow.flows.nightly import DEPLOYMENT, ENTRYPOINT, FLOW_NAME, RegressionError, build_deployment, next_runs
from inpaintflow.params import ParamsError, load_group, validate_file
from inpaintflow.tasks.pipeline.git import GitError
from test_dvc import REPO, TINY, copy_project, dvc

UTC = dt.timezone.utc


def _deployment_yaml() -> dict:
    project = yaml.safe_load((REPO / "prefect.yaml").read_text())
    matches = [d for d in project["deployments"] if d["name"] == DEPLOYMENT]
    assert len(matches) == 1, f"prefect.yaml: one deployment named {DEPLOYMENT}"
    return matches[0]


def test_deployment_is_declared_alike_in_prefect_yaml_code_and_params():
    declared = _deployment_yaml()
    (schedule,) = declared["schedules"]
    settings = load_group("nightly", REPO / "params.yaml")
    assert (schedule["cron"], schedule["timezone"]) == (settings.cron, settings.timezone) == ("0 2 * * *", "UTC")
    assert declared["entrypoint"] == ENTRYPOINT

    module, name = ENTRYPOINT.split(":")  # the entrypoint resolves to the flow
    assert (REPO / module).is_file()
    import inpaintflow.flows.nightly

    assert getattr(inpaintflow.flows.nightly, name).name == FLOW_NAME

    deployment = build_deployment(REPO / "params.yaml", REPO)
    assert (deployment.name, deployment.flow_name, deployment.entrypoint) == (DEPLOYMENT, FLOW_NAME, ENTRYPOINT)
    (code,) = deployment.schedules
    assert (code.schedule.cron, code.schedule.timezone) == (schedule["cron"], schedule["timezone"])
    assert set(declared["parameters"]) <= set(deployment.parameters)

    after = dt.datetime(2026, 3, 14, 15, 30, tzinfo=UTC)
    assert next_runs(code.schedule.cron, code.schedule.timezone, 2, after) == [
        dt.datetime(2026, 3, 15, 2, 0, tzinfo=UTC), dt.datetime(2026, 3, 16, 2, 0, tzinfo=UTC)]


def test_no_dvc_stage_depends_on_the_nightly_params():
    """Tolerances, papers or the schedule change what a nightly run checks, never what it builds."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    keys = [str(k) for s in stages.values() for k in (s.get("do", s).get("params") or [])]
    assert keys and not [k for k in keys if k == "nightly" or k.startswith("nightly.")]


def test_schedule_show_lists_the_next_runs(capsys, tmp_path):
    main(["schedule", "show", "--after", "2026-01-01T03:00:00Z", "--count", "3",
          "--params", str(REPO / "params.yaml")])
    out = capsys.readouterr().out
    assert 'cron "0 2 * * *", timezone UTC' in out
    assert [line.strip() for line in out.splitlines()[-3:]] == [
        "2026-01-02 02:00 UTC", "2026-01-03 02:00 UTC", "2026-01-04 02:00 UTC"]

    params = tmp_path / "params.yaml"  # another zone: local times, and UTC beside them
    params.write_text(yaml.safe_dump({**TINY, "nightly": {"papers": ["rmnet"], "timezone": "Europe/Berlin"}}))
    main(["schedule", "show", "--after", "2026-07-01T00:00:00Z", "--count", "1", "--params", str(params)])
    assert capsys.readouterr().out.splitlines()[-1].strip() == "2026-07-01 02:00 Europe/Berlin  (2026-07-01 00:00 UTC)"


@pytest.mark.parametrize("nightly, message", [
    ({"tolerances": {"psnrr": 0.5}}, r"nightly\.tolerances\.psnrr: Extra inputs"),
    ({"tolerances": {"psnr": -1}}, r"nightly\.tolerances\.psnr: .*greater than or equal to 0"),
    ({"cron": "0 25 * * *"}, r"nightly\.cron: .*Invalid cron string"),
    ({"cron": "@daily"}, r"nightly\.cron: .*5 fields"),
    ({"timezone": "Mars/Olympus"}, r"nightly\.timezone: .*unknown time zone"),
    ({"papers": ["rmnet", "gan"]}, r"nightly\.papers: .*unknown paper 'gan'"),
    ({"papers": ["gla"]}, r"nightly\.papers\.0: 'gla' has no tables entry"),
    ({"branch_prefix": "night ly/"}, r"nightly\.branch_prefix: .*cannot start a git branch"),
    ({"push": "maybe"}, r"nightly\.push: "),
])
def test_nightly_params_errors_name_the_key(tmp_path, nightly, message):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({**TINY, "nightly": nightly}))
    with pytest.raises(ParamsError, match=message):
        validate_file(params)


def test_nightly_params_default_when_absent(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(TINY))
    settings = load_group("nightly", params)
    assert settings.papers == ["rmnet", "refinement", "iwgan", "regionwise", "gla"]
    assert (settings.cron, settings.timezone) == ("0 2 * * *", "UTC")
    assert (settings.branch_prefix, settings.push) == ("nightly/", True)
    assert settings.tolerances.psnr == 0.5


# --- the flow, in temporary repositories ------------------------------------------------------

GIT_ID = {"GIT_AUTHOR_NAME": "nightly", "GIT_AUTHOR_EMAIL": "nightly@example.com",
          "GIT_COMMITTER_NAME": "nightly", "GIT_COMMITTER_EMAIL": "nightly@example.com"}


@pytest.fixture
def stage_env(prefect_harness, monkeypatch):
    """DVC's stage processes (`inpaintflow ... stage`) report to the harness' API, not a server of
    their own; git commits get an identity."""
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
    for key, value in GIT_ID.items():
        monkeypatch.setenv(key, value)


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=repo, text=True, capture_output=True)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A", "--", "params.yaml", "runs", "results", "dvc.lock")
    git(repo, "commit", "-qm", message)


# A stand-in pipeline with the real one's shape (table@<paper> writes runs/metrics/<paper>/<experiment>.json,
# a cached output and a git-tracked results folder): the flow's DVC and git steps in seconds.
FAKE_STAGE = '''
import json, sys
from pathlib import Path
import yaml
paper = sys.argv[1]
psnr = yaml.safe_load(open("params.yaml"))["fake"]["psnr"]
for name in ("data/blob", f"runs/metrics/{paper}", f"results/{paper}"):
    Path(name).mkdir(parents=True, exist_ok=True)
Path(f"data/blob/{paper}.bin").write_bytes(repr(psnr).encode() * 1000)
total = {"psnr_mean": psnr, "psnr_std": 1.0, "ssim_mean": 0.9, "mae_mean": 3.0}
Path(f"runs/metrics/{paper}/{paper}-exp.json").write_text(json.dumps({"results": [{"method": "M", "total": total}]}))
Path(f"results/{paper}/table.md").write_text(f"| PSNR | {psnr} |\\n")
'''
FAKE_DVC = {"stages": {"table": {"foreach": "${tables}", "do": {
    "cmd": "python fake_stage.py ${key}", "deps": ["fake_stage.py"], "params": ["fake"],
    "outs": ["data/blob/${key}.bin", {"results/${key}": {"cache": False}}],
    "metrics": [{"runs/metrics/${key}/${key}-exp.json": {"cache": False}}]}}}}


def fake_project(root: Path, psnr: float) -> Path:
    root.mkdir()
    (root / ".dvc").mkdir()
    (root / ".dvc/config").write_text((REPO / ".dvc/config").read_text())  # the shipped default remote
    (root / "dvc.yaml").write_text(yaml.safe_dump(FAKE_DVC, sort_keys=False))
    (root / "fake_stage.py").write_text(FAKE_STAGE)
    (root / ".gitignore").write_text("/dvc-remote/\n/.dvc/cache/\n/.dvc/tmp/\n")
    params = {"profile": "demo", "inpaint": {"rmnet-exp": {"paper_id": "rmnet"}}, "tables": {"rmnet": {}},
              "nightly": {"papers": ["rmnet"], "tolerances": {"psnr": 0.5}}, "fake": {"psnr": psnr}}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    return root


def set_psnr(repo: Path, psnr: float) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["fake"]["psnr"] = psnr
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_flow_commits_on_the_date_branch_pushes_and_fails_on_a_regression(tmp_path, stage_env):
    from inpaintflow.flows.nightly import nightly_retrain

    repo = fake_project(tmp_path / "repo", psnr=20.0)
    remote = repo / "dvc-remote"
    first = nightly_retrain(repo=str(repo), date="2026-01-02")
    assert first["branch"] == "nightly/2026-01-02" and first["pushed"] and first["commit"]
    assert git(repo, "branch", "--show-current").strip() == "nightly/2026-01-02"
    committed = set(git(repo, "show", "--name-only", "--format=", "HEAD").split())
    assert committed == {"dvc.lock", "data/blob/.gitignore", "results/rmnet/table.md",
                         "runs/metrics/rmnet/rmnet-exp.json"}
    assert git(repo, "log", "-1", "--format=%s").strip() == "nightly 2026-01-02: rmnet"
    assert "no committed baseline for: runs/metrics/rmnet/rmnet-exp.json" in git(repo, "log", "-1", "--format=%b")
    assert any(remote.rglob("*")), "the cached output went to the default remote"
    assert "in sync" in dvc(repo, "status", "--cloud")

    # within tolerance (-0.3 dB), the same day: the branch is reused, the change is listed
    set_psnr(repo, 19.7)
    commit_all(repo, "params: psnr 19.7")
    again = nightly_retrain(repo=str(repo), date="2026-01-02")
    assert again["branch"] == "nightly/2026-01-02" and again["commit"] != first["commit"]
    body = git(repo, "log", "-1", "--format=%b")
    assert "runs/metrics/rmnet/rmnet-exp.json results[M].total.psnr_mean: psnr 20 -> 19.7 (-0.3)" in body

    # beyond tolerance: the run fails naming the metric; nothing is pushed or committed
    set_psnr(repo, 18.5)
    commit_all(repo, "params: psnr 18.5")
    head, pushed = git(repo, "rev-parse", "HEAD"), sorted(remote.rglob("*"))
    with pytest.raises(RegressionError) as failed:
        nightly_retrain(repo=str(repo), date="2026-01-03")
    report = str(failed.value)
    assert "results[M].total.psnr_mean: psnr 19.7 -> 18.5 (-1.2); higher is better, tolerance 0.5" in report
    assert "1 metric value(s) regressed beyond tolerance" in report  # psnr_mean alone; ssim, mae unchanged
    assert git(repo, "rev-parse", "HEAD") == head and sorted(remote.rglob("*")) == pushed
    assert "nightly/2026-01-03" not in git(repo, "branch", "--list")


def test_flow_refuses_uncommitted_code_or_params(tmp_path, stage_env):
    from inpaintflow.flows.nightly import nightly_retrain

    repo = fake_project(tmp_path / "repo", psnr=20.0)
    set_psnr(repo, 21.0)  # results would be committed beside params they did not come from
    with pytest.raises(GitError, match="uncommitted changes in params.yaml"):
        nightly_retrain(repo=str(repo), date="2026-01-02")
    assert not (repo / "dvc.lock").exists()  # refused before anything ran


# --- the real pipeline, one paper -------------------------------------------------------------

NIGHTLY_TINY = {
    "profile": "demo",
    "data": TINY["data"],
    "masks": {"free": TINY["masks"]["free"]},
    "train": {"rm": TINY["train"]["rm"]},
    "inpaint": {"rm-free": TINY["inpaint"]["rm-free"]},
    "evaluate": TINY["evaluate"],
    "tables": {"rmnet": TINY["tables"]["rmnet"]},
    "nightly": {"papers": ["rmnet"]},
}


@pytest.mark.slow
def test_nightly_run_on_the_demo_pipeline(tmp_path, stage_env, monkeypatch):
    """One paper of the tiny demo pipeline: retrained, committed on the date branch, pushed to
    the default remote; then a committed score that looks better makes the next run fail."""
    from inpaintflow.flows.nightly import nightly_retrain

    repo = copy_project(tmp_path / "proj", NIGHTLY_TINY)
    monkeypatch.setenv("INPAINTFLOW_STATE_DIR", str(repo / ".inpaintflow"))
    result = nightly_retrain(repo=str(repo), date="2026-02-01")
    assert result["branch"] == "nightly/2026-02-01" and result["pushed"]
    files = set(git(repo, "show", "--name-only", "--format=", "HEAD").split())
    assert {"dvc.lock", "runs/metrics/rmnet/rm-free.json", "results/summary-rmnet.json", "runs/rm/train.json"} <= files
    assert any(f.startswith("results/rmnet/table-") for f in files)
    cached = [f for f in files if f.endswith((".pt", ".png")) and not f.startswith("results/")]
    assert not cached, "cached outputs stay out of git"
    assert "in sync" in dvc(repo, "status", "--cloud")
    assert "up to date" in dvc(repo, "status").lower()

    # editing the nightly settings retrains nothing
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["nightly"]["tolerances"] = {"psnr": 0.1}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert "up to date" in dvc(repo, "status").lower()
    commit_all(repo, "nightly: psnr tolerance 0.1 dB")

    # the last commit claims a better R-MNet PSNR: the rerun (evaluate, table) now falls short
    path = repo / "runs/metrics/rmnet/rm-free.json"
    scores = json.loads(path.read_text())
    total = scores["results"][0]["total"]
    claimed = total["psnr_mean"] + 2.0
    total["psnr_mean"] = claimed
    path.write_text(json.dumps(scores, indent=2))
    commit_all(repo, "a better-looking score")
    with pytest.raises(RegressionError) as failed:
        nightly_retrain(repo=str(repo), date="2026-02-02")
    report = str(failed.value)
    assert (f"runs/metrics/rmnet/rm-free.json results[R-MNet-0.4].total.psnr_mean: psnr {claimed:g} -> "
            f"{claimed - 2.0:g} (-2); higher is better, tolerance 0.1") in report
    assert "nightly/2026-02-02" not in git(repo, "branch", "--list")

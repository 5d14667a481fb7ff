"""The default DVC remote (.dvc/config `local`): outputs pushed, then wiped from the cache and
the workspace, come back byte for byte with `dvc pull`."""

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from test_dvc import REPO, TINY, copy_project, dvc


def digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_default_remote_is_a_git_ignored_folder_in_the_checkout():
    config = (REPO / ".dvc/config").read_text()
    assert "remote = local" in config and "url = ../dvc-remote" in config  # relative to .dvc/
    ignored = subprocess.run(["git", "check-ignore", "--no-index", "dvc-remote/files/md5/00/x"], cwd=REPO,
                             capture_output=True, text=True)
    assert ignored.returncode == 0, "dvc-remote/ must be git-ignored"


@pytest.mark.usefixtures("prefect_harness")
def test_push_then_pull_restores_outputs_byte_identical(tmp_path, monkeypatch):
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())  # the stages report to the harness
    project = copy_project(tmp_path / "proj", TINY)
    targets = ["masks@centre", "data@faces"]
    dvc(project, "repro", *targets)
    outputs = [project / "data/masks/centre", project / "data/datasets/faces"]
    before = {str(o): digests(o) for o in outputs}
    assert all(before.values())

    assert "files pushed" in dvc(project, "push", *targets)
    remote = project / "dvc-remote"  # ../dvc-remote from .dvc/
    stored = {p.parent.name + p.name for p in remote.glob("files/md5/*/*")}  # content-addressed by md5
    assert {hashlib.md5(p.read_bytes()).hexdigest() for o in outputs for p in o.rglob("*") if p.is_file()} <= stored

    shutil.rmtree(project / ".dvc/cache")
    for out in outputs:
        shutil.rmtree(out)
    dvc(project, "pull", *targets)
    assert {str(o): digests(o) for o in outputs} == before
    assert "up to date" in dvc(project, "status", *targets).lower()

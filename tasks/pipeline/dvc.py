"""Running DVC from Python (the Prefect flows that drive ``dvc repro``, push, pull, metrics).

DVC allows one repro per repository at a time (it takes ``.dvc/tmp/rwlock`` and fails fast when
another command holds it). Flows may run tasks concurrently, so every DVC command issued from
this project goes through :func:`run_dvc`, which holds an exclusive lock file for the repository
while the command runs: two of our DVC commands never overlap; a second one waits its turn.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

LOCK_NAME = "inpaintflow-dvc.lock"  # under .dvc/tmp (DVC's own scratch directory, git-ignored)


class DvcError(RuntimeError):
    pass


def lock_path(repo: Path) -> Path:
    return Path(repo) / ".dvc" / "tmp" / LOCK_NAME


@contextmanager
def repository_lock(repo: Path, timeout_s: float | None = None) -> Iterator[None]:
    """Exclusive, process-wide lock on ``repo``'s DVC commands (released on exit or process death)."""
    path = lock_path(repo)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        start = time.monotonic()
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if timeout_s is not None and time.monotonic() - start > timeout_s:
                    raise DvcError(f"{path}: another DVC command of this project is still running "
                                   f"after {timeout_s:.0f} s") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def dvc_command() -> list[str]:
    """DVC from this interpreter's environment (the venv), whatever PATH says."""
    return [sys.executable, "-m", "dvc"]


def run_dvc(args: Sequence[str], repo: Path, log: Callable[[str], None] | None = None,
            check: bool = True, timeout_s: float | None = None) -> subprocess.CompletedProcess:
    """``dvc ARGS`` in ``repo`` under the repository lock. Output is streamed to ``log`` line by
    line (progress stays visible in long repros) and returned; a failure raises :class:`DvcError`
    with the command and the tail of its output."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [*dvc_command(), *args]
    lines: list[str] = []
    with repository_lock(repo):
        proc = subprocess.Popen(cmd, cwd=repo, env=env, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if log is not None:
                log(line.rstrip("\n"))
        code = proc.wait(timeout=timeout_s)
    output = "".join(lines)
    if check and code != 0:
        tail = "\n".join(output.splitlines()[-30:])
        raise DvcError(f"`dvc {' '.join(args)}` in {repo} exited {code}:\n{tail}")
    return subprocess.CompletedProcess(cmd, code, output, "")

"""Where Prefect runs: a project-local home, telemetry off, and one reusable local API server.

Prefect needs an API. Without one it starts an *ephemeral* server inside every process, which
costs 8-20 s here, and every DVC stage is a new process. So the CLI resolves the API in this
order, before prefect is imported:

1. ``PREFECT_API_URL`` set by the user (their own server or Prefect Cloud): used as is.
2. A server that ``inpaintflow server start`` left running for this project (recorded in
   ``<state>/prefect/server.json``): reused.
3. Otherwise, with ``INPAINTFLOW_PREFECT_SERVER=auto`` (the default) such a server is started
   in the background on 127.0.0.1 and reused by later commands; with ``ephemeral`` Prefect's
   per-process server is used instead.

The state directory is ``.inpaintflow/`` in the project root (``INPAINTFLOW_STATE_DIR`` moves
it): ``prefect/`` is ``PREFECT_HOME`` (SQLite database, logs), ``prefect/storage`` holds
persisted task results that the caches point at.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from inpaintflow.conventions import write_text_atomic

SERVER_MODES = ("auto", "ephemeral")


def project_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` holding dvc.yaml or pyproject.toml."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "dvc.yaml").is_file() or (candidate / "pyproject.toml").is_file():
            return candidate
    return here


def state_dir(root: Path | None = None) -> Path:
    override = os.environ.get("INPAINTFLOW_STATE_DIR")
    return Path(override).resolve() if override else project_root(root) / ".inpaintflow"


def prefect_home(root: Path | None = None) -> Path:
    return state_dir(root) / "prefect"


def configure_environment(root: Path | None = None) -> None:
    """Set Prefect's and DVC's environment for this project. Call before importing prefect."""
    home = prefect_home(root)
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(home))
    os.environ.setdefault("PREFECT_LOCAL_STORAGE_PATH", str(home / "storage"))
    os.environ.setdefault("PREFECT_RESULTS_PERSIST_BY_DEFAULT", "true")
    # telemetry off unless the user turned it on explicitly
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ.setdefault("ITERATIVE_DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")


# ---------------------------------------------------------------------------------------------
# the local server


@dataclass(frozen=True)
class ServerInfo:
    pid: int
    url: str  # API URL, e.g. http://127.0.0.1:4321/api
    log: str


def _server_file(root: Path | None = None) -> Path:
    return prefect_home(root) / "server.json"


def _healthy(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout_s) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_server(root: Path | None = None) -> ServerInfo | None:
    """The project's recorded server, if its process is alive and answers."""
    path = _server_file(root)
    if not path.is_file():
        return None
    try:
        info = ServerInfo(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None
    if _alive(info.pid) and _healthy(info.url):
        return info
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(root: Path | None = None, port: int | None = None, timeout_s: float = 90.0) -> ServerInfo:
    """Start (or reuse) this project's Prefect server on 127.0.0.1, in the background."""
    configure_environment(root)
    info = running_server(root)
    if info:
        return info
    port = port or _free_port()
    home = prefect_home(root)
    log = home / "server.log"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    with open(log, "ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
             "--port", str(port)],
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, start_new_session=True,  # outlives this command, as intended
        )
    info = ServerInfo(pid=proc.pid, url=f"http://127.0.0.1:{port}/api", log=str(log))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Prefect server exited with code {proc.returncode}; see {log}")
        if _healthy(info.url):
            write_text_atomic(_server_file(root), json.dumps(info.__dict__))
            return info
        time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"Prefect server did not answer within {timeout_s:.0f} s; see {log}")


def stop_server(root: Path | None = None) -> bool:
    path = _server_file(root)
    info = running_server(root)
    if path.exists():
        path.unlink()
    if info is None:
        return False
    os.killpg(info.pid, signal.SIGTERM)
    for _ in range(50):
        if not _alive(info.pid):
            break
        time.sleep(0.1)
    return True


def resolve_api(root: Path | None = None, mode: str | None = None) -> str:
    """Point Prefect at an API (see the module docstring); returns a description for logs."""
    configure_environment(root)
    if os.environ.get("PREFECT_API_URL"):
        return f"PREFECT_API_URL={os.environ['PREFECT_API_URL']}"
    mode = mode or os.environ.get("INPAINTFLOW_PREFECT_SERVER", "auto")
    if mode not in SERVER_MODES:
        raise ValueError(f"INPAINTFLOW_PREFECT_SERVER: must be one of {SERVER_MODES}, got {mode!r}")
    info = running_server(root)
    if info is None and mode == "auto":
        info = start_server(root)
        print(f"[inpaintflow] started a local Prefect server at {info.url.removesuffix('/api')} "
              f"(stop it with `inpaintflow server stop`)", file=sys.stderr)
    if info is None:
        return "ephemeral Prefect server"
    os.environ["PREFECT_API_URL"] = info.url
    return f"local Prefect server {info.url}"


# ---------------------------------------------------------------------------------------------
# where tasks run

DASK_ADDRESS_ENV = "INPAINTFLOW_DASK_ADDRESS"


def dask_address() -> str | None:
    """The Dask scheduler that data-parallel tasks go to, from ``INPAINTFLOW_DASK_ADDRESS``.

    An environment variable, not a DVC param: where work runs must not change results, nor
    invalidate stages.
    """
    return os.environ.get(DASK_ADDRESS_ENV, "").strip() or None


def task_runner():
    """The Prefect task runner of the data-parallel flows (datasets, masks, metrics).

    ``DaskTaskRunner`` on the existing cluster that ``INPAINTFLOW_DASK_ADDRESS`` names (its
    workers must import this project and see the same data paths), else Prefect's default, a
    thread pool in this process. Read when called, so a flow run picks the runner of its time.
    """
    address = dask_address()
    if address is None:
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner()
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        raise RuntimeError(f"{DASK_ADDRESS_ENV}={address}: prefect-dask is not installed; "
                           f"run `pip install -e '.[dask]'`, or unset {DASK_ADDRESS_ENV} to run here") from None
    return DaskTaskRunner(address=address)


def with_task_runner(flow):
    """``flow`` with the runner :func:`task_runner` picks now: call this when the flow runs."""
    return flow.with_options(task_runner=task_runner())

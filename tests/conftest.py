"""Shared fixtures. Prefect state goes to a temporary directory, never the project's."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_STATE = Path(tempfile.mkdtemp(prefix="inpaintflow-test-state-"))
os.environ["INPAINTFLOW_STATE_DIR"] = str(_STATE)
os.environ.pop("PREFECT_API_URL", None)
from inpaintflow.runtime import configure_environment  # noqa: E402  (must precede prefect)

configure_environment()

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect API for the whole session (Prefect's own test harness)."""
    from prefect.testing.utilities import prefect_test_harness

    from prefect.settings import PREFECT_API_URL

    with prefect_test_harness(server_startup_timeout=120):
        # the harness sets the URL in Prefect's settings only; exported, the subprocesses a test
        # starts (DVC stages, CLI runs) use the same API instead of each starting its own server
        previous = os.environ.get("PREFECT_API_URL")
        os.environ["PREFECT_API_URL"] = PREFECT_API_URL.value()
        try:
            yield os.environ["PREFECT_API_URL"]
        finally:
            if previous is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = previous


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent (tests on real shared data are skipped)")
    return SHARED


@pytest.fixture
def one_torch_thread():
    """Tiny convolutions run faster on one thread, and do not stall on a busy 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

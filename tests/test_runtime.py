"""The reusable local Prefect server and the API resolution order."""

import os

import pytest

from inpaintflow import runtime


@pytest.fixture
def isolated_state(tmp_path, monkeypatch):
    monkeypatch.setenv("INPAINTFLOW_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    yield tmp_path / "state"
    runtime.stop_server()


def test_server_starts_once_is_reused_and_stops(isolated_state, monkeypatch):
    assert runtime.running_server() is None
    info = runtime.start_server()
    assert info.url.startswith("http://127.0.0.1:")
    assert runtime.start_server().pid == info.pid  # reused, not a second server
    assert (isolated_state / "prefect" / "server.json").is_file()

    assert "local Prefect server" in runtime.resolve_api()
    assert os.environ["PREFECT_API_URL"] == info.url
    assert runtime.stop_server() is True
    assert runtime.running_server() is None


def test_user_api_url_wins(isolated_state, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    assert runtime.resolve_api() == "PREFECT_API_URL=http://127.0.0.1:9/api"
    assert runtime.running_server() is None  # nothing was started


def test_ephemeral_mode_starts_nothing(isolated_state):
    assert runtime.resolve_api(mode="ephemeral") == "ephemeral Prefect server"
    assert runtime.running_server() is None
    with pytest.raises(ValueError, match="INPAINTFLOW_PREFECT_SERVER"):
        runtime.resolve_api(mode="cloud")


def test_telemetry_is_off_by_default():
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert os.environ["DO_NOT_TRACK"] == "1"
    assert os.environ["DVC_NO_ANALYTICS"] == "1"
    assert os.environ["PREFECT_HOME"].endswith("prefect")

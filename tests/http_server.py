"""A local HTTP file server for tests: 127.0.0.1, ephemeral port, Range, dropped connections.

Use it from any test module in ``tests/``::

    from http_server import serve_directory

    with serve_directory(root, cut_after_bytes=1000) as server:
        url = server.url("data.bin")
        ...
        assert server.requests[1].range == "bytes=1000-"

The import works because ``tests/`` is not a package: pytest's default ``prepend`` import mode
puts a test file's own directory on ``sys.path`` (this module must stay importable that way, so
do not add ``tests/__init__.py`` without changing the imports to ``tests.http_server``).
The ``http_server`` fixture below serves a fresh directory: ``from http_server import
http_server`` in a test module makes it available there.

Behaviour
    - ``GET``/``HEAD`` of a file under ``root``; anything else is a 404.
    - ``Range: bytes=START-``, ``bytes=START-END`` and ``bytes=-SUFFIX`` get a 206 with
      ``Content-Range``; a start past the end gets a 416 with ``Content-Range: bytes */SIZE``.
      ``ignore_range=True`` makes it answer every request with a 200 and the whole file.
    - ``cut_after_bytes=N``: the first ``cut_times`` responses with a body send their full headers
      (``Content-Length`` included) and only ``N`` body bytes, then the connection is shut down.
    - Every request is logged in ``server.requests`` (a :class:`RequestRecord` each), *before*
      its body is sent, so a test that has read the response always finds it there.
"""

from __future__ import annotations

import re
import socket
import threading
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

HOST = "127.0.0.1"  # never any other address


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str                 # URL path, unquoted
    range: str | None         # the Range header as sent, or None
    user_agent: str | None
    status: int               # status the server answered with
    body_bytes: int           # body bytes the server sent (fewer than Content-Length if cut)


class LocalFileServer(ThreadingHTTPServer):
    """Serves the files under ``root``; see the module docstring for the switches."""

    daemon_threads = True

    def __init__(self, root: str | Path, *, cut_after_bytes: int | None = None,
                 cut_times: int = 1, ignore_range: bool = False):
        if cut_after_bytes is not None and cut_after_bytes < 0:
            raise ValueError(f"cut_after_bytes must be >= 0, got {cut_after_bytes}")
        self.root = Path(root).resolve()
        self.cut_after_bytes = cut_after_bytes
        self.ignore_range = ignore_range
        self._cuts_left = cut_times if cut_after_bytes is not None else 0
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        super().__init__((HOST, 0), _Handler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def url(self, name: str) -> str:
        """URL of ``name`` (a path relative to ``root``, with ``/`` separators)."""
        return f"{self.base_url}/{urllib.parse.quote(name)}"

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    @property
    def range_requests(self) -> list[str]:
        """The Range headers seen, in order."""
        return [r.range for r in self.requests if r.range is not None]

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def _take_cut(self) -> int | None:
        with self._lock:
            if self._cuts_left <= 0:
                return None
            self._cuts_left -= 1
            return self.cut_after_bytes


def _parse_range(header: str, size: int) -> tuple[int, int] | None | str:
    """(start, end) inclusive, None for unsatisfiable, "ignore" for a form we do not serve."""
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not m or (not m[1] and not m[2]):
        return "ignore"  # malformed or several ranges: RFC 9110 lets us send the whole file
    if not m[1]:  # suffix: the last N bytes
        n = int(m[2])
        return (max(size - n, 0), size - 1) if n and size else None
    start = int(m[1])
    end = min(int(m[2]), size - 1) if m[2] else size - 1
    if start >= size or end < start:
        return None
    return start, end


class _Handler(BaseHTTPRequestHandler):
    server: LocalFileServer
    protocol_version = "HTTP/1.0"  # one request per connection: a cut is just a close

    def log_message(self, format, *args) -> None:  # quiet: the record is in server.requests
        pass

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def _serve(self, *, send_body: bool) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        range_header = self.headers.get("Range")
        user_agent = self.headers.get("User-Agent")
        file = (self.server.root / path.lstrip("/")).resolve()
        if not file.is_relative_to(self.server.root) or not file.is_file():
            self.server._record(RequestRecord(self.command, path, range_header, user_agent, 404, 0))
            self.send_error(404, "Not Found")
            return

        data = file.read_bytes()
        size = len(data)
        status, body, headers = 200, data, {}
        if range_header is not None and not self.server.ignore_range:
            parsed = _parse_range(range_header, size)
            if parsed is None:
                status, body = 416, b""
                headers["Content-Range"] = f"bytes */{size}"
            elif parsed != "ignore":
                start, end = parsed
                status, body = 206, data[start:end + 1]
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        if not self.server.ignore_range:
            headers["Accept-Ranges"] = "bytes"

        cut = self.server._take_cut() if send_body and body else None
        sent = len(body) if send_body else 0
        if cut is not None and cut < len(body):
            sent = cut
        self.server._record(RequestRecord(self.command, path, range_header, user_agent, status,
                                          sent))

        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if not send_body:
            return
        try:
            self.wfile.write(body[:sent])
            self.wfile.flush()
        except OSError:  # the client went away first
            return
        if sent < len(body):  # simulate a dropped connection
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@contextmanager
def serve_directory(root: str | Path, cut_after_bytes: int | None = None, cut_times: int = 1, *,
                    ignore_range: bool = False) -> Iterator[LocalFileServer]:
    """Serve ``root`` on 127.0.0.1 (ephemeral port) in a background thread for the block."""
    server = LocalFileServer(root, cut_after_bytes=cut_after_bytes, cut_times=cut_times,
                             ignore_range=ignore_range)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name=f"http_server:{server.port}", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[LocalFileServer]:
    """A plain server (no cuts) for a fresh directory ``server.root``; put files there."""
    root = tmp_path / "http_root"
    root.mkdir()
    with serve_directory(root) as server:
        yield server

"""Download files with a checksum, resuming after a dropped connection.

Pure functions, no Prefect: a thin ``@task(retries=...)`` (flows/fetch.py) wraps :func:`download`,
and each retry resumes from the ``<dest>.part`` file the failed attempt left behind.
``dest`` exists only once its checksum has been verified; bytes in flight live in
``dest.part``. A dropped connection raises :class:`DownloadError` and keeps the ``.part`` so
the next call sends ``Range: bytes=<size>-``; a checksum mismatch deletes the ``.part`` and
raises :class:`ChecksumError`. Unpacking is the next step, :mod:`inpaintflow.tasks.data.archives`.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

USER_AGENT = "inpaintflow"
ALLOWED_SCHEMES = ("http", "https", "file")

_HEX_LENGTHS = {"sha256": 64, "md5": 32}  # algorithm -> number of hex digits of its digest
_HEX = re.compile(r"[0-9a-f]+")


# ---------------------------------------------------------------------------------------------
# checksums and errors


@dataclass(frozen=True)
class Checksum:
    """An expected digest. ``hexdigest`` is stored lower-case (upper-case input is accepted)."""

    algorithm: str  # "sha256" or "md5" (some public datasets publish only md5)
    hexdigest: str

    def __post_init__(self) -> None:
        if self.algorithm not in _HEX_LENGTHS:
            raise ValueError(f"checksum algorithm must be one of {sorted(_HEX_LENGTHS)}, "
                             f"got {self.algorithm!r}")
        if not isinstance(self.hexdigest, str):
            raise ValueError(f"{self.algorithm} digest must be a hex string, "
                             f"got {type(self.hexdigest).__name__}")
        digest = self.hexdigest.strip().lower()
        expected_len = _HEX_LENGTHS[self.algorithm]
        if len(digest) != expected_len or not _HEX.fullmatch(digest):
            raise ValueError(f"invalid {self.algorithm} digest {self.hexdigest!r}: expected "
                             f"{expected_len} hex digits (0-9, a-f), got {len(digest)} characters")
        object.__setattr__(self, "hexdigest", digest)

    @classmethod
    def sha256(cls, hexdigest: str) -> "Checksum":
        return cls("sha256", hexdigest)

    @classmethod
    def md5(cls, hexdigest: str) -> "Checksum":
        return cls("md5", hexdigest)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hexdigest}"


class DownloadError(RuntimeError):
    """A network or HTTP failure; the message names the URL and, when there was one, the status."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None):
        super().__init__(message)
        self.url = url
        self.status = status


class ChecksumError(DownloadError):
    """The downloaded bytes do not match the expected digest; the message names URL, file, both."""

    def __init__(self, message: str, *, url: str | None = None, path: Path | None = None,
                 expected: str | None = None, actual: str | None = None):
        super().__init__(message, url=url)
        self.path = path
        self.expected = expected
        self.actual = actual


class UnverifiedDownloadWarning(UserWarning):
    """:func:`download` was called without a checksum (acceptable for local experiments only)."""


def retry_transient(task, task_run, state) -> bool:
    """Prefect ``retry_condition_fn``: retry a cut connection, never a checksum mismatch
    (the bytes would be the same wrong bytes) or a bad argument."""
    try:
        state.result()
    except ChecksumError:
        return False
    except (ValueError, FileNotFoundError):
        return False
    except Exception:
        return True
    return False


def file_digest(path: str | os.PathLike, algorithm: str = "sha256",
                chunk_size: int = 1 << 20) -> str:
    """Lower-case hex digest of a file, read in chunks of ``chunk_size`` bytes."""
    h = hashlib.new(algorithm, usedforsecurity=False)  # md5 must work on FIPS systems too
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# download


def download(url: str, dest: str | os.PathLike, checksum: Checksum | None, *,
             timeout_s: float = 60.0, chunk_size: int = 1 << 20,
             progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Download ``url`` to ``dest``, verify it against ``checksum`` and return ``dest``.

    - ``dest`` already there and matching: returned at once, no request. A ``dest`` that does not
      match is deleted and downloaded again.
    - Bytes stream into ``dest.part``; an existing ``.part`` is resumed with a Range request
      (206 + matching Content-Range: append; 200: start over; 416: the ``.part`` may already be
      whole, so it is verified).
    - A dropped connection or short read raises :class:`DownloadError` and keeps the ``.part``.
    - A checksum mismatch deletes the ``.part`` and raises :class:`ChecksumError`; nothing is left
      at ``dest``. On success the ``.part`` is renamed onto ``dest`` (``os.replace``).
    - ``checksum=None`` is for local experiments: it warns (:class:`UnverifiedDownloadWarning`)
      and trusts an existing ``dest``, which only a finished download can have written.

    ``progress(bytes_done, total)`` is called after every chunk; ``total`` is None when the
    server does not say. ``timeout_s`` bounds the connection and each read, not the whole download.
    """
    _check_scheme(url)
    dest = Path(dest)
    part = part_path(dest)

    if checksum is None:
        warnings.warn(f"no checksum for {url} -> {dest}: its content is not verified "
                      f"(acceptable for local experiments only)",
                      UnverifiedDownloadWarning, stacklevel=2)
    if dest.exists():
        if checksum is None:
            log.info("%s exists; not verified (no checksum given), not downloaded again", dest)
            return dest
        actual = file_digest(dest, checksum.algorithm)
        if actual == checksum.hexdigest:
            log.info("%s exists and matches %s; not downloaded again", dest, checksum)
            return dest
        log.warning("%s exists but its %s is %s, expected %s: deleting it and downloading %s "
                    "again", dest, checksum.algorithm, actual, checksum.hexdigest, url)
        dest.unlink()

    dest.parent.mkdir(parents=True, exist_ok=True)
    content_type = _fetch_into_part(url, part, timeout_s=timeout_s, chunk_size=chunk_size,
                                    progress=progress)

    if checksum is not None:
        actual = file_digest(part, checksum.algorithm)
        if actual != checksum.hexdigest:
            part.unlink(missing_ok=True)
            hint = ""
            if content_type and content_type.split(";")[0].strip().lower() == "text/html":
                hint = " (the server sent text/html: a login, error or confirmation page?)"
            raise ChecksumError(f"{url}: checksum mismatch for {dest}: expected "
                                f"{checksum.algorithm} {checksum.hexdigest}, got {actual}{hint}; "
                                f"the partial file {part.name} was deleted",
                                url=url, path=dest, expected=checksum.hexdigest, actual=actual)
    os.replace(part, dest)
    log.info("downloaded %s -> %s", url, dest)
    return dest


def part_path(dest: str | os.PathLike) -> Path:
    """Where :func:`download` keeps the bytes of ``dest`` while they arrive."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".part")


def _check_scheme(url: str) -> None:
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise ValueError(f"unsupported URL {url!r}: the scheme must be one of "
                         f"{', '.join(ALLOWED_SCHEMES)}, got {scheme or 'none'!r}")


def _fetch_into_part(url: str, part: Path, *, timeout_s: float, chunk_size: int,
                     progress: Callable[[int, int | None], None] | None) -> str | None:
    """Make ``part`` hold the whole resource (resuming if it has a prefix); return Content-Type.

    At most two requests: the second only after the first showed the ``.part`` to be unusable
    (a 416 saying the file is shorter than it, or a 206 for some other range).
    """
    for _ in range(2):
        offset = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        request = urllib.request.Request(url, headers=headers)
        try:
            response = urllib.request.urlopen(request, timeout=timeout_s)
        except urllib.error.HTTPError as exc:
            with exc:
                if exc.code == 416 and offset:
                    total = _unsatisfied_range_total(exc.headers.get("Content-Range"))
                    if total is None or total == offset:
                        log.info("%s: server has no bytes past %d; verifying %s as it is",
                                 url, offset, part)
                        return None
                    log.warning("%s: %s holds %d bytes but the file has %d; starting over",
                                url, part, offset, total)
                    part.unlink()
                    continue
                raise DownloadError(f"GET {url} failed: HTTP {exc.code} {exc.reason}",
                                    url=url, status=exc.code) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise DownloadError(f"GET {url} failed: {reason}", url=url) from exc

        with response:
            status = response.status or 200  # file: URLs have no status
            length = _content_length(response.headers.get("Content-Length"))
            content_type = response.headers.get("Content-Type")
            if status == 206:
                content_range = _parse_content_range(response.headers.get("Content-Range"))
                if content_range is None or content_range[0] != offset:
                    log.warning("%s: asked for bytes %d-, server sent Content-Range %r; "
                                "starting over", url, offset, response.headers.get("Content-Range"))
                    part.unlink(missing_ok=True)
                    continue
                start, end, total = content_range
                expected = length if length is not None else end - start + 1
                mode = "ab"
                log.info("%s: resuming at byte %d of %s", url, offset, total or "?")
            elif status == 200:
                if offset:
                    log.info("%s: server ignored the Range request; restarting %s from zero",
                             url, part)
                offset, expected, total, mode = 0, length, length, "wb"
            else:
                raise DownloadError(f"GET {url} failed: unexpected HTTP {status} {response.reason}",
                                    url=url, status=status)
            _stream(response, url, part, mode=mode, offset=offset, expected=expected,
                    total=total, chunk_size=chunk_size, progress=progress)
            return content_type

    raise DownloadError(f"GET {url} failed: the server's answers to Range requests did not fit "
                        f"{part}", url=url)


def _stream(response, url: str, part: Path, *, mode: str, offset: int, expected: int | None,
            total: int | None, chunk_size: int,
            progress: Callable[[int, int | None], None] | None) -> None:
    """Copy the body into ``part``; on a drop or a short read keep what arrived and raise."""
    received = 0
    with open(part, mode) as out:
        if progress is not None:
            progress(offset, total)
        try:
            while chunk := response.read(chunk_size):
                out.write(chunk)
                received += len(chunk)
                if progress is not None:
                    progress(offset + received, total)
        except (http.client.HTTPException, OSError) as exc:
            raise DownloadError(f"GET {url} failed: connection lost after {received} bytes of "
                                f"this response ({exc!r}); kept {part.name} ({offset + received} "
                                f"bytes) to resume", url=url, status=response.status) from exc
        out.flush()
        os.fsync(out.fileno())
    if expected is not None and received != expected:
        raise DownloadError(f"GET {url} failed: short read, got {received} of {expected} bytes "
                            f"(HTTP {response.status}); kept {part.name} ({offset + received} "
                            f"bytes) to resume", url=url, status=response.status)


def _content_length(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """``bytes START-END/TOTAL`` (TOTAL may be ``*``) -> (start, end, total) or None."""
    m = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    if not m or int(m[2]) < int(m[1]):
        return None
    return int(m[1]), int(m[2]), None if m[3] == "*" else int(m[3])


def _unsatisfied_range_total(value: str | None) -> int | None:
    """``bytes */TOTAL`` (sent with a 416) -> TOTAL, or None if absent or malformed."""
    m = re.fullmatch(r"\s*bytes\s+\*/(\d+)\s*", value or "")
    return int(m[1]) if m else None

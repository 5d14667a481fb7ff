"""Download files with a checksum, resuming after a dropped connection, and unpack archives safely.

Pure functions, no Prefect: a thin ``@task(retries=...)`` elsewhere wraps :func:`download`, and
each retry resumes from the ``<dest>.part`` file the failed attempt left behind.

download
    ``dest`` exists only once its checksum has been verified; bytes in flight live in
    ``dest.part``. A dropped connection raises :class:`DownloadError` and keeps the ``.part`` so
    the next call sends ``Range: bytes=<size>-``; a checksum mismatch deletes the ``.part`` and
    raises :class:`ChecksumError`.

safe_extract
    Every member of a zip or tar archive is checked before anything is written (absolute paths,
    ``..`` escapes, links leading out of the target, device files and FIFOs), then the archive is
    unpacked into a temporary directory beside ``target`` and renamed onto it. Symbolic and hard
    links that stay inside the target are allowed; a ``.extracted`` marker holding the archive's
    sha256 makes a second call a no-op.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import lzma
import os
import posixpath
import re
import shutil
import stat
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
import warnings
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import Callable, Iterable, Iterator

from inpaintflow.conventions import write_text_atomic

log = logging.getLogger(__name__)

USER_AGENT = "inpaintflow"
ALLOWED_SCHEMES = ("http", "https", "file")
EXTRACTED_MARKER = ".extracted"  # file inside an extracted directory: the archive's sha256

_HEX_LENGTHS = {"sha256": 64, "md5": 32}  # algorithm -> number of hex digits of its digest
_HEX = re.compile(r"[0-9a-f]+")
_MAX_LINK_HOPS = 40  # as Linux's ELOOP limit


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


# ---------------------------------------------------------------------------------------------
# safe extraction


class UnsafeArchiveError(ValueError):
    """An archive member would land, or point, outside the target; names archive and member."""

    def __init__(self, archive: Path, member: str, reason: str):
        super().__init__(f"{archive}: refusing to extract member {member!r}: {reason}; "
                         f"nothing was extracted")
        self.archive = archive
        self.member = member
        self.reason = reason


class BadArchiveError(ValueError):
    """Not a supported archive, or a truncated or corrupt one; the message names the file."""


@dataclass(frozen=True)
class _Member:
    name: str                # as stored in the archive
    kind: str                # "file", "dir", "symlink", "hardlink" or "special"
    link: str | None = None  # symlink target (relative to the link's directory) or hardlink
                             # target (relative to the archive root)


def safe_extract(archive: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Unpack a zip or tar(.gz/.bz2/.xz) ``archive`` into the directory ``target``; return it.

    The format is detected from the content. All members are checked first
    (:class:`UnsafeArchiveError`); then the archive is unpacked into a temporary directory
    beside ``target`` and renamed onto it, replacing whatever was there. A ``target`` whose
    ``.extracted`` marker holds this archive's sha256 is returned untouched. If unpacking fails
    midway the temporary directory is removed and ``target`` is left as it was.
    """
    archive, target = Path(archive), Path(target)
    if not archive.is_file():
        raise FileNotFoundError(f"{archive}: archive not found")
    digest = file_digest(archive)
    marker = target / EXTRACTED_MARKER
    if target.is_dir() and marker.is_file() and marker.read_text().strip() == digest:
        log.info("%s already holds %s (marker matches); not extracting again", target, archive)
        return target

    kind = _archive_kind(archive)
    with _archive_errors(archive):
        members = _list_tar(archive) if kind == "tar" else _list_zip(archive)
    _check_members(archive, members)

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.extracting"
    tmp.mkdir()  # mode from the umask, unlike mkdtemp's 0o700, since it becomes ``target``
    try:
        with _archive_errors(archive):
            if kind == "tar":
                _extract_tar(archive, tmp)
            else:
                _extract_zip(archive, tmp, members)
        write_text_atomic(tmp / EXTRACTED_MARKER, digest + "\n")
        _replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("extracted %s -> %s (%d members)", archive, target, len(members))
    return target


def _archive_kind(archive: Path) -> str:
    # tar first: a tar that ends with an uncompressed zip member can look like a zip
    if tarfile.is_tarfile(archive):
        return "tar"
    if zipfile.is_zipfile(archive):
        return "zip"
    raise BadArchiveError(f"{archive}: not a supported archive (zip, tar, tar.gz, tar.bz2, "
                          f"tar.xz), or a truncated or corrupt one")


@contextmanager
def _archive_errors(archive: Path) -> Iterator[None]:
    """Turn a decoder's complaint into :class:`BadArchiveError` naming the archive."""
    try:
        yield
    except tarfile.FilterError as exc:  # our own checks should have caught it first
        member = getattr(getattr(exc, "tarinfo", None), "name", "?")
        raise UnsafeArchiveError(archive, member, str(exc)) from exc
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError,
            NotImplementedError) as exc:
        raise BadArchiveError(f"{archive}: truncated or corrupt archive: {exc}") from exc
    except OSError as exc:
        # gzip and bz2 raise OSError without an errno for bad data; real I/O errors (disk
        # full, permissions) carry one and pass through unchanged
        if exc.errno is None:
            raise BadArchiveError(f"{archive}: truncated or corrupt archive: {exc}") from exc
        raise


def _list_tar(archive: Path) -> list[_Member]:
    members = []
    with tarfile.open(archive, "r:*") as tf:
        for m in tf.getmembers():  # reads every header, so a truncated stream fails here
            if m.isdir():
                kind = "dir"
            elif m.issym():
                kind = "symlink"
            elif m.islnk():
                kind = "hardlink"
            elif m.isfile():
                kind = "file"
            else:
                kind = "special"
            members.append(_Member(m.name, kind, m.linkname if kind in ("symlink", "hardlink")
                                   else None))
    return members


def _zip_kind(info: zipfile.ZipInfo) -> str:
    # Unix mode in the high 16 bits (create_system 3 = Unix); many writers leave the type
    # bits 0 (Python's writestr stores 0o600), which means a regular file
    ftype = stat.S_IFMT(info.external_attr >> 16) if info.create_system == 3 else 0
    if ftype == stat.S_IFLNK:
        return "symlink"
    if info.is_dir() or ftype == stat.S_IFDIR:
        return "dir"
    if ftype in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK):
        return "special"
    return "file"


def _list_zip(archive: Path) -> list[_Member]:
    members = []
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            kind = _zip_kind(info)
            link = None
            if kind == "symlink":
                if info.file_size > 4096:  # PATH_MAX; anything longer is not a link target
                    raise UnsafeArchiveError(archive, info.filename, f"symlink whose target is "
                                             f"{info.file_size} bytes long")
                link = zf.read(info).decode("utf-8", "surrogateescape")
            members.append(_Member(info.filename, kind, link))
    return members


def _parts(name: str) -> list[str]:
    return [p for p in name.split("/") if p not in ("", ".")]


def _is_absolute(name: str) -> bool:
    win = PureWindowsPath(name)
    return name.startswith(("/", "\\")) or bool(win.drive) or win.is_absolute()


def _resolve(parts: Iterable[str], links: dict[str, str], *, follow_last: bool = True
             ) -> list[str] | None:
    """Where ``parts`` (relative to the target) lands once the archive's symlinks exist.

    Like ``os.path.realpath`` over a tree holding only the archive's own links (``links``: link
    location -> link text): returns the resolved components, or None if the path leaves the
    target (a ``..`` above it, an absolute link, or a link loop).
    """
    pending = list(parts)
    resolved: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                return None
            resolved.pop()
            continue
        candidate = "/".join([*resolved, part])
        if candidate in links and (pending or follow_last):
            hops += 1
            text = links[candidate]
            if hops > _MAX_LINK_HOPS or _is_absolute(text):
                return None
            pending[:0] = text.split("/")  # relative to the link's directory: ``resolved``
            continue
        resolved.append(part)
    return resolved


def _check_members(archive: Path, members: list[_Member]) -> None:
    """Raise :class:`UnsafeArchiveError` for the first member that is not safe to extract."""
    links: dict[str, str] = {}
    kinds: dict[str, set[str]] = {}
    for m in members:
        if not m.name or "\x00" in m.name:
            raise UnsafeArchiveError(archive, m.name, "empty name or NUL byte in the name")
        if _is_absolute(m.name):
            raise UnsafeArchiveError(archive, m.name, "absolute path")
        normalized = posixpath.normpath(m.name)
        # also with backslashes read as separators, as Windows would: ..\evil is refused too
        for path in (normalized, posixpath.normpath(m.name.replace("\\", "/"))):
            if path == ".." or path.startswith("../"):
                raise UnsafeArchiveError(archive, m.name,
                                         "path escapes the target directory via '..'")
        if m.kind == "special":
            raise UnsafeArchiveError(archive, m.name, "device file, FIFO or other special file")
        if normalized == "." and m.kind != "dir":
            raise UnsafeArchiveError(archive, m.name, "names the target directory itself")
        if normalized.split("/")[0] == EXTRACTED_MARKER:
            raise UnsafeArchiveError(archive, m.name, "name reserved for safe_extract's "
                                     "completion marker")
        kinds.setdefault(normalized, set()).add(m.kind)
        if m.kind == "symlink":
            if not m.link or "\x00" in m.link:
                raise UnsafeArchiveError(archive, m.name, "symlink with an empty target")
            if normalized in links and links[normalized] != m.link:
                raise UnsafeArchiveError(archive, m.name, "symlink stored twice with different "
                                         "targets")
            links[normalized] = m.link

    for path, seen in kinds.items():
        if "symlink" in seen and len(seen) > 1:
            raise UnsafeArchiveError(archive, path, f"stored both as a symlink and as "
                                     f"{' and '.join(sorted(seen - {'symlink'}))}")

    # links first, so that a link pointing out is named rather than a file reached through it
    for m in sorted(members, key=lambda m: m.kind != "symlink"):
        parts = _parts(m.name)
        where = _resolve(parts, links, follow_last=m.kind != "symlink")
        if where is None:
            raise UnsafeArchiveError(archive, m.name, "path leads outside the target directory "
                                     "through a symlink in the archive")
        if m.kind == "symlink":
            if _is_absolute(m.link):
                raise UnsafeArchiveError(archive, m.name,
                                         f"symlink to the absolute path {m.link!r}")
            if "/".join(where) != posixpath.normpath(m.name):
                raise UnsafeArchiveError(archive, m.name, "symlink placed through another symlink")
            if _resolve([*parts[:-1], *m.link.split("/")], links) is None:
                raise UnsafeArchiveError(archive, m.name, f"symlink to {m.link!r} points outside "
                                         f"the target directory (or into a link loop)")
        elif m.kind == "hardlink":
            if _is_absolute(m.link) or _resolve(m.link.split("/"), links) is None:
                raise UnsafeArchiveError(archive, m.name, f"hard link to {m.link!r} points "
                                         f"outside the target directory")


def _extract_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive, "r:*") as tf:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: a second line of defence
            tf.extractall(dest, filter="data")
        else:  # pragma: no cover - older Pythons; _check_members has vetted every member
            tf.extractall(dest)


def _inside(path: Path, root: Path) -> bool:
    real_root = os.path.realpath(root)
    return os.path.commonpath([os.path.realpath(path), real_root]) == real_root


def _extract_zip(archive: Path, dest: Path, members: list[_Member]) -> None:
    """Unpack a vetted zip, creating its symlinks; re-check every path on disk as it is written."""
    with zipfile.ZipFile(archive) as zf:
        for info, m in zip(zf.infolist(), members, strict=True):
            parts = _parts(posixpath.normpath(m.name))
            out = dest.joinpath(*parts)
            if not _inside(out if m.kind != "symlink" else out.parent, dest):
                raise UnsafeArchiveError(archive, m.name, "path leads outside the target directory")
            if m.kind == "dir":
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            if m.kind == "symlink":
                if os.path.lexists(out):
                    out.unlink()
                os.symlink(m.link, out)
                continue
            with zf.open(info) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)


def _replace_dir(new: Path, target: Path) -> None:
    """Rename ``new`` onto ``target``; an existing ``target`` is moved aside, then deleted."""
    old = None
    if os.path.lexists(target):
        old = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.old"
        os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)

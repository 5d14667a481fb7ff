"""Unpack zip and tar archives safely (the step after :mod:`inpaintflow.tasks.data.download`).

Every member of a zip or tar archive is checked before anything is written (absolute paths,
``..`` escapes, links leading out of the target, device files and FIFOs), then the archive is
unpacked into a temporary directory beside ``target`` and renamed onto it. Symbolic and hard
links that stay inside the target are allowed; a ``.extracted`` marker holding the archive's
sha256 makes a second call a no-op.
"""

from __future__ import annotations

import logging
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import uuid
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import Iterable, Iterator

from inpaintflow.conventions import write_text_atomic
from inpaintflow.tasks.data.download import file_digest

log = logging.getLogger(__name__)

EXTRACTED_MARKER = ".extracted"  # file inside an extracted directory: the archive's sha256
_MAX_LINK_HOPS = 40  # as Linux's ELOOP limit


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

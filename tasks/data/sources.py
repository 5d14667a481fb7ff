"""A dataset's source to local files, in one pass: :func:`resolve_source` checks the source,
fetches what is remote (:mod:`~inpaintflow.tasks.data.download`), verifies a local copy of a
registered file, and unpacks an archive (:mod:`~inpaintflow.tasks.data.archives`). Read top
down: the pass first, then its steps in the order it takes them.

The download itself is passed in as ``fetch`` so the flow can hand over its retrying Prefect
task (flows/fetch.py); everything else is plain functions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from inpaintflow.runtime import state_dir
from inpaintflow.tasks.data.archives import safe_extract
from inpaintflow.tasks.data.datasets import DatasetSpec, RemoteFile
from inpaintflow.tasks.data.download import Checksum, ChecksumError, file_digest

Fetch = Callable[[str, Path, Checksum | None], Path]
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


class SourceError(FileNotFoundError):
    """A dataset source is missing or unusable; the message names it and how to get it."""


def downloads_dir() -> Path:
    return Path(os.environ.get("INPAINTFLOW_DOWNLOAD_DIR") or state_dir() / "downloads")


def extracted_dir() -> Path:
    return downloads_dir() / "extracted"


def is_url(text: str) -> bool:
    return urlparse(text).scheme in ("http", "https", "file")


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def check_source(spec: DatasetSpec, source: str | None, sha256: str | None) -> None:
    """Fail before any work starts when the source cannot be right (no download, no I/O)."""
    if spec.kind == "generated":
        if source:
            raise SourceError(f"{spec.name} is generated; it takes no --source")
        return
    if source and is_url(source):
        if not sha256:
            raise SourceError(f"{source}: a URL source needs --sha256 (the expected checksum), "
                              f"so a changed or truncated file is never used")
    elif source:
        _local(source, spec)
    elif spec.kind in ("manual", "local") or not spec.files:
        raise SourceError(f"{spec.name}: no source given (--source). {spec.obtain}")


def resolve_source(spec: DatasetSpec, source: str | None, sha256: str | None,
                   fetch: Fetch) -> Path | dict[str, Path]:
    """One root folder (split by the spec's rule), or {split: folder or container file}."""
    check_source(spec, source, sha256)
    if source and is_url(source):
        dest = downloads_dir() / (Path(urlparse(source).path).name or "download")
        return _as_root(fetch(source, dest, Checksum.sha256(sha256)), spec)
    if source:
        path = _local(source, spec)
        per_file = _split_files_in(path, spec)
        return per_file if per_file else _as_root(path, spec)
    fetched = {remote: fetch(remote.url, downloads_dir() / remote.filename, remote.checksum)
               for remote in spec.files}
    if all(r.split for r in spec.files):
        return {r.split: (_extract(p) if is_archive(p) else p) for r, p in fetched.items()}
    (path,) = fetched.values()
    return _as_root(path, spec)


def _local(path_text: str, spec: DatasetSpec) -> Path:
    path = Path(path_text).expanduser()
    if not path.exists():
        raise SourceError(f"{path}: dataset source not found. {spec.name}: {spec.obtain}")
    return path.resolve()


def _split_files_in(path: Path, spec: DatasetSpec) -> dict[str, Path] | None:
    """A local folder holding a per-split spec's files (SVHN's .mat files), verified."""
    remotes: list[RemoteFile] = [r for r in spec.files if r.split and not is_archive(Path(r.filename))]
    if not remotes or not path.is_dir():
        return None
    found = {}
    for remote in remotes:
        candidate = path / remote.filename
        if not candidate.is_file():
            raise SourceError(f"{candidate}: missing. {spec.name}: {spec.obtain}")
        _verify_known_file(candidate, spec)
        found[remote.split] = candidate
    return found


def _as_root(path: Path, spec: DatasetSpec) -> Path:
    if path.is_dir():
        return path
    if is_archive(path):
        _verify_known_file(path, spec)
        return _extract(path)
    raise SourceError(f"{path}: a {spec.name} source must be a folder or an archive "
                      f"({', '.join(ARCHIVE_SUFFIXES)})")


def _verify_known_file(path: Path, spec: DatasetSpec) -> None:
    """A local copy of a registered file must have the registered checksum."""
    for remote in spec.files:
        if path.name == remote.filename:
            actual = file_digest(path, remote.checksum.algorithm)
            if actual != remote.checksum.hexdigest:
                raise ChecksumError(f"{path}: {remote.checksum.algorithm} {actual} does not match the "
                                    f"published {remote.checksum.hexdigest} of {remote.filename}")


def _extract(archive: Path) -> Path:
    name = archive.name
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return safe_extract(archive, extracted_dir() / name)

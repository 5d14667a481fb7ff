"""Cache keys for Prefect tasks that read and write files.

Prefect's default key hashes argument *values*, so a ``Path`` is keyed by its name and a
rewritten file keeps its stale cache entry. Tasks here use :func:`content_key` instead: the
sha256 of every input file's bytes, the other parameters, and the source of the modules that
hold the task's maths (the task body itself is a thin wrapper). Never paths' mtimes.

A cached result describes files on disk; DVC deletes a stage's outputs before rerunning it and
a user may delete them too. So a flow runs such tasks through :func:`run_verified`: when the
files a cached result names are missing or differ from their recorded sha256, the task runs
again with ``refresh_cache=True``, submitted to the flow's task runner like the first run (on
the Dask cluster when there is one).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from dataclasses import asdict, is_dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable

_DIGEST_MEMO: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_digest(path: Path) -> str:
    """sha256 of a file, or of a directory's sorted (relative name, file digest) pairs.

    Large containers (an SVHN .mat, an archive) are hashed once per process: the memo is keyed
    on (path, size, mtime) only to avoid re-reading the same bytes, never as the cache key.
    """
    path = Path(path)
    if path.is_dir():
        h = hashlib.sha256()
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            h.update(f"{p.relative_to(path).as_posix()}\0{content_digest(p)}\n".encode())
        return h.hexdigest()
    st = path.stat()
    memo_key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo_key not in _DIGEST_MEMO:
        _DIGEST_MEMO[memo_key] = sha256_file(path)
    return _DIGEST_MEMO[memo_key]


def _canonical(value: Any, exclude_paths: bool = False) -> Any:
    """A JSON-like, order-stable form of a task argument with files replaced by their digest."""
    if isinstance(value, Path):
        if value.exists():
            return {"sha256": content_digest(value)}
        return {"missing": value.name}
    if is_dataclass(value) and not isinstance(value, type):
        return {type(value).__name__: _canonical(asdict(value))}
    if hasattr(value, "model_dump"):  # pydantic params
        return {type(value).__name__: _canonical(value.model_dump())}
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise TypeError(f"cannot build a content cache key from a {type(value).__name__}")


def source_digest(modules: Iterable[ModuleType]) -> str:
    h = hashlib.sha256()
    for module in modules:
        h.update(inspect.getsource(module).encode())
    return h.hexdigest()


def _task_source(fn: Callable[..., Any]) -> str:
    """The source of a task's function, also on a Dask worker.

    A task shipped to a worker arrives pickled by value (its module attribute is the Task, not
    the function), and cloudpickle rebuilds its code with no file behind it; the module itself
    imports on the worker, so the function is looked up there by its qualified name.
    """
    try:
        return inspect.getsource(fn)
    except OSError:
        defined = importlib.import_module(fn.__module__)
        for part in fn.__qualname__.split("."):
            defined = getattr(defined, part)
        return inspect.getsource(getattr(defined, "fn", defined))


def content_key(*, code: Iterable[ModuleType], exclude: Iterable[str] = (),
                keep_paths: Iterable[str] = ()) -> Callable[[Any, dict[str, Any]], str]:
    """A ``cache_key_fn``: sha256 over file contents, parameters and the given modules' source.

    ``exclude`` drops result-neutral arguments (worker counts). ``keep_paths`` names arguments
    that are *output* locations: their path string, not their (not yet written) content, is
    part of the key, so the same inputs written elsewhere are a different result.
    """
    code = tuple(code)
    exclude, keep_paths = set(exclude), set(keep_paths)

    def key_fn(context: Any, parameters: dict[str, Any]) -> str:
        canonical = {}
        for name, value in sorted(parameters.items()):
            if name in exclude:
                continue
            canonical[name] = str(Path(value).resolve()) if name in keep_paths else _canonical(value)
        task_source = _task_source(context.task.fn) if context is not None else ""
        h = hashlib.sha256()
        h.update(repr(canonical).encode())
        h.update(task_source.encode())
        h.update(source_digest(code).encode())
        return h.hexdigest()

    return key_fn


def outputs_intact(rows: list[dict[str, Any]], root: Path, *, file_key: str = "file",
                   digest_key: str = "sha256") -> bool:
    """True when every row's file exists under ``root`` with the sha256 the row recorded."""
    for row in rows:
        path = Path(root) / row[file_key]
        if not path.is_file() or sha256_file(path) != row[digest_key]:
            return False
    return True


def run_verified(task, verify: Callable[[Any], bool], **kwargs: Any):
    """Submit ``task``; if the (possibly cached) result fails ``verify``, recompute it.

    Returns a future-like object with ``.result()``. Used for tasks that write files, whose
    cache entries can outlive the files (see the module docstring).
    """
    return _VerifiedFuture(task, verify, kwargs)


def verified_results(futures: Iterable["_VerifiedFuture"]) -> list[Any]:
    """Results of :func:`run_verified` futures, in order; the stale ones are all resubmitted
    before the first recomputation is waited for, so they run in parallel too."""
    futures = [f.check() for f in futures]
    return [f.result() for f in futures]


class _VerifiedFuture:
    def __init__(self, task, verify, kwargs):
        self._task, self._verify, self._kwargs = task, verify, kwargs
        self._future = task.submit(**kwargs)
        self._checked = False

    def check(self) -> "_VerifiedFuture":
        """Wait for the result; if it fails verification, submit the recomputation."""
        if not self._checked:
            self._checked = True
            if not self._verify(self._future.result()):
                self._future = self._task.with_options(refresh_cache=True).submit(**self._kwargs)
        return self

    def result(self):
        return self.check()._future.result()

"""Pure helpers of the nightly retraining (flows/nightly.py): remotes, output paths, dates,
schedules and the commit message. No I/O beyond what the arguments name.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

LOCK_FILE = "dvc.lock"


@dataclass(frozen=True)
class Remote:
    """The default DVC remote."""

    name: str
    url: str

    def local_path(self, repo: Path) -> Path | None:
        """The folder of a local remote (relative urls are relative to .dvc/, as DVC reads
        them), None for cloud remotes."""
        if "://" in self.url and not self.url.startswith("file://"):
            return None
        path = Path(self.url.removeprefix("file://")).expanduser()
        return path if path.is_absolute() else (Path(repo) / ".dvc" / path).resolve()


def default_remote(config_list: str) -> Remote | None:
    """The default remote from ``dvc config --list`` (``key=value`` lines, every config level
    merged), or None when ``core.remote`` is unset."""
    values = {}
    for line in config_list.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not line.startswith(("WARNING", "ERROR")):
            values[key.strip()] = value.strip()
    name = values.get("core.remote")
    return Remote(name, values.get(f"remote.{name}.url", "")) if name else None


def is_empty_dir(path: Path) -> bool:
    """True when ``path`` is missing or holds no file at any depth."""
    return not path.is_dir() or not any(p.is_file() for p in path.rglob("*"))


def lock_outputs(lock: Mapping[str, Any] | None) -> list[str]:
    """Every output path dvc.lock records (outs, metrics and plots alike), in order, once."""
    seen: dict[str, None] = {}
    for stage in ((lock or {}).get("stages") or {}).values():
        for out in stage.get("outs") or []:
            seen.setdefault(str(out["path"]).rstrip("/"), None)
    return list(seen)


def within(path: str, roots: Iterable[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def pipeline_owned(path: str, outputs: Sequence[str]) -> bool:
    """A path the pipeline itself writes: dvc.lock, an output, or the .gitignore beside an
    output (DVC lists cached outputs there)."""
    if path == LOCK_FILE or within(path, outputs):
        return True
    parent = Path(path).parent.as_posix()
    return Path(path).name == ".gitignore" and any(Path(o).parent.as_posix() == parent for o in outputs)


def commit_paths(outputs: Sequence[str], ignored: set[str], exists) -> list[str]:
    """What a nightly commit stages: dvc.lock, the git-tracked outputs (``cache: false``; DVC
    git-ignores the cached ones) and the .gitignore files beside the cached ones."""
    paths = [LOCK_FILE]
    for out in outputs:
        if out in ignored:
            gitignore = (Path(out).parent / ".gitignore").as_posix()
            if gitignore not in paths and exists(gitignore):
                paths.append(gitignore)
        elif exists(out):
            paths.append(out)
    return paths


def run_date(when: dt.datetime, timezone: str) -> str:
    """The calendar day of ``when`` in the schedule's time zone, YYYY-MM-DD (a naive ``when``
    is taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.astimezone(ZoneInfo(timezone)).date().isoformat()


def check_date(text: str) -> str:
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise ValueError(f"date {text!r}: expected YYYY-MM-DD") from None


def commit_message(date: str, papers: Sequence[str], base: str | None, profile: str, report: str) -> str:
    targets = " ".join(f"table@{p}" for p in papers)
    against = f"the last commit {base[:12]}" if base else "no earlier commit"
    return (f"nightly {date}: {', '.join(papers)}\n\n"
            f"`dvc repro {targets}` (profile {profile}). Metrics against {against}, tolerances "
            f"from params.yaml nightly.tolerances:\n\n{report}\n")

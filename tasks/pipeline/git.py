"""The git steps of the nightly retraining: read committed files, branch, stage and commit.

Thin wrappers over the ``git`` command (no library: the command is what every user has). A
failure raises :class:`GitError` with the command and git's own message.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterable, Sequence


class GitError(RuntimeError):
    pass


def git(args: Sequence[str], repo: Path, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(["git", *args], cwd=repo, text=True, capture_output=True, input=stdin)
    if check and result.returncode != 0:
        raise GitError(f"`git {' '.join(args)}` in {repo} exited {result.returncode}: "
                       f"{(result.stderr or result.stdout).strip()}")
    return result


def committed_text(repo: Path, path: str, rev: str = "HEAD") -> str | None:
    """``path`` as committed at ``rev``, or None when that revision does not have it."""
    result = git(["show", f"{rev}:{path}"], repo, check=False)
    return result.stdout if result.returncode == 0 else None


def head(repo: Path) -> str | None:
    result = git(["rev-parse", "--verify", "--quiet", "HEAD"], repo, check=False)
    return result.stdout.strip() or None


def current_branch(repo: Path) -> str | None:
    """The checked-out branch, None on a detached HEAD."""
    result = git(["symbolic-ref", "--quiet", "--short", "HEAD"], repo, check=False)
    return result.stdout.strip() or None


def branch_exists(repo: Path, branch: str) -> bool:
    return git(["rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"], repo, check=False).returncode == 0


def check_branch_name(repo: Path, branch: str) -> None:
    if git(["check-ref-format", "--branch", branch], repo, check=False).returncode != 0:
        raise GitError(f"{branch!r} is not a valid git branch name")


def switch_to(repo: Path, branch: str) -> str:
    """Check out ``branch``, creating it at HEAD when new; the working tree's changes come along
    (git refuses, and so do we, when they would clash with the branch). Returns what was done."""
    if current_branch(repo) == branch:
        return f"on {branch} already"
    if branch_exists(repo, branch):
        git(["checkout", branch], repo)
        return f"switched to the existing branch {branch}"
    git(["checkout", "-b", branch], repo)
    return f"created {branch}"


def modified_tracked(repo: Path) -> list[str]:
    """Tracked files with uncommitted changes (staged or not)."""
    out = git(["status", "--porcelain", "--untracked-files=no", "-z"], repo).stdout
    return [entry[3:] for entry in out.split("\0") if len(entry) > 3]


def ignored(repo: Path, paths: Iterable[str]) -> set[str]:
    """The subset of ``paths`` that git ignores (DVC lists its cached outputs in .gitignore)."""
    paths = list(paths)
    if not paths:
        return set()
    result = git(["check-ignore", "--no-index", "--stdin"], repo, check=False, stdin="\n".join(paths) + "\n")
    if result.returncode > 1:  # 1 means "none ignored"
        raise GitError(f"`git check-ignore` in {repo}: {result.stderr.strip()}")
    return {line for line in result.stdout.splitlines() if line}


def commit(repo: Path, paths: Sequence[str], message: str) -> str | None:
    """Stage ``paths`` (additions, changes and deletions) and commit; returns the new commit,
    or None when nothing changed."""
    git(["add", "-A", "--", *paths], repo)
    if git(["diff", "--cached", "--quiet"], repo, check=False).returncode == 0:
        return None
    git(["commit", "-q", "-F", "-"], repo, stdin=message)
    return head(repo)

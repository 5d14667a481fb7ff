"""Audit a paper's tables (``inpaintflow audit results/<paper>``): can they be trusted as they are?

Three checks, each a list of findings (a finding that ``fails`` makes the audit fail):

1. **provenance**: ``results/<paper>/provenance.json`` (written by the table stage) against the
   workspace now: the code commit, the dvc.lock md5 of every upstream out, the params the tables
   depend on, the seeds and the installed package versions. A dirty code tree is reported.
2. **dvc status**: ``dvc status table@<paper> --with-deps`` is clean (the table stage and every
   stage upstream of it; without ``--with-deps`` DVC looks at the named stage alone).
3. **recompute**: the tables rendered again from the versioned scores, by the table stage's own
   code (tasks/tables/render.py ``render_paper``), into a temporary folder, equal the recorded files
   byte for byte: every table, README, grid and the summary. provenance.json is left to check 1,
   which names the key that differs.

The checks are plain functions of paths and dicts; :func:`render_report` turns their results
into the text the CLI prints.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from inpaintflow.tasks.tables.render import PAPERS, PROVENANCE_FILE

CODE_DIRTY = " + uncommitted changes"  # tasks/tables/render.py code_commit() appends it
MAX_DIFF_LINES = 60                     # of one file's unified diff in the report
BINARY_SUFFIXES = {".png", ".jpg", ".pt"}


@dataclass(frozen=True)
class Finding:
    subject: str        # a provenance key, a DVC stage or a file (relative to the project)
    message: str        # one line
    detail: str = ""    # more lines: a unified diff, sizes and hashes
    fails: bool = True  # False: reported only (a dirty code tree)


@dataclass
class CheckResult:
    name: str
    ok_summary: str = ""                  # the line printed when nothing fails
    findings: list[Finding] = field(default_factory=list)
    fix: str = ""                         # what to do when something fails
    skipped: str | None = None            # why the check did not run

    @property
    def failed(self) -> bool:
        return any(f.fails for f in self.findings)


@dataclass(frozen=True)
class Target:
    root: Path              # the project (dvc.yaml, params.yaml)
    paper: str
    results: Path           # root/results/<paper>
    file: Path | None       # a single file of results/<paper> to recompute, or None for all

    def rel(self, path: Path) -> str:
        return Path(path).relative_to(self.root).as_posix()


@dataclass
class AuditReport:
    target: Target
    checks: list[CheckResult]

    @property
    def passed(self) -> bool:
        return not any(c.failed for c in self.checks)


# ---------------------------------------------------------------------------------------------
# what to audit


def resolve_target(path: Path) -> Target:
    """``results/<paper>`` or a file in it; the project is the folder above ``results``."""
    given = Path(path)
    resolved = given.resolve()
    usage = "pass results/<paper> or a file in it, e.g. results/rmnet or results/rmnet/table-1.csv"
    if not resolved.exists():
        raise FileNotFoundError(f"{given}: no such file or folder; {usage}")
    folder, file = (resolved.parent, resolved) if resolved.is_file() else (resolved, None)
    if folder.parent.name != "results" or folder.name not in PAPERS:
        raise ValueError(f"{given}: not a paper's results folder (results/<paper>, paper one of "
                         f"{', '.join(PAPERS)}) or a file in one; {usage}")
    root = folder.parent.parent
    if not (root / "dvc.yaml").is_file():
        raise ValueError(f"{given}: {root} has no dvc.yaml; audit the results inside the project checkout")
    return Target(root=root, paper=folder.name, results=folder, file=file)


# ---------------------------------------------------------------------------------------------
# check 1: provenance


def flatten(value: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Nested dicts -> {key path: leaf}; lists and empty dicts are leaves."""
    if isinstance(value, dict) and value:
        out: dict[tuple[str, ...], Any] = {}
        for k, v in value.items():
            out.update(flatten(v, (*prefix, str(k))))
        return out
    return {prefix: value}


def key_text(path: tuple[str, ...]) -> str:
    """``params[masks.free.demo].seed``: names holding dots or slashes stay whole in brackets."""
    text = ""
    for part in path:
        text += f"[{part}]" if ("." in part or "/" in part) else (f".{part}" if text else part)
    return text


_ABSENT = object()


def _show(value: Any) -> str:
    return "<absent>" if value is _ABSENT else json.dumps(value, ensure_ascii=False, sort_keys=True)


def compare_provenance(recorded: dict[str, Any], current: dict[str, Any]) -> list[Finding]:
    """Every key whose recorded value differs from the workspace's, and a note on a dirty tree.
    ``notes`` are not compared: they explain the nulls, which are compared."""
    rec = {k: v for k, v in flatten(recorded).items() if k[:1] != ("notes",)}
    cur = {k: v for k, v in flatten(current).items() if k[:1] != ("notes",)}
    findings = [Finding(key_text(k), f"recorded {_show(rec.get(k, _ABSENT))}, workspace {_show(cur.get(k, _ABSENT))}")
                for k in sorted(set(rec) | set(cur)) if rec.get(k, _ABSENT) != cur.get(k, _ABSENT)]
    code = str(current.get("code", ""))
    if code.endswith(CODE_DIRTY):
        findings.append(Finding("code", "the code has uncommitted changes: no commit re-derives these tables "
                                        "(commit, then `dvc repro` the table stage)", fails=False))
    # inputs the workspace's dvc.lock cannot vouch for (null): `dvc status` reports their stages
    findings += [Finding("inputs", note, fails=False) for note in current.get("notes") or []]
    return findings


def _provenance_fix(findings: Iterable[Finding], paper: str) -> str:
    groups = {f.subject.split(".")[0].split("[")[0] for f in findings if f.fails}
    fixes = []
    if groups & {"inputs", "params", "seeds", "experiments", "profile", "code"}:
        fixes.append(f"the workspace changed since the tables were rendered: `dvc repro table@{paper}` "
                     f"(`dvc repro --force --single-item table@{paper}` when DVC finds nothing to rerun)")
    if "packages" in groups:
        fixes.append("install the recorded package versions, or re-render the tables with the installed ones")
    if groups - {"inputs", "params", "seeds", "experiments", "profile", "code", "packages"}:
        fixes.append(f"re-render the tables: `dvc repro --force --single-item table@{paper}`")
    return "; ".join(fixes)


def check_provenance(target: Target, params_path: Path) -> CheckResult:
    from inpaintflow.tasks.tables.render import collect_provenance

    result = CheckResult("provenance")
    path = target.results / PROVENANCE_FILE
    if not path.is_file():
        result.findings.append(Finding(target.rel(path), "missing: the tables were rendered by code that "
                                                         "does not record their provenance"))
        result.fix = f"re-render them: `dvc repro --force --single-item table@{target.paper}`"
        return result
    try:
        recorded = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        result.findings.append(Finding(target.rel(path), f"not valid JSON: {exc}"))
        result.fix = f"re-render the tables: `dvc repro --force --single-item table@{target.paper}`"
        return result
    current = collect_provenance(target.paper, params_path, target.root)
    result.findings = compare_provenance(recorded, current)
    result.fix = _provenance_fix(result.findings, target.paper)
    code = str(current.get("code", "?"))
    locked = sum(1 for v in (current.get("inputs") or {}).values() if v is not None)
    result.ok_summary = (f"code {code[:12]}{' (dirty)' if code.endswith(CODE_DIRTY) else ''}, "
                         f"outs of {locked} upstream stages match dvc.lock, "
                         f"{len(current.get('params') or {})} params entries, {len(current.get('seeds') or {})} seeds, "
                         f"{len(current.get('packages') or {})} package versions")
    return result


# ---------------------------------------------------------------------------------------------
# check 2: dvc status


def parse_status(output: str) -> dict[str, Any]:
    """``dvc status --json`` output; DVC may print warnings around the JSON line."""
    with contextlib.suppress(json.JSONDecodeError):
        return json.loads(output)
    for line in reversed(output.splitlines()):
        if line.strip().startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                return json.loads(line)
    raise ValueError(f"`dvc status --json` printed no JSON object:\n{output.strip()[-2000:]}")


def status_findings(status: dict[str, Any]) -> list[Finding]:
    """One finding per changed stage: ``masks@free: changed deps: params.yaml masks.free modified``."""
    findings = []
    for stage, changes in sorted(status.items()):
        parts = []
        for change in changes if isinstance(changes, list) else [changes]:
            if not isinstance(change, dict):
                parts.append(str(change))  # e.g. "always changed"
                continue
            for kind, items in change.items():
                if not isinstance(items, dict):
                    parts.append(f"{kind}: {items}")
                    continue
                for path, state in items.items():
                    if isinstance(state, dict):
                        parts += [f"{kind}: {path} {key} {s}" for key, s in state.items()]
                    else:
                        parts.append(f"{kind}: {path} {state}")
        findings.append(Finding(stage, "; ".join(parts) or "changed"))
    return findings


def check_status(target: Target) -> CheckResult:
    from inpaintflow.tasks.pipeline.dvc import run_dvc

    stage = f"table@{target.paper}"
    result = CheckResult("dvc status", fix=f"`dvc repro {stage}` brings the stages and their outputs up to date "
                                           "(or `dvc checkout` restores outputs that were edited)")
    proc = run_dvc(["status", stage, "--with-deps", "--json"], target.root, check=False)
    if proc.returncode:
        tail = "\n".join(proc.stdout.strip().splitlines()[-10:])
        result.findings.append(Finding(stage, f"`dvc status` exited {proc.returncode}", detail=tail))
        result.fix = "rerun when no other DVC command holds the repository, or pass --skip-status"
        return result
    result.findings = status_findings(parse_status(proc.stdout))
    result.ok_summary = f"{stage} and every stage upstream of it are up to date (`dvc status --with-deps`)"
    return result


# ---------------------------------------------------------------------------------------------
# check 3: recompute


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def compare_bytes(recorded: bytes, recomputed: bytes, label: str, binary: bool = False) -> Finding | None:
    """None when equal; else a unified diff for text, sizes and hashes for binary files."""
    if recorded == recomputed:
        return None
    if not binary:
        try:
            a, b = recorded.decode("utf-8"), recomputed.decode("utf-8")
        except UnicodeDecodeError:
            binary = True
    if binary:
        return Finding(label, "binary differs", detail=(
            f"recorded   {len(recorded)} bytes, sha256 {_sha256(recorded)}\n"
            f"recomputed {len(recomputed)} bytes, sha256 {_sha256(recomputed)}"))
    diff = list(difflib.unified_diff(a.splitlines(), b.splitlines(), f"{label} (recorded)",
                                     f"{label} (recomputed)", lineterm=""))
    if not diff:
        return Finding(label, "differs in line endings or the final newline only")
    changed = sum(1 for line in diff[2:] if line[:1] in "+-")
    if len(diff) > MAX_DIFF_LINES:
        diff = diff[:MAX_DIFF_LINES] + [f"... ({len(diff) - MAX_DIFF_LINES} more diff lines)"]
    return Finding(label, f"differs ({changed} lines added or removed)", detail="\n".join(diff))


def compare_files(recorded: Path, recomputed: Path, label: str) -> Finding | None:
    if not recorded.is_file():
        return Finding(label, "missing: the table stage writes it, the results lack it")
    if not recomputed.is_file():
        return Finding(label, "not written by the table stage (left over from an older render?)")
    return compare_bytes(recorded.read_bytes(), recomputed.read_bytes(), label,
                         binary=recorded.suffix.lower() in BINARY_SUFFIXES)


def compare_dirs(recorded: Path, recomputed: Path, label: str, only: Iterable[str] | None = None,
                 skip: Iterable[str] = ()) -> tuple[list[Finding], int]:
    """Every file of either folder, by relative name: (findings, files compared)."""
    def names(folder: Path) -> set[str]:
        return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}

    wanted = (names(recorded) | names(recomputed)) - set(skip)
    if only is not None:
        wanted &= set(only)
    findings = [f for name in sorted(wanted)
                if (f := compare_files(recorded / name, recomputed / name, f"{label}/{name}")) is not None]
    return findings, len(wanted)


def table_summary(root: Path, paper: str) -> Path | None:
    """The table stage's summary file when it lies outside results/<paper> (dvc.yaml's ``table``
    outs and metrics, ``${key}`` = the paper), relative to the project; None otherwise."""
    path = root / "dvc.yaml"
    stage = ((yaml.safe_load(path.read_text()) or {}).get("stages") or {}).get("table") or {}
    body = stage.get("do") or stage
    results = Path("results") / paper
    for entry in [*(body.get("outs") or []), *(body.get("metrics") or [])]:
        name = Path(str(next(iter(entry)) if isinstance(entry, dict) else entry).replace("${key}", paper))
        if name != results and results not in name.parents:
            return name
    return None


def check_recompute(target: Target, params_path: Path) -> CheckResult:
    from inpaintflow.tasks.tables.render import render_paper

    result = CheckResult("recompute", fix=f"the recorded files are not what the code renders from the versioned "
                                          f"scores: `dvc repro --force --single-item table@{target.paper}` "
                                          f"(after `dvc checkout` if they were edited by hand)")
    if target.file is not None and target.file.name == PROVENANCE_FILE:
        result.skipped = f"{PROVENANCE_FILE} is checked key by key by the provenance check"
        return result
    summary = table_summary(target.root, target.paper)
    label = target.rel(target.results)
    # render_paper reads runs/... relative to the working directory, as the DVC stage does
    with tempfile.TemporaryDirectory(prefix="inpaintflow-audit-") as tmp, contextlib.chdir(target.root):
        out = Path(tmp) / target.paper
        rendered_summary = Path(tmp) / "summary.json" if summary else None
        try:
            render_paper(target.paper, out, params_path, rendered_summary)
        except Exception as exc:  # noqa: BLE001  (the audit reports why it could not re-render)
            result.findings.append(Finding(label, f"cannot re-render the tables: {type(exc).__name__}: {exc}"))
            result.fix = "restore the versioned inputs (`dvc pull` / `dvc repro`), then audit again"
            return result
        only = None if target.file is None else [target.file.name]
        result.findings, count = compare_dirs(target.results, out, label, only=only, skip=[PROVENANCE_FILE])
        if summary is not None and target.file is None:
            found = compare_files(target.root / summary, rendered_summary, summary.as_posix())
            result.findings += [found] if found else []
            count += 1
    extra = f" ({PROVENANCE_FILE}: see provenance)" if target.file is None else ""
    result.ok_summary = f"{count} file{'s' if count != 1 else ''} re-rendered byte-identical{extra}"
    return result


# ---------------------------------------------------------------------------------------------
# the audit and its report


def audit(path: Path, params_path: Path | None = None, skip_status: bool = False) -> AuditReport:
    from inpaintflow.params import load_entry

    target = resolve_target(path)
    params = Path(params_path).resolve() if params_path else target.root / "params.yaml"
    load_entry("tables", target.paper, params)  # a paper the params do not list: one clear error
    checks = [check_provenance(target, params)]
    if skip_status:
        checks.append(CheckResult("dvc status", skipped="--skip-status"))
    else:
        checks.append(check_status(target))
    checks.append(check_recompute(target, params))
    return AuditReport(target, checks)


def _indent(text: str, pad: str) -> str:
    return "\n".join(pad + line for line in text.splitlines())


def render_report(report: AuditReport) -> str:
    t = report.target
    shown = t.rel(t.file) if t.file else t.rel(t.results)
    lines = [f"audit {shown} (paper {t.paper})"]
    width = max(len(c.name) for c in report.checks)
    for check in report.checks:
        failing = [f for f in check.findings if f.fails]
        notes = [f for f in check.findings if not f.fails]
        if check.skipped:
            lines.append(f"  {check.name:<{width}}  SKIP  {check.skipped}")
        elif not failing:
            lines.append(f"  {check.name:<{width}}  OK    {check.ok_summary}")
        else:
            lines.append(f"  {check.name:<{width}}  FAIL  {len(failing)} difference{'s' if len(failing) != 1 else ''}")
            for f in failing:
                lines.append(f"      {f.subject}: {f.message}")
                if f.detail:
                    lines.append(_indent(f.detail, "        "))
            if check.fix:
                lines.append(f"      fix: {check.fix}")
        lines += [f"      note: {f.subject}: {f.message}" for f in notes]
    failed = [c.name for c in report.checks if c.failed]
    lines.append(f"FAILED: {', '.join(failed)}" if failed else "OK")
    return "\n".join(lines) + "\n"

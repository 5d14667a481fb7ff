"""A paper's DVC stages in dependency order, and the state fingerprint that keys their cache.

Pure functions over params.yaml, dvc.yaml, dvc.lock and ``dvc status --json`` output; the
Prefect flow that runs the stages is flows/pipeline.py.

The plan follows the stage groups of dvc.yaml: for each experiment of ``tables.<paper>`` in
params.yaml, the datasets it trains and tests on (``data@``), its mask set (``masks@``), its
trained run (``train@``), then ``inpaint@``, ``blend@`` (only where dvc.yaml has that group and
it covers the experiment), ``evaluate@`` and finally ``table@<paper>``. Every data and masks stage
precedes every train stage, and so on group by group, which is a valid order because a group
reads only the outputs of the groups before it.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml

from inpaintflow.params import ParamsError, load_entry, read_yaml

# dvc.yaml's stage groups in dependency order; blend is optional (see paper_stages)
GROUPS = ("data", "masks", "train", "inpaint", "blend", "evaluate", "table")
OPTIONAL_GROUPS = ("blend",)
REQUIRED_GROUPS = tuple(g for g in GROUPS if g not in OPTIONAL_GROUPS)
_INTERPOLATION = re.compile(r"^\$\{\s*([A-Za-z0-9_.-]+)\s*\}$")


class PlanError(ValueError):
    pass


def read_stage_groups(dvc_yaml: Path) -> dict[str, dict[str, Any]]:
    """The ``stages:`` mapping of dvc.yaml (group name -> definition)."""
    dvc_yaml = Path(dvc_yaml)
    if not dvc_yaml.is_file():
        raise PlanError(f"{dvc_yaml}: not found (run from the project root)")
    try:
        raw = yaml.safe_load(dvc_yaml.read_text()) or {}
    except yaml.YAMLError as exc:
        raise PlanError(f"{dvc_yaml}: not valid YAML: {exc}") from exc
    stages = raw.get("stages") if isinstance(raw, dict) else None
    if not isinstance(stages, dict):
        raise PlanError(f"{dvc_yaml}: no `stages:` mapping")
    return stages


def foreach_keys(definition: dict[str, Any], params: dict[str, Any]) -> list[str] | None:
    """The item keys of a ``foreach`` group (``foreach: ${inpaint}`` -> params.yaml's inpaint
    entries), or None when the group is not a foreach over something this can resolve."""
    items = definition.get("foreach") if isinstance(definition, dict) else None
    if isinstance(items, str):
        match = _INTERPOLATION.match(items)
        if not match:
            return None
        items = params
        for part in match.group(1).split("."):
            if not isinstance(items, dict) or part not in items:
                return None
            items = items[part]
    if isinstance(items, dict):
        return [str(k) for k in items]
    if isinstance(items, list) and all(isinstance(i, (str, int)) for i in items):
        return [str(i) for i in items]
    return None


def _append(plan: list[str], stage: str) -> None:
    if stage not in plan:
        plan.append(stage)


def paper_stages(paper: str, params_path: Path = Path("params.yaml"),
                 dvc_yaml: Path = Path("dvc.yaml")) -> list[str]:
    """Every DVC stage that ``table@<paper>`` needs, each once, in an order DVC could run them."""
    params_path = Path(params_path)
    raw = read_yaml(params_path)
    papers = raw.get("tables") or {}
    if paper not in papers:
        raise PlanError(f"unknown paper {paper!r}: {params_path} has no tables.{paper}; "
                        f"known: {', '.join(map(str, papers)) or 'none'}")
    groups = read_stage_groups(dvc_yaml)
    missing = [g for g in REQUIRED_GROUPS if g not in groups]
    if missing:
        raise PlanError(f"{dvc_yaml}: no stage group {', '.join(missing)} (the paper pipeline needs "
                        f"{', '.join(REQUIRED_GROUPS)})")

    experiments = list(dict.fromkeys(load_entry("tables", paper, params_path).experiments))
    by_group: dict[str, list[str]] = {g: [] for g in GROUPS}
    for name in experiments:
        entry = load_entry("inpaint", name, params_path)
        try:
            run = load_entry("train", entry.run, params_path)
        except ParamsError as exc:
            raise PlanError(f"{params_path}: inpaint.{name}.run: {exc}") from None
        _append(by_group["data"], run.data)
        _append(by_group["data"], entry.data)
        _append(by_group["masks"], entry.masks)
        _append(by_group["train"], entry.run)
        for group in ("inpaint", "blend", "evaluate"):
            _append(by_group[group], name)
    by_group["table"] = [paper]

    plan: list[str] = []
    for group, keys in by_group.items():
        if group not in groups:
            continue  # an optional group dvc.yaml does not define
        known = foreach_keys(groups[group], raw)
        for key in keys:
            if known is not None and key not in known:
                if group in OPTIONAL_GROUPS:
                    continue  # e.g. a blend group over only the experiments that blend
                raise PlanError(f"{dvc_yaml}: stage {group}@{key} does not exist (its foreach lists "
                                f"{', '.join(known) or 'nothing'}); add {key!r} to the group it iterates")
            _append(plan, f"{group}@{key}")
    return plan


# ---------------------------------------------------------------------------------------------
# stage state (the cache key's inputs; see flows/pipeline.py for the reasoning)


def parse_status(output: str, stage: str) -> list[Any]:
    """What ``dvc status --json <stage>`` reports for the stage ([] = up to date).

    DVC may print warnings before its one line of JSON, so the last line that parses is used.
    """
    for line in reversed(output.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            report = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(report, dict):
            break
        # a single-stage status names only that stage; whatever it lists counts as a change
        changes: list[Any] = []
        for listed in report.values():
            changes.extend(listed if isinstance(listed, list) else [listed])
        return changes
    raise PlanError(f"`dvc status --json {stage}` printed no JSON object:\n{output[-2000:]}")


def lock_entry(lock_path: Path, stage: str) -> dict[str, Any] | None:
    """The stage's record in dvc.lock (cmd, deps and outs with their md5, params values)."""
    lock_path = Path(lock_path)
    if not lock_path.is_file():
        return None
    raw = yaml.safe_load(lock_path.read_text()) or {}
    entry = (raw.get("stages") or {}).get(stage)
    return entry if isinstance(entry, dict) else None


def state_fingerprint(stage: str, entry: dict[str, Any], repo: Path) -> str:
    """sha256 of the stage's name, its dvc.lock record and the repository it lives in."""
    canonical = json.dumps({"stage": stage, "lock": entry, "repo": str(Path(repo).resolve())},
                           sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()

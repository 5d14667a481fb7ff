"""Metric regressions: new scores against the last committed ones, per metric and direction.

A score file (``runs/metrics/<paper>/<experiment>.json``, written by the evaluate stage) is
walked for numeric leaves whose key names a metric: ``<m>_mean``, ``hole_<m>_mean``,
``psnr_of_mean_mse``, ``hole_psnr_of_mean_mse`` and ``fid``. Standard deviations and counts describe the spread, not
the quality, and are not compared. Lists of results are addressed by their ``method`` label, so a
key path reads ``results[R-MNet-0.4].bins.0.1-0.2.psnr_mean``.

A value *regresses* when it moves the wrong way (inpaintflow.tasks.evaluate.metrics.HIGHER_IS_BETTER) by more than
the metric's tolerance, or when a value the baseline had is gone (missing, null or NaN).
Everything here is pure: the caller reads the files (``git show HEAD:path`` for the baseline).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from inpaintflow.tasks.evaluate.metrics import HIGHER_IS_BETTER

_MEAN = re.compile(r"^(?:hole_)?(?P<metric>[a-z0-9]+)_mean$")
_SET_PSNR = re.compile(r"^(?:hole_)?psnr_of_mean_mse$")
_REL_EPS = 1e-9  # decimal values like 20.1 - 19.6 land a hair above 0.5 in binary floats
REPORT_LINES = 40  # changes listed in a commit message before "... and N more"


def metric_of(key: str) -> str | None:
    """The metric a score key measures (``hole_psnr_mean`` -> ``psnr``), None for other keys."""
    if key == "fid":
        return "fid"
    if _SET_PSNR.match(key):
        return "psnr"
    match = _MEAN.match(key)
    if match and match["metric"] in HIGHER_IS_BETTER:
        return match["metric"]
    return None


def _number(value: Any) -> float | None:
    """A comparable number: None for null, NaN, text and booleans."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) else float(value)


def metric_values(doc: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """(key path, metric, raw value) for every metric leaf of a score document."""
    if isinstance(doc, Mapping):
        for key, value in doc.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(value, (Mapping, list)):
                yield from metric_values(value, child)
            elif (metric := metric_of(str(key))) is not None:
                yield child, metric, value
    elif isinstance(doc, list):
        for i, item in enumerate(doc):
            label = item.get("method") if isinstance(item, Mapping) else None
            yield from metric_values(item, f"{path}[{label if isinstance(label, str) else i}]")


@dataclass(frozen=True)
class Change:
    """One metric value of one file, before and after."""

    file: str
    key: str
    metric: str
    old: float | None
    new: float | None
    tolerance: float

    @property
    def higher_is_better(self) -> bool:
        return HIGHER_IS_BETTER[self.metric]

    @property
    def delta(self) -> float | None:
        """new - old (None when either side is missing)."""
        if self.old is None or self.new is None:
            return None
        if self.old == self.new:  # also inf == inf, whose difference would be NaN
            return 0.0
        return self.new - self.old

    @property
    def regressed(self) -> bool:
        if self.old is None:
            return False  # nothing to fall from: a new or previously undefined value
        if self.new is None:
            return True   # a value the baseline had is gone
        worse = -self.delta if self.higher_is_better else self.delta
        return worse > self.tolerance + _REL_EPS * max(1.0, abs(self.old) if math.isfinite(self.old) else 1.0)

    def describe(self) -> str:
        direction = "higher" if self.higher_is_better else "lower"
        if self.new is None:
            return (f"{self.file} {self.key}: {self.metric} {self.old:g} -> missing "
                    f"({direction} is better, tolerance {self.tolerance:g})")
        old = "none" if self.old is None else f"{self.old:g}"
        delta = "" if self.delta is None else f" ({self.delta:+g})"
        return (f"{self.file} {self.key}: {self.metric} {old} -> {self.new:g}{delta}; "
                f"{direction} is better, tolerance {self.tolerance:g}")


def compare_scores(old: Any, new: Any, file: str, tolerances: Mapping[str, float]) -> list[Change]:
    """Every metric value of ``file`` that changed or regressed between two score documents.

    ``tolerances`` maps a metric to the largest wrong-way move allowed (a metric without one
    allows none). Values present only in ``new`` are listed when numeric (they cannot regress).
    """
    before = {key: (metric, _number(v)) for key, metric, v in metric_values(old)}
    after = {key: (metric, _number(v)) for key, metric, v in metric_values(new)}
    changes = []
    for key in [*before, *(k for k in after if k not in before)]:
        metric = (before.get(key) or after[key])[0]
        old_value = before[key][1] if key in before else None
        new_value = after[key][1] if key in after else None
        change = Change(file, key, metric, old_value, new_value, float(tolerances.get(metric, 0.0)))
        if change.regressed or (change.delta not in (0.0, None)) or (old_value is None and new_value is not None):
            changes.append(change)
    return changes


@dataclass(frozen=True)
class Comparison:
    """The changes of a set of score files against their baselines."""

    changes: list[Change]
    no_baseline: list[str]  # files the baseline revision does not have (first run, new experiment)

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.regressed]

    def report(self, limit: int | None = None) -> str:
        """Readable summary: every regression, then (up to ``limit``) the other changes."""
        lines = []
        if self.regressions:
            lines.append(f"{len(self.regressions)} metric value(s) regressed beyond tolerance:")
            lines += [f"  {c.describe()}" for c in self.regressions]
        others = [c for c in self.changes if not c.regressed]
        if others:
            lines.append(f"{len(others)} other metric value(s) changed within tolerance or improved:")
            shown = others if limit is None else others[:limit]
            lines += [f"  {c.describe()}" for c in shown]
            if len(shown) < len(others):
                lines.append(f"  ... and {len(others) - len(shown)} more")
        if not self.changes:
            lines.append("no metric value changed")
        if self.no_baseline:
            lines.append(f"no committed baseline for: {', '.join(self.no_baseline)}")
        return "\n".join(lines)


def compare_files(baseline: Mapping[str, Any | None], current: Mapping[str, Any],
                  tolerances: Mapping[str, float]) -> Comparison:
    """Compare score documents by file name; a baseline of None means the file is new."""
    changes, fresh = [], []
    for file, doc in current.items():
        old = baseline.get(file)
        if old is None:
            fresh.append(file)
            continue
        changes += compare_scores(old, doc, file, tolerances)
    for file, old in baseline.items():
        if old is not None and file not in current:  # a score file vanished: all its values are gone
            changes += compare_scores(old, {}, file, tolerances)
    return Comparison(changes, fresh)

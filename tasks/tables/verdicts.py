"""Does every reproduced row beat the classical baselines? One verdict per (experiment, result, bin).

A reproduced row earns its place when, on the same test pairs, it has a lower hole L1 and a
higher hole PSNR than mean fill (the floor: what knowing nothing but the image's mean colour
gives). On holes of 30% or more a feed-forward model should also beat cv2 Telea on hole L1,
since diffusion smears across large holes. Both rules read an experiment's metrics record
(``runs/metrics/<paper>/<experiment>.json``, written by the evaluate stage): nothing is
re-scored here, so the verdicts are about exactly the numbers the tables show.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

MEAN_FILL = "baselines/mean-fill"
TELEA = "baselines/telea"
FEED_FORWARD = "feed-forward"
LARGE_HOLE = 0.3  # bins starting at or above this hole ratio: feed-forward rows must beat Telea


@dataclass(frozen=True)
class Verdict:
    experiment: str
    result: str  # the result's dir: "inpainted", "blended", "refined", ...
    bin: str
    hole_l1: float
    hole_psnr: float
    mean_fill: tuple[float, float] | None  # (hole L1, hole PSNR) of mean fill on the same pairs
    telea: tuple[float, float] | None
    telea_required: bool  # a feed-forward row on a bin of 30% holes or more

    @property
    def beats_mean_fill(self) -> bool | None:
        if self.mean_fill is None:
            return None
        return self.hole_l1 < self.mean_fill[0] and self.hole_psnr > self.mean_fill[1]

    @property
    def beats_telea_l1(self) -> bool | None:
        return None if self.telea is None else self.hole_l1 < self.telea[0]

    @property
    def ok(self) -> bool:
        """Beats mean fill (and Telea on hole L1 where required); False when mean fill is missing."""
        if not self.beats_mean_fill:
            return False
        return not self.telea_required or bool(self.beats_telea_l1)


def bin_start(name: str) -> float | None:
    """0.3 for "0.3-0.4"; None for a fixed pattern's "fixed" bin."""
    try:
        return float(name.split("-")[0])
    except ValueError:
        return None


def _figures(result: dict[str, Any]) -> dict[str, tuple[float, float]]:
    return {name: (float(b["hole_l1_mean"]), float(b["hole_psnr_mean"]))
            for name, b in result["bins"].items() if b.get("hole_count", b.get("count", 0))}


def verdicts(record: dict[str, Any], experiment: str = "") -> list[Verdict]:
    """Every reproduced (non-baseline) result of one metrics record, bin by bin."""
    results = {r["dir"]: r for r in record["results"]}
    mean_fill = _figures(results[MEAN_FILL]) if MEAN_FILL in results else {}
    telea = _figures(results[TELEA]) if TELEA in results else {}
    feed_forward = record.get("experiment", {}).get("method") == FEED_FORWARD
    out = []
    for name, result in results.items():
        if name.startswith("baselines/"):
            continue
        for bin_name, (l1, psnr) in _figures(result).items():
            start = bin_start(bin_name)
            out.append(Verdict(experiment=experiment, result=name, bin=bin_name, hole_l1=l1, hole_psnr=psnr,
                               mean_fill=mean_fill.get(bin_name), telea=telea.get(bin_name),
                               telea_required=feed_forward and start is not None and start >= LARGE_HOLE))
    return out


def read_verdicts(metrics_root: Path) -> list[Verdict]:
    """Verdicts for every ``<paper>/<experiment>.json`` under ``metrics_root`` (runs/metrics)."""
    out = []
    for path in sorted(Path(metrics_root).glob("*/*.json")):
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not JSON ({exc})") from None
        out += verdicts(record, f"{path.parent.name}/{path.stem}")
    return out


def render(rows: Iterable[Verdict]) -> str:
    """A plain-text table: one line per verdict, the gaps in the baselines' favour marked."""
    def pair(v: tuple[float, float] | None) -> str:
        return "      -        -" if v is None else f"{v[0]:7.4f} {v[1]:7.2f}"

    lines = [f"{'experiment':40s} {'result':10s} {'bin':8s} {'model L1':>8s} {'PSNR':>6s}   "
             f"{'mean fill L1':>12s} {'PSNR':>6s}   {'Telea L1':>8s} {'PSNR':>6s}  verdict"]
    for v in rows:
        flags = ["beats mean fill" if v.beats_mean_fill else
                 ("NO MEAN FILL BASELINE" if v.beats_mean_fill is None else "LOSES TO MEAN FILL")]
        if v.telea is not None:
            gap = v.hole_l1 - v.telea[0]
            flags.append("beats Telea L1" if gap < 0 else f"Telea L1 ahead by {gap:.4f}"
                         + (" (REQUIRED)" if v.telea_required else ""))
        lines.append(f"{v.experiment:40s} {v.result:10s} {v.bin:8s} {v.hole_l1:8.4f} {v.hole_psnr:6.2f}   "
                     f"{pair(v.mean_fill)}   {pair(v.telea)}  {'; '.join(flags)}")
    return "\n".join(lines)

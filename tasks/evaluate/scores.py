"""An experiment's scores: every result directory of an inpaint run scored, gathered into one
JSON for ``dvc metrics show/diff`` and for the tables.

    SCORES/<slug>.csv            per image (tasks/evaluate/scoring.py)
    SCORES/<slug>.summary.csv    per hole-ratio bin and total
    SCORES/<slug>.summary.json
    METRICS.json                 {experiment: {...}, results: [{method, stage, dir, slug, fid, fid_reason, total, bins}], ...}
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from inpaintflow.conventions import write_text_atomic


class ScoresError(ValueError):
    pass


def read_experiment(experiment: Path) -> dict[str, Any]:
    record = Path(experiment) / "inpaint.json"
    if not record.is_file():
        raise ScoresError(f"{record}: missing; the inpaint run did not finish (run `inpaintflow inpaint` first)")
    return json.loads(record.read_text())


def scored_results(experiment: Path, blend: Path | None = None) -> list[tuple[dict[str, Any], Path]]:
    """Each result of an inpaint run and the directory to score for it. A latent method's result
    is scored after the blend step (``blend`` = that step's output directory)."""
    experiment = Path(experiment)
    out = []
    for result in read_experiment(experiment)["results"]:
        row = {"method": result["method"], "stage": result["stage"], "dir": result.get("blend") or result["dir"]}
        if not result.get("blend"):
            out.append((row, experiment / result["dir"]))
            continue
        if blend is None:
            raise ScoresError(f"{experiment / 'inpaint.json'}: {result['method']} is scored after Poisson "
                              f"blending; blend it first (inpaintflow blend --experiment {experiment} --out DIR) "
                              f"and pass --blend DIR")
        if not (Path(blend) / "blend.json").is_file():
            raise ScoresError(f"{Path(blend) / 'blend.json'}: missing; the blend step did not finish "
                              f"(inpaintflow blend --experiment {experiment} --out {blend})")
        out.append((row, Path(blend) / result["blend"]))
    return out


def slug(method: str, stage: str | None) -> str:
    """A file name for a result: 'Telea (cv2)' -> 'telea-cv2'."""
    text = method + (f"-{stage}" if stage else "")
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")


def round_floats(value: Any, digits: int = 6) -> Any:
    """Fixed precision and valid JSON (inf/NaN -> None): the same scores give the same bytes."""
    if isinstance(value, float):
        return None if value != value or value in (float("inf"), float("-inf")) else round(value, digits)
    if isinstance(value, dict):
        return {k: round_floats(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [round_floats(v, digits) for v in value]
    return value


def write_metrics(path: Path, record: dict[str, Any], results: list[dict[str, Any]]) -> Path:
    payload = {"experiment": {k: record.get(k) for k in ("method", "model", "label", "pairs", "bins", "image_size",
                                                           "checkpoint_sha256", "train")},
               "results": results}
    return write_text_atomic(path,
                             json.dumps(round_floats(payload), indent=2, sort_keys=True) + "\n")

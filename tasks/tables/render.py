"""The papers' result tables, reproduced beside the numbers the papers print (``inpaintflow table``).

Inputs: references/papers.yaml (every table of the five papers, digitised in long format, with
page and line numbers) and the scores of the experiments params.yaml lists for the paper
(``tables.<paper>.experiments``; each experiment's ``runs/inpaint/<name>/scores/metrics.json``).

Each reference table keeps its own rows and columns. Under a row of the paper's own method come
the reproduced row (``<method> (inpaintflow)``) and a ``Δ`` row (reproduced - paper); the
classical baselines follow as extra rows. Every number is printed in the paper's own scale
(paper 004: SSIM x100; paper 003: l1 and l2 x10^-3), and every table says which; PSNR uses the
form the paper uses (per image, or over the set from the mean MSE), and says which.

Outputs, per table ``T``: ``table-T.csv``, ``table-T.md``, ``table-T.tex``; per paper:
``README.md`` (all tables with their headers), ``summary.json`` (reproduced values and
differences, for ``dvc metrics``), ``grid-<experiment>.png`` (masked | output | blended |
ground truth) and ``provenance.json`` (code commit, dvc.lock md5s of the inputs, params, seeds,
package versions; ``inpaintflow audit`` checks it). Same inputs, same bytes: nothing here reads
a clock.
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import yaml

from inpaintflow.conventions import read_image, write_image, write_text_atomic
from inpaintflow.params import PAPERS, active_profile, load_entry, load_group, load_step, read_yaml

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_FILE = ROOT / "references" / "papers.yaml"
CODE_DIRS = ("inpaintflow", "tasks", "models", "flows", "references")
REPRODUCED = "(inpaintflow)"
NOT_RUN = ""  # a cell this profile's experiments do not cover


class TableError(ValueError):
    pass


def check_paper(paper: str) -> None:
    if paper not in PAPERS:
        raise TableError(f"unknown paper {paper!r}; known: {', '.join(PAPERS)}")


class Printed(float):
    """A reference number that remembers how the paper printed it (0.8760 keeps 4 decimals)."""

    text: str


class _ReferenceLoader(yaml.SafeLoader):
    pass


def _printed_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Printed:
    value = Printed(loader.construct_yaml_float(node))
    value.text = node.value
    return value


_ReferenceLoader.add_constructor("tag:yaml.org,2002:float", _printed_float)


def load_references(path: Path = REFERENCE_FILE) -> dict[str, Any]:
    refs = yaml.load(Path(path).read_text(), Loader=_ReferenceLoader)  # noqa: S506 (a SafeLoader)
    missing = [p for p in PAPERS if p not in refs]
    if missing:
        raise TableError(f"{path}: no entry for papers {missing}")
    return refs


# ---------------------------------------------------------------------------------------------
# reproduced values, in long format like the references


def bin_key(text: str | None) -> tuple[float, float] | None:
    """'0.1-0.2' and '0.10-0.20' are the same bin."""
    if text is None:
        return None
    lo, hi = str(text).split("-")
    return round(float(lo), 4), round(float(hi), 4)


# metric key of the references -> key in our summaries (tasks/evaluate/metrics.py); psnr depends on the form
SUMMARY_KEYS = {"mae": "mae_mean", "mse": "mse_mean", "ssim": "ssim_mean", "mssim": "ssim_mean",
                "l1": "l1_mean", "l2": "l2_mean"}


def metric_value(summary: dict[str, Any], metric: str, psnr_form: str) -> float | None:
    if metric == "psnr":
        return summary.get("psnr_of_mean_mse" if psnr_form == "set" else "psnr_mean")
    key = SUMMARY_KEYS.get(metric)
    return summary.get(key) if key else None


@dataclass(frozen=True)
class Experiment:
    name: str
    dataset: str        # the paper's dataset name (reference vocabulary), e.g. celeba-hq
    masks: str          # the paper's mask family, e.g. quickdraw
    setting: str | None
    metrics: dict[str, Any]   # scores/metrics.json
    params_count: dict[str, int] = field(default_factory=dict)  # from the run's train.json


def reproduced_records(exp: Experiment, table: dict[str, Any]) -> list[dict[str, Any]]:
    """Long-format records of one experiment, shaped for one reference table."""
    if table.get("dataset") and table["dataset"] != exp.dataset:
        return []
    if table.get("masks") and table["masks"] != exp.masks:
        return []
    layout_keys = set(table["layout"]["rows"]) | set(table["layout"]["columns"])
    form = table.get("psnr_form", "per-image")
    records = []
    for result in exp.metrics["results"]:
        base = {"method": result["method"], "dataset": exp.dataset, "masks": exp.masks}
        if result.get("stage"):
            base["stage"] = result["stage"]
        if exp.setting is not None and result["method"] == exp.metrics["experiment"]["label"]:
            base["setting"] = exp.setting
        groups = ([(b, s) for b, s in result["bins"].items()] if "bin" in layout_keys
                  else [(None, result["total"])])
        for bin_label, summary in groups:
            for metric in table["metrics"]:
                if metric == "fid":
                    value = result["fid"] if bin_label is None else None
                elif metric == "params_m":
                    count = exp.params_count.get("generator") if result["method"] == exp.metrics["experiment"]["label"] else None
                    value = count / 1e6 if count else None
                else:
                    value = metric_value(summary, metric, form)
                rec = {**base, "metric": metric, "value": value, "count": summary.get("count")}
                if bin_label is not None:
                    rec["bin"] = bin_label
                if metric == "fid" and value is None:
                    rec["reason"] = result.get("fid_reason", "")
                records.append(rec)
    return records


# ---------------------------------------------------------------------------------------------
# one table


def _cell_key(record: dict[str, Any], keys: Sequence[str]) -> tuple:
    return tuple(bin_key(record.get(k)) if k == "bin" else record.get(k) for k in keys)


def decimals_of(value: Any) -> int:
    """Decimals as the paper prints them (references keep the printed text: 0.8760 -> 4)."""
    text = getattr(value, "text", None) or repr(float(value))
    return len(text.split(".")[1]) if "." in text and "e" not in text.lower() else 0


@dataclass
class Table:
    paper: str
    id: str
    caption: str
    source: str                  # page and lines in the paper's text
    header: list[str]            # column titles
    rows: list[list[str]]        # printed cells
    notes: list[str]
    summary: dict[str, Any]      # reproduced values and deltas by row and column


def _label(keys: Sequence[str], values: tuple, metrics: dict[str, Any]) -> str:
    parts = []
    for k, v in zip(keys, values):
        if k == "metric":
            m = metrics[v]
            scale = m.get("scale", 1)
            parts.append(m["label"] + ("" if scale == 1 else f" (x{scale:g})"))
        elif k == "bin" and v is not None:
            parts.append(f"{v[0] * 100:g}-{v[1] * 100:g}%")
        elif v is not None:
            parts.append(str(v))
    return " ".join(parts)


def build_table(paper: str, table: dict[str, Any], experiments: Sequence[Experiment],
                labels: dict[str, str] | None = None) -> Table:
    """The paper's table with reproduced rows (or columns) and differences beside its own.

    The method axis decides where reproductions go: beside each row when the paper lists
    methods as rows, beside each column when it lists them as columns (the grid is built
    transposed, then turned back), and as extra rows under every row when the table holds one
    method only (paper 001's Table 1: then the baselines have no place in it).
    """
    row_keys, col_keys = list(table["layout"]["rows"]), list(table["layout"]["columns"])
    transposed = "method" in col_keys
    if transposed:
        row_keys, col_keys = col_keys, row_keys
    metrics = table["metrics"]
    ref: dict[tuple, dict[tuple, Any]] = {}
    ref_stage: dict[tuple, Any] = {}
    for rec in table["records"]:
        row, col = _cell_key(rec, row_keys), _cell_key(rec, col_keys)
        ref.setdefault(row, {})[col] = rec["value"]
        ref_stage[row + col] = rec.get("stage")
    columns = list(dict.fromkeys(_cell_key(r, col_keys) for r in table["records"]))
    metric_decimals = {m: max((decimals_of(r["value"]) for r in table["records"] if r["metric"] == m), default=3)
                       for m in metrics}

    def metric_at(row: tuple, col: tuple) -> str:
        return col[col_keys.index("metric")] if "metric" in col_keys else row[row_keys.index("metric")]

    def decimals(row: tuple, col: tuple) -> int:
        paper_value = ref.get(row, {}).get(col)
        return decimals_of(paper_value) if paper_value is not None else metric_decimals.get(metric_at(row, col), 3)

    repro: dict[tuple, dict[tuple, float | None]] = {}
    reasons: set[str] = set()
    for exp in experiments:
        own = exp.metrics["experiment"]["label"]
        for rec in reproduced_records(exp, table):
            # the paper may name its method differently in one table ("Ours" / "Proposed")
            rec = {**rec, "method": (labels or {}).get(rec["method"], rec["method"])}
            if "method" not in row_keys and rec["method"] != (labels or {}).get(own, own):
                continue  # a one-method table: no place for the baselines
            row, col = _cell_key(rec, row_keys), _cell_key(rec, col_keys)
            if col not in columns:
                continue
            paper_stage = ref_stage.get(row + col)
            if paper_stage and rec.get("stage") and rec["stage"] != paper_stage:
                continue  # e.g. the first pass of a refinement run beside the refined row
            value = None if rec["value"] is None else rec["value"] * metrics[rec["metric"]].get("scale", 1)
            repro.setdefault(row, {})[col] = value
            if rec.get("reason"):
                reasons.add(rec["reason"])

    def fmt(value: float | None, row: tuple, col: tuple, signed: bool = False) -> str:
        if value is None:
            return "n/a" if metric_at(row, col) == "fid" and not signed else NOT_RUN
        if math.isinf(value):
            return "inf"
        return f"{value:{'+' if signed else ''}.{decimals(row, col)}f}"

    name_pos = row_keys.index("method") if "method" in row_keys else len(row_keys) - 1
    grid_rows: list[tuple[list[str], list[str]]] = []  # (label cells, value cells)
    summary: dict[str, Any] = {}

    def label_of(row: tuple, suffix: str = "") -> list[str]:
        cells = [_label([k], (v,), metrics) for k, v in zip(row_keys, row)]
        if suffix:
            cells[name_pos] = f"{cells[name_pos]} {suffix}".strip()
        return cells

    for row, cells in ref.items():
        grid_rows.append((label_of(row), [fmt(cells.get(c), row, c) for c in columns]))
        mine = repro.pop(row, None)
        if mine is None:
            continue
        deltas = [None if mine.get(c) is None or cells.get(c) is None else mine[c] - float(cells[c]) for c in columns]
        grid_rows.append((label_of(row, REPRODUCED), [fmt(mine.get(c), row, c) for c in columns]))
        grid_rows.append((label_of(row, "Δ"), [fmt(d, row, c, signed=True) for d, c in zip(deltas, columns)]))
        summary[" ".join(label_of(row, REPRODUCED))] = {
            _label(col_keys, c, metrics): {"reproduced": mine.get(c), "paper": float(cells[c]) if c in cells else None,
                                            "delta": d} for c, d in zip(columns, deltas)}
    for row, cells in repro.items():  # the baselines: rows the paper does not print
        if all(v is None for v in cells.values()):
            continue  # nothing to show (e.g. parameter counts of a classical method)
        grid_rows.append((label_of(row, REPRODUCED), [fmt(cells.get(c), row, c) for c in columns]))
        summary[" ".join(label_of(row, REPRODUCED))] = {_label(col_keys, c, metrics): {"reproduced": cells.get(c)}
                                                        for c in columns}

    header = row_keys + [_label(col_keys, c, metrics) for c in columns]
    body = [labels + values for labels, values in grid_rows]
    if transposed:  # back to the paper's orientation: its row keys down the side again
        col_labels = [[_label([k], (v,), metrics) for k, v in zip(col_keys, c)] for c in columns]
        header = col_keys + [" ".join(x for x in labels if x) for labels, _ in grid_rows]
        body = [col_labels[j] + [values[j] for _, values in grid_rows] for j in range(len(columns))]

    notes = [f"PSNR: {_psnr_note(table.get('psnr_form') or 'unstated')}."]
    scaled = [f"{m['label']} x{m['scale']:g}" for m in metrics.values() if m.get("scale", 1) != 1]
    if scaled:
        notes.append("Printed in the paper's scale (our value times): " + ", ".join(scaled) + ".")
    notes.append(f"Rows marked {REPRODUCED} are this pipeline's; Δ = reproduced - paper; an empty cell: "
                 "no experiment of this profile covers it.")
    notes.extend(f"FID n/a: {r}" for r in sorted(reasons))
    if table.get("notes"):
        notes.append(f"Digitisation notes: {' '.join(str(table['notes']).split())}")
    source = f"paper {paper}, Table {table['id']}" + (f", page {table['page']}" if table.get("page") else "") + \
             (f", lines {table['lines']} of {table['file']}" if table.get("lines") and table.get("file") else "")
    return Table(paper=paper, id=str(table["id"]), caption=" ".join(str(table.get("caption", "")).split()),
                 source=source, header=header, rows=body, notes=notes, summary=summary)


def _psnr_note(form: str) -> str:
    return {"set": "over the set, 10*log10(255^2 / mean MSE), as the paper computes it",
            "per-image": "per image, then averaged (the paper's convention)",
            }.get(form, "the paper does not state its form; per image, then averaged")


# ---------------------------------------------------------------------------------------------
# rendering: CSV, Markdown, LaTeX


def render_csv(table: Table) -> str:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(table.header)
    writer.writerows(table.rows)
    return buf.getvalue()


def render_markdown(table: Table, header_lines: Sequence[str]) -> str:
    lines = [f"### Table {table.id} (paper {table.paper}): {table.caption}", "", f"Source: {table.source}.", ""]
    lines += [f"- {h}" for h in header_lines] + [""]
    lines.append("| " + " | ".join(table.header) + " |")
    lines.append("|" + "|".join("---" for _ in table.header) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in table.rows]
    lines.append("")
    lines += [f"{n}" for n in table.notes]
    return "\n".join(lines) + "\n"


def _tex(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("Δ", r"$\Delta$"), ("^", r"\^{}")):
        text = text.replace(a, b)
    return text


def render_latex(table: Table, header_lines: Sequence[str]) -> str:
    cols = "l" * len(table.header)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{cols}}}", r"\toprule",
             " & ".join(_tex(h) for h in table.header) + r" \\", r"\midrule"]
    lines += [" & ".join(_tex(c) for c in r) + r" \\" for r in table.rows]
    lines += [r"\bottomrule", r"\end{tabular}",
              rf"\caption{{Reproduction of Table {table.id} of paper {table.paper}: {_tex(table.caption)} "
              rf"{_tex(' '.join(table.notes[:2]))}}}",
              "% " + "\n% ".join(_tex(h) for h in header_lines), r"\end{table}"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# provenance header


def code_commit(root: Path = ROOT) -> str:
    """The last commit that touched the code, or 'uncommitted changes' when the code differs
    from it (a table from a dirty tree cannot be re-derived from any commit)."""
    try:
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *CODE_DIRS], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
        commit = subprocess.run(["git", "log", "-1", "--format=%H", "--", *CODE_DIRS], cwd=root,
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{commit or 'none'}" + (" + uncommitted changes" if dirty else "")


PACKAGES = ("inpaintflow", "torch", "numpy", "scipy", "opencv-python-headless", "prefect", "dvc")


def package_version_map() -> dict[str, str]:
    """Python and the installed versions of the packages the tables' numbers depend on."""
    from importlib.metadata import PackageNotFoundError, version
    import platform

    out = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def package_versions() -> str:
    return ", ".join(f"{pkg} {v}" for pkg, v in package_version_map().items())


# ---------------------------------------------------------------------------------------------
# provenance.json: what a paper's tables were rendered from, machine-readable (`inpaintflow audit`)

PROVENANCE_FILE = "provenance.json"
PROVENANCE_SCHEMA = 1


def experiment_stages(name: str, entry: Any) -> list[str]:
    """The DVC stages upstream of one experiment's scores (dvc.yaml), nearest first; blend@NAME
    only where the pipeline has that stage."""
    return [f"evaluate@{name}", f"blend@{name}", f"inpaint@{name}", f"train@{entry.run}",
            f"data@{entry.data}", f"masks@{entry.masks}"]


def _declared(stage: str, dvc_stages: dict[str, Any], params: dict[str, Any]) -> bool | None:
    """Whether dvc.yaml defines ``stage`` (True/False), or None where its ``foreach`` cannot be
    resolved here (a matrix, say): then only dvc.lock tells."""
    group, _, key = stage.partition("@")
    spec = dvc_stages.get(group)
    if not isinstance(spec, dict):
        return False
    foreach = spec.get("foreach")
    if isinstance(foreach, str) and foreach.startswith("${") and foreach.endswith("}"):
        node: Any = params
        for part in foreach[2:-1].split("."):
            node = node.get(part) if isinstance(node, dict) else None
        foreach = node
    if isinstance(foreach, (dict, list)):
        return key in foreach
    return None


def stage_inputs(stages: Sequence[str], lock: dict[str, Any], dvc_stages: dict[str, Any],
                 params: dict[str, Any]) -> tuple[dict[str, dict[str, str] | None], list[str]]:
    """The md5 of each stage's outs as dvc.lock records them: ``{stage: {path: md5}}``.

    A train stage contributes only the outs a recorded stage depends on (the checkpoint): its
    train.json and logs hold wall-clock figures and feed no table. A stage that dvc.yaml defines
    but dvc.lock lacks (tables rendered outside ``dvc repro``) is recorded as None, with a note.
    """
    consumed = {d["path"] for s in stages for d in (lock.get(s) or {}).get("deps") or []}
    inputs: dict[str, dict[str, str] | None] = {}
    notes = []
    for stage in dict.fromkeys(stages):
        if stage not in lock:
            if _declared(stage, dvc_stages, params):
                inputs[stage] = None
                notes.append(f"{stage}: not in dvc.lock (rendered outside `dvc repro`?); its outs are not recorded")
            continue
        outs = lock[stage].get("outs") or []
        if stage.startswith("train@"):
            outs = [o for o in outs if o["path"] in consumed]
            if not outs:
                inputs[stage] = None
                notes.append(f"{stage}: no stage recorded in dvc.lock depends on its outs; not recorded")
                continue
        inputs[stage] = {o["path"]: o.get("md5") for o in outs}
    return inputs, notes


def provenance_record(paper: str, params: dict[str, Any], profile: str, lock: dict[str, Any],
                      dvc_stages: dict[str, Any], code: str, packages: dict[str, str]) -> dict[str, Any]:
    """Everything a paper's tables were rendered from, as plain JSON values: the code commit,
    the dvc.lock md5 of every upstream out, the params the tables depend on (the DVC keys, the
    data/masks/train entries under the active profile), the seeds and the package versions.
    Nothing here reads a clock or an absolute path: same inputs, same record."""
    from inpaintflow.params import STEP_MODELS, paper_experiments

    def entry(group: str, name: str) -> Any:
        return STEP_MODELS[group].model_validate(params[group][name])

    names = paper_experiments(params, paper)
    used: dict[str, Any] = {"profile": profile, f"tables.{paper}": params["tables"][paper],
                            "evaluate": params.get("evaluate")}
    seeds: dict[str, int] = {}
    stages: list[str] = []
    for name in names:
        exp = entry("inpaint", name)
        used[f"inpaint.{name}"] = params["inpaint"][name]
        seeds[f"inpaint.{name}"] = getattr(exp, profile).seed
        for group, key in (("data", exp.data), ("masks", exp.masks), ("train", exp.run)):
            used[f"{group}.{key}.{profile}"] = params[group][key][profile]
            seeds[f"{group}.{key}"] = getattr(entry(group, key), profile).seed
        stages += experiment_stages(name, exp)
    inputs, notes = stage_inputs(stages, lock, dvc_stages, params)
    record = {"schema": PROVENANCE_SCHEMA, "paper": paper, "profile": profile, "experiments": names,
              "code": code, "inputs": inputs, "params": used, "seeds": seeds, "packages": packages,
              "notes": notes}
    return json.loads(json.dumps(record))  # plain JSON values: what a reader of the file gets back


def read_pipeline(root: Path = Path(".")) -> tuple[dict[str, Any], dict[str, Any]]:
    """dvc.lock's and dvc.yaml's stages in ``root`` (empty where a file is missing)."""
    def stages(name: str) -> dict[str, Any]:
        path = Path(root) / name
        if not path.is_file():
            return {}
        data = yaml.safe_load(path.read_text()) or {}
        return data.get("stages") or {}

    return stages("dvc.lock"), stages("dvc.yaml")


def collect_provenance(paper: str, params_path: Path, root: Path = Path(".")) -> dict[str, Any]:
    """The provenance of ``paper``'s tables in the project at ``root``, as of now."""
    from inpaintflow.params import active_profile, read_yaml

    params = read_yaml(params_path)
    lock, dvc_stages = read_pipeline(root)
    return provenance_record(paper, params, active_profile(params, params_path), lock, dvc_stages,
                             code_commit(), package_version_map())


def provenance_json(record: dict[str, Any]) -> str:
    return json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_provenance(out_dir: Path, record: dict[str, Any]) -> Path:
    return write_text_atomic(Path(out_dir) / PROVENANCE_FILE, provenance_json(record))


# ---------------------------------------------------------------------------------------------
# image grids


def image_grid(experiment: Path, blend: Path | None = None, n: int = 6) -> np.ndarray:
    """Rows of masked | output | blended (refined for paper 001) | ground truth; the blended column
    comes from the blend step's folder, and repeats the output for feed-forward runs."""
    experiment = Path(experiment)
    names = sorted(p.name for p in (experiment / "target").glob("*.png"))[:n]
    final = experiment / "output"
    for later in ("refined", "blended"):
        if blend is not None and (Path(blend) / later).is_dir():
            final = Path(blend) / later
            break
    cols = [experiment / "masked", experiment / "output", final, experiment / "target"]
    rows = []
    for name in names:
        tiles = [read_image(c / name) for c in cols]
        gap = np.full((tiles[0].shape[0], 2, 3), 255, np.uint8)
        rows.append(np.concatenate([x for t in tiles for x in (t, gap)][:-1], axis=1))
        rows.append(np.full((2, rows[-1].shape[1], 3), 255, np.uint8))
    return np.concatenate(rows[:-1], axis=0)


def write_grid(experiment: Path, out: Path, blend: Path | None = None) -> Path:
    return write_image(out, image_grid(experiment, blend))


def write_paper(paper: str, experiments: Sequence[Experiment], header_lines: Sequence[str], out_dir: Path,
                references: dict[str, Any] | None = None, summary_path: Path | None = None,
                labels: dict[str, dict[str, str]] | None = None) -> list[Path]:
    """Every table of ``paper`` (CSV, Markdown, LaTeX), README.md and summary.json."""
    references = references or load_references()
    entry = references[paper]
    out_dir = Path(out_dir)
    written, sections, summary = [], [f"# Paper {paper}: {entry['paper']}", ""], {}
    for ref in entry["tables"]:
        table = build_table(paper, {**ref, "file": entry.get("file", "")}, experiments,
                            (labels or {}).get(str(ref["id"])))
        stem = f"table-{table.id}"
        written.append(write_text_atomic(out_dir / f"{stem}.csv", render_csv(table)))
        md = render_markdown(table, header_lines)
        written.append(write_text_atomic(out_dir / f"{stem}.md", md))
        written.append(write_text_atomic(out_dir / f"{stem}.tex", render_latex(table, header_lines)))
        sections.append(md)
        summary[f"table-{table.id}"] = table.summary
    from inpaintflow.tasks.evaluate.scores import round_floats

    written.append(write_text_atomic(out_dir / "README.md", "\n".join(sections)))
    written.append(write_text_atomic(summary_path or out_dir / "summary.json",
                                     json.dumps(round_floats(summary), indent=2, sort_keys=True,
                                                ensure_ascii=False) + "\n"))
    return written


# dvc.yaml: inpaint@NAME, blend@NAME and evaluate@NAME write under <root>/<paper>/NAME, with
# <paper> = inpaint.NAME.paper_id, so a paper's table stage depends on that paper's results only
INPAINT_RUNS = Path("runs/inpaint")
BLEND_RUNS = Path("runs/blend")
METRICS = Path("runs/metrics")


def experiment_dir(paper: str, name: str) -> Path:
    return INPAINT_RUNS / paper / name


def blend_dir(paper: str, name: str) -> Path:
    return BLEND_RUNS / paper / name


def metrics_file(paper: str, name: str) -> Path:
    return METRICS / paper / f"{name}.json"


def _experiment(name: str, params_path: Path) -> tuple[Experiment, list[str]]:
    """The experiment's scores and the header lines that describe its inputs."""
    entry = load_entry("inpaint", name, params_path)
    scores = metrics_file(entry.paper_id, name)
    if not scores.is_file():
        raise FileNotFoundError(f"{scores}: missing; score the experiment first (dvc repro evaluate@{name})")
    metrics = json.loads(scores.read_text())
    data = load_step("data", entry.data, params_path)
    masks = load_step("masks", entry.masks, params_path)
    data_paper = load_step("data", entry.data, params_path, "paper")
    masks_paper = load_step("masks", entry.masks, params_path, "paper")
    train = metrics["experiment"].get("train") or {}
    inception = sorted({r.get("inception_weights") or f"none ({r.get('fid_reason')})" for r in metrics["results"]})
    p = load_step("inpaint", name, params_path)
    steps = "" if p.method == "feed-forward" else \
        f", steps {p.steps or 'paper'}" + (f" + {p.refine_steps or 'paper'}" if p.method == "yeh-refine" else "")
    lines = [f"{name}: {metrics['experiment']['label']} ({p.method}{steps}), {metrics['experiment']['pairs']} "
             f"pairs; data {entry.data} = {data.dataset} {data.size}px (paper: {data_paper.dataset}); "
             f"masks {entry.masks} = {masks.family}, seed {masks.seed}, bins {masks.bins or 'fixed'}; "
             f"run {entry.run}: {train.get('steps', '?')} steps, VGG-19 {train.get('vgg19', 'n/a')}; "
             f"Inception {', '.join(inception)}"]
    exp = Experiment(name=name, dataset=data_paper.dataset, masks=masks_paper.family, setting=entry.setting,
                     metrics=metrics, params_count=train.get("parameters", {}))
    return exp, lines


def render_paper(paper: str, out: Path, params_path: Path, summary: Path | None) -> list[Path]:
    """Write paper ``paper``'s tables, grids and provenance.json into ``out`` from the scores on
    disk (paths relative to the working directory, as the DVC stage runs); returns the files."""
    entry = load_entry("tables", paper, params_path)
    names = entry.experiments
    raw = read_yaml(params_path)
    experiments, header = [], [f"profile: {active_profile(raw, params_path)}"]
    for name in names:
        exp, lines = _experiment(name, params_path)
        experiments.append(exp)
        header += lines
    load_group("evaluate", params_path)
    header += [f"code: git {code_commit()}", f"packages: {package_versions()}"]
    written = write_paper(paper, experiments, header, out, summary_path=summary, labels=entry.labels)
    for name in names:
        written.append(write_grid(experiment_dir(paper, name), Path(out) / f"grid-{name}.png", blend_dir(paper, name)))
    # read from dvc.lock now: under `dvc repro` every upstream stage has been locked by this point
    written.append(write_provenance(out, collect_provenance(paper, params_path)))
    return written

"""Prefect flow: a paper's result tables (``inpaintflow table PAPER``, DVC stage ``table``).

The tables are rendered by :func:`inpaintflow.tasks.tables.render.render_paper` (the audit
re-renders them with the same function); this flow wraps it as one task.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from inpaintflow.tasks.tables.render import render_paper


@task(cache_policy=NO_CACHE)
def render_tables(paper: str, out: Path, params_path: Path, summary: Path | None) -> list[Path]:
    return render_paper(paper, out, params_path, summary)


@flow(name="table", log_prints=True)
def table_flow(paper: str, out: Path, params_path: Path = Path("params.yaml"),
               summary: Path | None = None) -> list[Path]:
    written = render_tables(paper, Path(out), Path(params_path), summary)
    print(f"paper {paper}: {len(written)} files -> {out}")
    return written

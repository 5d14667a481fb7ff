"""Pipeline timings in a temporary clone of the project: the demo from scratch, a no-op
``dvc repro``, and each stage's share, with ratios against the targets in the same run.

    python benchmarks/pipeline.py                  (or: make bench-pipeline; 11+ min on 2 cores)
    python benchmarks/pipeline.py --tiny           the tests' tiny all-papers profile, a quick check
    python benchmarks/pipeline.py --out FILE.json  also save the figures

1. Full demo: starting the clone's own Prefect server (as ``inpaintflow demo`` does), then one
   ``dvc repro`` of everything. Target: 15 min.
2. No-op: ``dvc repro`` again, best of 3 (nothing may run). Target: 3 s.
3. Per stage: the seconds from DVC's "Running stage 'X'" line to the next stage's (or the end),
   stamped as the lines of that same repro arrive: the stage's command plus DVC hashing and
   caching its outputs. Time before the first stage is DVC's start-up and pipeline check.

The clone is a copy of the project's source (tests/test_dvc.py: copy_project) with its own
Prefect state; nothing in this checkout is read from or written to besides --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from inpaintflow.conventions import write_text_atomic  # noqa: E402
from inpaintflow.tasks.pipeline.dvc import run_dvc  # noqa: E402

TARGETS = {"full_s": 15 * 60.0, "noop_s": 3.0}
STAGE_LINE = re.compile(r"Running stage '([^']+)'")
# the clone gets its own Prefect home and server: none of these may point at the user's
PREFECT_VARS = ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_LOCAL_STORAGE_PATH", "PREFECT_PROFILES_PATH")


class Stamped:
    """DVC's output lines with their arrival times (perf_counter)."""

    def __init__(self, echo: bool):
        self.lines: list[tuple[float, str]] = []
        self.echo = echo

    def __call__(self, line: str) -> None:
        self.lines.append((time.perf_counter(), line))
        if self.echo:
            print(f"    | {line}", flush=True)


@contextmanager
def project_folder(keep: Path | None, prefix: str) -> Iterator[Path]:
    """An empty folder for a clone of the project with its own Prefect state: ``keep`` (a new
    folder, left in place) or a temporary one. The user's Prefect variables are dropped first,
    so nothing reaches their server or state."""
    for var in PREFECT_VARS:
        os.environ.pop(var, None)
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        if keep and keep.exists():
            raise SystemExit(f"--keep {keep}: exists; name a new folder")
        project = keep.resolve() if keep else Path(tmp) / "project"
        project.mkdir(parents=True)
        os.environ["INPAINTFLOW_STATE_DIR"] = str(project / ".inpaintflow")
        os.environ["PYTHONUNBUFFERED"] = "1"  # stage output arrives as it is printed (stage times)
        yield project


def stage_times(lines: list[tuple[float, str]], end: float) -> dict[str, float]:
    """Seconds per stage, in the order DVC ran them."""
    starts = [(t, m.group(1)) for t, line in lines if (m := STAGE_LINE.search(line))]
    bounds = [t for t, _ in starts[1:]] + [end]
    return {name: stop - start for (start, name), stop in zip(starts, bounds)}


def stages_that_ran(output: str) -> list[str]:
    return STAGE_LINE.findall(output)


def clone(dest: Path, tiny: bool) -> Path:
    from test_dvc import copy_project

    params = None
    if tiny:
        from test_e2e import TINY_ALL

        params = TINY_ALL
    return copy_project(dest, params)


def measure(project: Path, echo: bool) -> dict:
    from inpaintflow import runtime

    t0 = time.perf_counter()
    server = runtime.start_server(project)
    server_s = time.perf_counter() - t0

    log = Stamped(echo)
    t1 = time.perf_counter()
    run_dvc(["repro"], project, log=log)
    end = time.perf_counter()
    stages = stage_times(log.lines, end)
    first = next((t for t, line in log.lines if STAGE_LINE.search(line)), end)

    noops = []
    for _ in range(3):
        start = time.perf_counter()
        out = run_dvc(["repro"], project).stdout
        noops.append(time.perf_counter() - start)
        ran = stages_that_ran(out)
        if ran:
            raise SystemExit(f"a second `dvc repro` in {project} ran {ran}: not a no-op, nothing to time")
    return {"server_start_s": server_s, "repro_s": end - t1, "full_s": server_s + (end - t1),
            "dvc_startup_s": first - t1, "stages": stages, "noop_runs_s": noops, "noop_s": min(noops),
            "prefect_server": server.url}


def groups(stages: dict[str, float]) -> dict[str, tuple[int, float]]:
    out: dict[str, tuple[int, float]] = {}
    for name, seconds in stages.items():
        group = name.split("@")[0]
        n, total = out.get(group, (0, 0.0))
        out[group] = (n + 1, total + seconds)
    return out


def report(figures: dict) -> None:
    stages, full = figures["stages"], figures["full_s"]
    print(f"\npipeline benchmark, {figures['profile']} profile ({figures['cpus']} CPUs, python {figures['python']})")
    print(f"\n  {'stage':40s} {'seconds':>9s} {'share':>7s}")
    for name, seconds in stages.items():
        print(f"  {name:40s} {seconds:9.1f} {seconds / full:7.1%}")
    print(f"\n  {'stage group':16s} {'stages':>6s} {'seconds':>9s} {'mean':>7s} {'share':>7s}")
    for group, (n, seconds) in groups(stages).items():
        print(f"  {group:16s} {n:6d} {seconds:9.1f} {seconds / n:7.1f} {seconds / full:7.1%}")
    print(f"\n  Prefect server start      {figures['server_start_s']:8.1f} s")
    print(f"  DVC start-up and checks   {figures['dvc_startup_s']:8.1f} s  (before the first stage)")
    print(f"  dvc repro, from scratch   {figures['repro_s']:8.1f} s  ({len(stages)} stages)")
    runs = ", ".join(f"{t:.2f}" for t in figures["noop_runs_s"])
    print(f"\n  {'':26s} {'measured':>10s} {'target':>10s} {'ratio':>7s}")
    for key, label in (("full_s", "full demo (server + repro)"), ("noop_s", "no-op dvc repro (best of 3)")):
        value, target = figures[key], TARGETS[key]
        verdict = "ok" if value <= target else "OVER"
        print(f"  {label:26s} {value:9.1f}s {target:9.0f}s {value / target:7.2f}  {verdict}")
    print(f"  (no-op runs: {runs} s)")
    if figures["profile"] == "tiny":
        print("  (tiny profile: the targets are the demo's; the ratios only show the harness works)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny all-papers profile (minutes)")
    parser.add_argument("--out", type=Path, help="save the figures as JSON")
    parser.add_argument("--keep", type=Path, help="build the clone in this new folder and keep it")
    parser.add_argument("--echo", action="store_true", help="print DVC's output as it arrives")
    args = parser.parse_args(argv)

    with project_folder(args.keep, "inpaintflow-bench-") as project:
        clone(project, args.tiny)
        from inpaintflow import runtime

        print(f"clone: {project} ({'tiny' if args.tiny else 'demo'} profile); running dvc repro ...", flush=True)
        try:
            figures = measure(project, args.echo)
        finally:
            runtime.stop_server(project)
    figures.update(profile="tiny" if args.tiny else "demo", cpus=os.cpu_count(), python=platform.python_version(),
                   targets=TARGETS, ratios={k: figures[k] / v for k, v in TARGETS.items()})
    report(figures)
    if args.out:
        write_text_atomic(args.out, json.dumps(figures, indent=2) + "\n")
        print(f"\nfigures -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

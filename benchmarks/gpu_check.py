"""GPU check: training img/s and peak memory at paper sizes (bf16 + channels_last vs fp32), a paper-profile repro.

Ready to run on a CUDA machine: every model at its paper size and batch, the engine's bf16 +
channels_last path against plain fp32, then a short paper-profile ``dvc repro table@gla`` on real
faces. The whole script fits in --budget-s (480 s by default).

    python benchmarks/gpu_check.py                            # throughput, then the repro
    python benchmarks/gpu_check.py --skip-repro --steps 100 --out gpu.json
    python benchmarks/gpu_check.py --faces DIR --repro-steps 300 --keep /tmp/gla-clone
    python benchmarks/gpu_check.py --smoke --out smoke.json   # CPU, tiny configs (the tests)

1. Throughput. For each model in models.RECIPES, at the size and batch of its run in params.yaml
   (``train.<run>.paper``, the paper's Config with that run's model_config), in its own process
   so that peak memory is that model's: --warmup steps, then --steps timed training steps
   (``torch.cuda.synchronize()`` on both sides of the timer), once per path:
     fp32  the nets moved to the GPU, NCHW, no autocast
     bf16  the engine's CUDA path: ``prepare_nets`` (channels_last) and ``Runtime.autocast``
           (bf16), channels_last input images
   Printed per model: img/s of each path, the bf16/fp32 ratio, and the peak memory of each path
   (``torch.cuda.max_memory_allocated``, reset between the paths). Inputs are random images and
   masks from the model's own training-mask families; a VGG-19 without weights is random, which
   costs the same. TF32 stays at PyTorch's defaults (the header prints them): fp32 convolutions
   may use TF32 on Ampere and later, as they would in a plain fp32 run.
2. Repro (unless --skip-repro). ``dvc repro table@gla`` in a temporary copy of the project
   (tests/test_dvc.py: copy_project) with its own Prefect server, in the paper profile: the GLA
   run's dataset is a ``folder`` dataset on --faces (real CelebA crops), training is cut to
   --repro-steps, and few masks and test images are used. Printed: wall time, per-stage times,
   the CelebA-HQ table.

Budget: each model gets an even share of what is left of the throughput budget (--budget-s less
--repro-reserve-s when the repro runs); a model's process cuts its timed steps to fit its share
(the JSON says ``cut``), and when less than --min-model-s is left no further model starts (the
output names the skipped ones). The repro gets what is left of --budget-s as its timeout.

--smoke is the CPU check the tests run: tiny configs (``Config.tiny()``), 32x32, batch 2, one
warm-up and two timed steps per path, both on CPU (there the engine's path is fp32 NCHW as
well, so the ratio only shows the harness works), no repro. Without CUDA and without --smoke
the script exits non-zero: it never reports CPU figures as GPU ones.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
sys.path[:0] = [str(ROOT), str(BENCHMARKS)]

from inpaintflow.conventions import write_text_atomic  # noqa: E402
from inpaintflow.models import RECIPES  # noqa: E402

DEFAULT_FACES = ROOT.parent / "shared" / "data" / "celeba-faces-dev"
NO_CUDA = "no CUDA device: run with --smoke for the CPU check"
REPRO_PAPER = "gla"  # `dvc repro table@gla`: results/gla, the experiments with paper_id gla
REPRO_TARGET = f"table@{REPRO_PAPER}"
REPRO_RUN = "gla"  # the train.<run> entry it trains (that entry's dataset gets the faces)
SMOKE = {"size": 32, "batch": 2, "steps": 2, "warmup": 1}
# a model process also imports torch, builds the nets and warms up: seconds beyond its timed steps
PROCESS_GRACE_S = 90.0


# ---------------------------------------------------------------------------------------------
# what to run


def paper_runs(params_path: Path = ROOT / "params.yaml") -> dict[str, dict]:
    """model -> its paper run's settings from params.yaml (the first ``train`` entry using it)."""
    params = yaml.safe_load(params_path.read_text())
    runs: dict[str, dict] = {}
    for run, entry in params["train"].items():
        paper = entry["paper"]
        runs.setdefault(paper["model"], {"run": run, "size": paper["size"], "batch": paper["batch_size"],
                                         "model_config": paper.get("model_config", {})})
    return runs


def model_specs(models: list[str], smoke: bool) -> dict[str, dict]:
    if smoke:
        return {m: {"run": None, "size": SMOKE["size"], "batch": SMOKE["batch"], "model_config": {},
                    "tiny": True} for m in models}
    runs = paper_runs()
    missing = [m for m in models if m not in runs]
    if missing:
        raise SystemExit(f"params.yaml: no train entry uses model {', '.join(missing)}: no paper size to time")
    return {m: {**runs[m], "tiny": False} for m in models}


# ---------------------------------------------------------------------------------------------
# one model, in its own process


def _peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def time_path(model: str, spec: dict, device: torch.device, optimised: bool, steps: int, warmup: int,
              deadline: float) -> dict:
    """Train ``model`` for warm-up + timed steps on one path; the timed steps are cut so that they
    end by ``deadline`` (time.time()), estimated from the last warm-up step."""
    import numpy as np

    from inpaintflow.models.common import StepContext
    from inpaintflow.tasks.masks.generators import training_masks
    from inpaintflow.tasks.train.engine import Runtime, TrainSettings, build_config, build_recipe, prepare_nets

    torch.manual_seed(0)
    size, batch = spec["size"], spec["batch"]
    rt = Runtime(device=device, rank=0, world_size=1)
    settings = TrainSettings(model=model, data="-", out="-", steps=1, batch_size=batch, size=size,
                             model_config=spec["model_config"], tiny=spec["tiny"], allow_random_vgg=True,
                             progress=False)
    cfg = build_config(model, spec["tiny"], spec["model_config"], size)
    recipe, vgg_source = build_recipe(settings, cfg)
    if optimised:
        prepare_nets(recipe, rt, compile_nets=False)
        autocast = rt.autocast
    else:  # plain fp32: same device, default memory format, no autocast
        for name, net in recipe.nets.items():
            recipe.nets[name] = net.to(device)
        autocast = contextlib.nullcontext
    images = torch.rand(batch, 3, size, size, device=device) * 2 - 1
    if optimised and device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    masks = None
    if recipe.mask_families:
        stream = training_masks(list(recipe.mask_families), size, np.random.default_rng(0),
                                getattr(cfg, "train_mask_bin", None))
        masks = torch.from_numpy(np.stack([next(stream) for _ in range(batch)])).float()[:, None].to(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def run(first_step: int, n: int) -> float:
        sync()
        start = time.perf_counter()
        for step in range(first_step, first_step + n):
            recipe.training_step(images, masks, StepContext(step=step, autocast=autocast, device=device))
        sync()
        return time.perf_counter() - start

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    baseline_mib = torch.cuda.memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0
    last_warmup_s = 0.0
    for step in range(warmup):  # one at a time: the first steps pay for lazy CUDA init
        last_warmup_s = run(step, 1)
    timed = steps
    if last_warmup_s > 0:
        timed = min(steps, max(min(steps, 10), int((deadline - time.time()) / last_warmup_s)))
    seconds = run(warmup, timed)
    result = {"images_per_s": timed * batch / seconds, "seconds": seconds, "steps": timed,
              "cut": timed < steps, "warmup": warmup, "peak_mib": _peak_mib(device),
              "baseline_mib": baseline_mib, "vgg": vgg_source}
    del recipe, images, masks
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def measure_model(model: str, spec: dict, device: torch.device, steps: int, warmup: int, deadline: float) -> dict:
    """Both paths, fp32 first; each gets half of the time left (the second also what the first left)."""
    fp32 = time_path(model, spec, device, False, steps, warmup, time.time() + (deadline - time.time()) / 2)
    optimised = time_path(model, spec, device, True, steps, warmup, deadline)
    if device.type == "cuda":
        path = "bf16 autocast + channels_last (engine CUDA path)"
        peak_kind = "torch.cuda.max_memory_allocated, reset before each path"
    else:
        path = "engine CPU path (fp32, NCHW: the same as plain)"
        peak_kind = "max RSS of the model's process (both paths so far)"
    return {"model": model, "run": spec["run"], "size": spec["size"], "batch": spec["batch"],
            "tiny": spec["tiny"], "device": device.type, "optimised_path": path, "peak_kind": peak_kind,
            "fp32": fp32, "optimised": optimised, "ratio": optimised["images_per_s"] / fp32["images_per_s"]}


def run_model_process(model: str, spec: dict, args: argparse.Namespace, deadline: float) -> dict:
    cmd = [sys.executable, __file__, "--one", model, "--spec", json.dumps(spec), "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--deadline", repr(deadline)] + (["--smoke"] if args.smoke else [])
    timeout = max(deadline - time.time(), 0) + PROCESS_GRACE_S
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"model": model, "error": f"no result within {timeout:.0f} s (killed)"}
    if out.returncode != 0:
        tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-15:])
        return {"model": model, "error": f"exit {out.returncode}:\n{tail}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def throughput(args: argparse.Namespace, specs: dict[str, dict], budget_end: float) -> tuple[dict, list[str]]:
    print(f"\n{'model':11s} {'size':>4s} {'batch':>5s} {'fp32 img/s':>11s} {'opt img/s':>10s} {'opt/fp32':>9s} "
          f"{'fp32 MiB':>9s} {'opt MiB':>8s}  steps", flush=True)
    results, skipped = {}, []
    for i, (model, spec) in enumerate(specs.items()):
        left = budget_end - time.time()
        if left < args.min_model_s:
            skipped = list(specs)[i:]
            print(f"budget: {left:.0f} s left of the throughput budget, under --min-model-s {args.min_model_s:.0f}: "
                  f"not timed: {', '.join(skipped)}", flush=True)
            break
        share = left / (len(specs) - i)
        record = run_model_process(model, spec, args, time.time() + share)
        results[model] = record
        if "error" in record:
            print(f"{model:11s} FAILED: {record['error']}", flush=True)
            continue
        fp32, opt = record["fp32"], record["optimised"]
        cut = " (cut to fit the budget)" if fp32["cut"] or opt["cut"] else ""
        print(f"{model:11s} {spec['size']:4d} {spec['batch']:5d} {fp32['images_per_s']:11.1f} "
              f"{opt['images_per_s']:10.1f} {record['ratio']:8.2f}x {fp32['peak_mib']:9.0f} {opt['peak_mib']:8.0f}"
              f"  {fp32['steps']}/{opt['steps']}{cut}", flush=True)
    return results, skipped


# ---------------------------------------------------------------------------------------------
# the paper-profile repro


def repro_params(params: dict, faces: Path, steps: int, masks_per_bin: int, images_per_bin: int) -> dict:
    """params.yaml for a short paper-profile run of table@gla on a folder of faces."""
    params = copy.deepcopy(params)
    params["profile"] = "paper"
    train = params["train"][REPRO_RUN]
    size = train["paper"]["size"]
    params["data"][train["data"]]["paper"] = {"dataset": "folder", "source": str(faces.resolve()), "size": size}
    paper = train["paper"]
    paper.update(steps=steps, checkpoint_every=steps, preview_every=steps,
                 log_every=min(paper.get("log_every", 10), steps))
    experiments = [e for e in params["inpaint"].values() if e["paper_id"] == REPRO_PAPER]
    for experiment in experiments:
        params["masks"][experiment["masks"]]["paper"]["count"] = masks_per_bin
        experiment["paper"]["limit"] = images_per_bin
    return params


def repro_outputs(project: Path, params: dict) -> dict:
    """What the repro made: the training record, each experiment's scores per method, the tables."""
    train_json = project / "runs" / REPRO_RUN / "train.json"
    train = json.loads(train_json.read_text()) if train_json.is_file() else {}
    scores = {}
    for name, experiment in params["inpaint"].items():
        metrics = project / "runs" / "metrics" / experiment["paper_id"] / f"{name}.json"
        if experiment["paper_id"] == REPRO_PAPER and metrics.is_file():
            scores[name] = {r["method"] + (f" ({r['stage']})" if r.get("stage") else ""): r["total"]
                            for r in json.loads(metrics.read_text())["results"]}
    table_dir = project / "results" / REPRO_PAPER
    summary = project / "results" / f"summary-{REPRO_PAPER}.json"
    return {"train": {k: train.get(k) for k in ("device", "steps", "parameters", "final_losses")},
            "scores": scores, "summary": json.loads(summary.read_text()) if summary.is_file() else {},
            "tables_md": {p.name: p.read_text() for p in sorted(table_dir.glob("table-*.md"))}}


def print_repro(result: dict) -> None:
    for name, seconds in result["stages"].items():
        print(f"  {name:40s} {seconds:8.1f} s")
    train = result["train"]
    print(f"  train@{REPRO_RUN}: {train.get('steps')} steps on {train.get('device')}, "
          f"generator {(train.get('parameters') or {}).get('generator', 0) / 1e6:.2f} M parameters")
    for experiment, scores in result["scores"].items():
        for method, total in scores.items():
            print(f"  {experiment} {method:30s} PSNR {total['psnr_mean']:6.2f} dB  SSIM {total['ssim_mean']:.4f}"
                  f"  ({total['count']} pairs)")
    print(f"repro: {result['wall_s']:.0f} s wall; tables in {result['table_dir']}"
          + ("" if result["kept"] else " (removed with the clone: the tables are in --out)"), flush=True)
    celeba_hq = next((name for name, text in result["tables_md"].items() if "CelebA-HQ" in text.splitlines()[0]), None)
    if celeba_hq and result["summary"].get(Path(celeba_hq).stem):
        print("\n" + result["tables_md"][celeba_hq], flush=True)
    elif celeba_hq:
        # tasks/tables/render.py fills a paper's table only from experiments on that table's own
        # dataset (celeba-hq); the faces here are a `folder` dataset, so its cells stay empty
        print(f"note: no reproduced cells in {celeba_hq} (the paper's reference rows only): the faces are a "
              "`folder` dataset, not the paper's CelebA-HQ; the scores above (runs/metrics) are this repro's",
              flush=True)


def _run_dvc_with_timeout(args: list[str], repo: Path, log, timeout_s: float) -> tuple[int | None, str]:
    """``dvc ARGS`` with a hard timeout: the process group (dvc and its stage commands) is
    killed when it runs over. Returns (exit code or None when killed, output)."""
    from inpaintflow.tasks.pipeline.dvc import dvc_command

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen([*dvc_command(), *args], cwd=repo, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            log(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        code: int | None = proc.wait(timeout=max(timeout_s, 1))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        code = None
    reader.join(timeout=10)
    return code, "".join(lines)


def repro(args: argparse.Namespace, timeout_s: float) -> dict:
    faces = args.faces
    if not faces.is_dir():
        print(f"\nrepro skipped: no face folder {faces} (pass --faces DIR)", flush=True)
        return {"skipped": f"no face folder {faces}"}
    import pipeline  # benchmarks/pipeline.py: its clone's Prefect set-up and DVC stage timings
    from test_dvc import copy_project  # on sys.path through pipeline (ROOT/tests)

    from inpaintflow.tasks.pipeline.checked_params import validate_file

    params = repro_params(yaml.safe_load((ROOT / "params.yaml").read_text()), faces, args.repro_steps,
                          args.repro_masks, args.repro_images)
    with pipeline.project_folder(args.keep, "inpaintflow-gpu-check-") as project:  # never the user's server
        copy_project(project, params)
        validate_file(project / "params.yaml")  # what `inpaintflow params check` runs: fail before DVC
        from inpaintflow import runtime

        print(f"\nrepro: dvc repro {REPRO_TARGET}, paper profile, faces {faces}, {args.repro_steps} training "
              f"steps, timeout {timeout_s:.0f} s; clone {project}", flush=True)
        start = time.perf_counter()
        try:
            runtime.start_server(project)
            log = pipeline.Stamped(args.echo)
            code, output = _run_dvc_with_timeout(["repro", REPRO_TARGET], project, log,
                                                 timeout_s - (time.perf_counter() - start))
        finally:
            runtime.stop_server(project)
        wall_s = time.perf_counter() - start
        stages = pipeline.stage_times(log.lines, time.perf_counter())
        table_dir = project / "results" / REPRO_PAPER
        result = {"target": REPRO_TARGET, "faces": str(faces), "steps": args.repro_steps, "wall_s": wall_s,
                  "timeout_s": timeout_s, "exit_code": code, "stages": stages, "table_dir": str(table_dir),
                  "kept": bool(args.keep)}
        if code != 0:
            reason = f"killed after {timeout_s:.0f} s" if code is None else f"exit {code}"
            tail = "\n".join(output.splitlines()[-30:])
            print(f"repro FAILED ({reason}) after {wall_s:.0f} s:\n{tail}", flush=True)
            return {**result, "error": reason, "output_tail": tail}
        result.update(repro_outputs(project, params))
        print_repro(result)
    return result


# ---------------------------------------------------------------------------------------------


def header(device: torch.device) -> dict:
    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
            "device": device.type, "cpus": os.cpu_count(), "threads": torch.get_num_threads()}
    if device.type == "cuda":
        info.update(device_name=torch.cuda.get_device_name(device), cudnn=torch.backends.cudnn.version(),
                    tf32_matmul=torch.backends.cuda.matmul.allow_tf32, tf32_cudnn=torch.backends.cudnn.allow_tf32)
    else:
        info["device_name"] = platform.processor() or platform.machine()
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="CPU check: tiny configs, 2 steps, no repro")
    parser.add_argument("--models", nargs="*", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--steps", type=int, default=None, help="timed steps per path (200; smoke 2)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps per path (10; smoke 1)")
    parser.add_argument("--budget-s", type=float, default=480.0, help="the whole script's time, repro included")
    parser.add_argument("--repro-reserve-s", type=float, default=200.0,
                        help="kept out of the throughput budget for the repro")
    parser.add_argument("--min-model-s", type=float, default=15.0, help="no model starts with less time left")
    parser.add_argument("--skip-repro", action="store_true")
    parser.add_argument("--faces", type=Path, default=DEFAULT_FACES, help="folder of face images for the repro")
    parser.add_argument("--repro-steps", type=int, default=300, help="GLA training steps in the repro")
    parser.add_argument("--repro-masks", type=int, default=30, help="evaluation masks per hole-ratio bin")
    parser.add_argument("--repro-images", type=int, default=10, help="test images per hole-ratio bin")
    parser.add_argument("--keep", type=Path, help="build the repro's clone in this new folder and keep it")
    parser.add_argument("--echo", action="store_true", help="print DVC's output as it arrives")
    parser.add_argument("--out", type=Path, help="save every figure as JSON")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a model process: its result as a JSON line
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    steps = args.steps if args.steps is not None else (SMOKE["steps"] if args.smoke else 200)
    warmup = args.warmup if args.warmup is not None else (SMOKE["warmup"] if args.smoke else 10)
    args.steps, args.warmup = steps, warmup

    cuda = torch.cuda.is_available()
    if not args.smoke and not cuda:
        print(NO_CUDA, file=sys.stderr)
        return 2
    device = torch.device("cpu") if args.smoke else torch.device("cuda", 0)
    if args.one:
        record = measure_model(args.one, json.loads(args.spec), device, args.steps, args.warmup, args.deadline)
        print(json.dumps(record))
        return 0

    started = time.time()
    info = header(device)
    mode = "smoke (CPU, tiny configs)" if args.smoke else "gpu (paper sizes)"
    print(f"gpu check, {mode}: torch {info['torch']}, CUDA {info['cuda']}, device {info['device_name']}"
          + (f", cuDNN {info['cudnn']}, TF32 matmul {info['tf32_matmul']} / cuDNN {info['tf32_cudnn']}"
             if cuda and not args.smoke else f", {info['threads']} threads"), flush=True)
    do_repro = not (args.skip_repro or args.smoke)
    throughput_end = started + args.budget_s - (args.repro_reserve_s if do_repro else 0.0)
    print(f"{args.steps} timed steps after {args.warmup} warm-up per path; budget {args.budget_s:.0f} s"
          + (f" ({args.repro_reserve_s:.0f} s of it kept for the repro)" if do_repro else ""), flush=True)
    specs = model_specs(args.models, args.smoke)
    results, skipped = throughput(args, specs, throughput_end)
    if device.type == "cpu":
        print("CPU: both paths are the same fp32 NCHW code; the ratio only shows that the harness works")

    figures = {"mode": "smoke" if args.smoke else "gpu", "header": info,
               "settings": {"steps": args.steps, "warmup": args.warmup, "budget_s": args.budget_s},
               "models": results, "skipped_for_budget": skipped}
    if do_repro:
        try:
            figures["repro"] = repro(args, started + args.budget_s - time.time())
        except Exception as exc:  # a broken repro must not lose the throughput figures above
            print(f"repro FAILED: {type(exc).__name__}: {exc}", flush=True)
            figures["repro"] = {"error": f"{type(exc).__name__}: {exc}"}
    else:
        figures["repro"] = {"skipped": "--smoke" if args.smoke else "--skip-repro"}
    figures["elapsed_s"] = time.time() - started
    print(f"\ngpu check: {figures['elapsed_s']:.0f} s", flush=True)
    if args.out:
        write_text_atomic(args.out, json.dumps(figures, indent=2) + "\n")
        print(f"figures -> {args.out}")
    failed = [m for m, r in results.items() if "error" in r]
    repro_failed = "error" in figures["repro"]
    return 1 if failed or repro_failed else 0


if __name__ == "__main__":
    sys.exit(main())

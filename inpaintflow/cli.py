"""The ``inpaintflow`` command line. Each step is a Prefect flow; DVC stages call ``... stage``.

    inpaintflow data prepare DATASET --size N --out DIR [--source PATH_OR_URL] [--sha256 HEX] [--count N]
    inpaintflow data stage NAME --out DIR          # params.yaml data.NAME, active profile
    inpaintflow data list
    inpaintflow masks make FAMILY --size N --count K [--ratio LO-HI ...] --seed S --out DIR
    inpaintflow masks import {quickdraw,nvidia} --source PATH_OR_URL --size N --out DIR
    inpaintflow masks stage NAME --out DIR         # params.yaml masks.NAME, active profile
    inpaintflow masks list
    inpaintflow train MODEL --data DIR --steps N --batch-size B --size S --out DIR [--resume] [--seed S]
    inpaintflow train stage NAME --data DIR --out DIR   # params.yaml train.NAME, active profile
    inpaintflow inpaint run --method M --checkpoint CKPT --data DIR --masks DIR --out DIR [--limit N] ...
    inpaintflow inpaint stage NAME --out DIR       # params.yaml inpaint.NAME, active profile
    inpaintflow blend --generated DIR --damaged DIR --masks DIR --out DIR [--operator five-point|paper001-3x3]
    inpaintflow blend --experiment DIR --out DIR  # an inpaint run's latent results (the DVC stage)
    inpaintflow evaluate --pred DIR --gt DIR --masks DIR --out FILE.csv [--fid] [--inception-weights PTH]
    inpaintflow evaluate --experiment DIR [--blend DIR] --out DIR [--metrics FILE]  # every result of an inpaint run
    inpaintflow table PAPER [--out DIR]            # the paper's tables (CSV, Markdown, LaTeX, JSON)
    inpaintflow audit results/PAPER[/FILE] [--params FILE] [--skip-status]  # provenance, dvc status, re-render
    inpaintflow pipeline PAPER [--dry-run]         # the paper's DVC stages as one cached Prefect flow
    inpaintflow server start|stop|status           # the reusable local Prefect server
    inpaintflow params check
    inpaintflow schedule show [--count N] [--after ISO]  # next runs of the nightly retraining
    inpaintflow schedule serve                     # serve the nightly-retrain deployment (blocks)
    inpaintflow demo                               # dvc repro of the demo pipeline
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path


def _api() -> None:
    from inpaintflow.runtime import resolve_api

    resolve_api()


# --- data ------------------------------------------------------------------------------------


def _count(text: str) -> int | dict[str, int]:
    """``500`` (every split) or ``train=500,test=100``."""
    if "=" not in text:
        return int(text)
    return {k.strip(): int(v) for k, v in (part.split("=", 1) for part in text.split(","))}


def _prepare(params, out: str) -> None:
    from inpaintflow.tasks.data.datasets import get_spec
    from inpaintflow.tasks.data.sources import check_source

    check_source(get_spec(params.dataset), params.source, params.sha256)  # before any flow starts
    _api()
    from inpaintflow.flows.data import prepare_dataset
    from inpaintflow.runtime import with_task_runner

    with_task_runner(prepare_dataset)(params=params, out_dir=Path(out))


def cmd_data_prepare(args) -> None:
    from pydantic import ValidationError

    from inpaintflow.params import DatasetParams

    try:
        params = DatasetParams(dataset=args.dataset, size=args.size, count=args.count, split=args.split,
                               seed=args.seed, source=args.source, sha256=args.sha256)
    except ValidationError as err:
        raise ValueError("; ".join(f"--{'.'.join(map(str, e['loc'])) or 'dataset'}: {e['msg']}"
                                   for e in err.errors())) from None
    from inpaintflow.tasks.pipeline.checked_params import check_dataset

    check_dataset(params)
    _prepare(params, args.out)


def cmd_data_stage(args) -> None:
    from inpaintflow.tasks.pipeline.checked_params import load_step

    _prepare(load_step("data", args.name, Path(args.params)), args.out)


def cmd_data_list(args) -> None:
    from inpaintflow.tasks.data.datasets import DATASETS

    for spec in DATASETS.values():
        print(f"{spec.name:18s} {spec.kind:9s} splits: {', '.join(spec.splits):22s} {spec.description}")


# --- masks -----------------------------------------------------------------------------------


def cmd_masks_make(args) -> None:
    from inpaintflow.tasks.masks.sets import mask_jobs
    from inpaintflow.tasks.masks.generators import parse_ratio_bin

    for text in args.ratio or []:
        parse_ratio_bin(text)
    mask_jobs(args.family, args.count, args.ratio)  # family and bins checked before any flow starts
    _api()
    from inpaintflow.flows.masks import make_mask_set
    from inpaintflow.runtime import with_task_runner

    with_task_runner(make_mask_set)(family=args.family, size=args.size, count=args.count, bins=args.ratio or None,
                  seed=args.seed, out_dir=Path(args.out))


def cmd_masks_import(args) -> None:
    from inpaintflow.tasks.masks.generators import parse_ratio_bin

    for text in args.ratio or []:
        parse_ratio_bin(text)
    _api()
    from inpaintflow.flows.masks import import_mask_set
    from inpaintflow.runtime import with_task_runner

    with_task_runner(import_mask_set)(family=args.family, source=args.source, size=args.size, out_dir=Path(args.out),
                    bins=args.ratio or None, count=args.count, sha256=args.sha256)


def cmd_masks_stage(args) -> None:
    from inpaintflow.tasks.pipeline.checked_params import load_step

    p = load_step("masks", args.name, Path(args.params))
    if p.family not in ("quickdraw", "nvidia"):
        from inpaintflow.tasks.masks.sets import mask_jobs

        mask_jobs(p.family, p.count, p.bins)
    _api()
    from inpaintflow.flows.masks import import_mask_set, make_mask_set
    from inpaintflow.runtime import with_task_runner

    if p.family in ("quickdraw", "nvidia"):
        with_task_runner(import_mask_set)(family=p.family, source=p.source, size=p.size, out_dir=Path(args.out),
                                          bins=p.bins, count=p.count, sha256=p.sha256)
    else:
        with_task_runner(make_mask_set)(family=p.family, size=p.size, count=p.count, bins=p.bins, seed=p.seed,
                                        out_dir=Path(args.out))


def cmd_masks_list(args) -> None:
    from inpaintflow.tasks.masks.generators import FAMILIES

    for fam in FAMILIES.values():
        print(f"{fam.name:26s} {'fixed ratio' if fam.fixed_ratio else 'needs --ratio':13s} {fam.description}")
    print(f"{'quickdraw':26s} {'import':13s} Quick Draw Irregular Mask Dataset (holes black -> 255)")
    print(f"{'nvidia':26s} {'import':13s} NVIDIA irregular test masks (bin from the file index)")


# --- train -----------------------------------------------------------------------------------


def _overrides(pairs: list[str] | None) -> dict:
    """``--set key=value`` (value parsed as YAML: 8, 1e-4, true, [1, 2])."""
    import yaml

    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"--set {pair!r}: expected key=value")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def _run_training(settings, resume) -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun: every rank runs the engine itself
        from inpaintflow.tasks.train.engine import train

        train(settings, resume=resume)
        return
    _api()
    from inpaintflow.flows.train import train_flow

    train_flow(settings=settings, resume=resume)


def cmd_train(args) -> None:
    from inpaintflow.tasks.train.engine import TrainSettings

    settings = TrainSettings(
        model=args.model, data=args.data, out=args.out, steps=args.steps, batch_size=args.batch_size,
        size=args.size, seed=args.seed, checkpoint_every=args.checkpoint_every,
        preview_every=args.preview_every, log_every=args.log_every, model_config=_overrides(args.set),
        tiny=args.tiny, vgg_weights=args.vgg_weights, allow_random_vgg=args.allow_random_vgg,
        compile=args.compile, progress=not args.no_progress)
    _run_training(settings, args.resume)


def cmd_train_stage(args) -> None:
    from inpaintflow.tasks.pipeline.checked_params import load_step
    from inpaintflow.tasks.train.engine import TrainSettings

    p = load_step("train", args.name, Path(args.params))
    settings = TrainSettings(
        model=p.model, data=args.data, out=args.out, steps=p.steps, batch_size=p.batch_size, size=p.size,
        seed=p.seed, checkpoint_every=p.checkpoint_every, preview_every=p.preview_every,
        log_every=p.log_every, val_every=p.val_every, val_images=p.val_images,
        val_latent_steps=p.val_latent_steps,
        model_config=dict(p.model_config_overrides), tiny=p.tiny,
        vgg_weights=args.vgg_weights or p.vgg_weights, allow_random_vgg=p.allow_random_vgg,
        progress=not args.no_progress)
    _run_training(settings, "auto")  # DVC keeps the run dir (persist): a killed run resumes


# --- inpaint, blend, evaluate, table -------------------------------------------------------


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _inpaint(settings) -> None:
    _api()
    from inpaintflow.flows.inpaint import inpaint_flow

    inpaint_flow(settings=settings)


def cmd_inpaint_run(args) -> None:
    from inpaintflow.tasks.inpaint.batch import InpaintSettings

    _inpaint(InpaintSettings(
        method=args.method, data_dir=Path(args.data), masks_dir=Path(args.masks), out_dir=Path(args.out),
        checkpoint=Path(args.checkpoint), label=args.label or "", limit=args.limit, batch_size=args.batch_size,
        seed=args.seed, steps=args.steps, refine_steps=args.refine_steps, pattern=args.pattern,
        blend_operator=args.operator, baselines=tuple(args.baseline or ()), device=_device(args.device)))


def experiment_settings(name: str, out: Path, params_path: Path, device: str = "cpu"):
    """The InpaintSettings of params.yaml inpaint.NAME under the active profile."""
    from inpaintflow.tasks.pipeline.checked_params import load_entry, load_step
    from inpaintflow.tasks.inpaint.batch import InpaintSettings

    entry = load_entry("inpaint", name, params_path)
    p = load_step("inpaint", name, params_path)
    masks = load_step("masks", entry.masks, params_path)
    return InpaintSettings(
        method=p.method, data_dir=Path("data/datasets") / entry.data, masks_dir=Path("data/masks") / entry.masks,
        out_dir=Path(out), checkpoint=Path("runs") / entry.run / "checkpoint.pt", label=entry.label,
        limit=p.limit, batch_size=p.batch_size, seed=p.seed, steps=p.steps, refine_steps=p.refine_steps,
        loss_weights=dict(p.loss_weights) if p.loss_weights else None, mu=p.mu, pattern=masks.family,
        blend_operator=p.blend_operator, baselines=tuple(entry.baselines), device=device)


def cmd_inpaint_stage(args) -> None:
    _inpaint(experiment_settings(args.name, Path(args.out), Path(args.params), _device(args.device)))


def _need_dirs(args, command: str, flags: tuple[str, ...]) -> None:
    """Without --experiment, ``command`` needs each of ``flags``, and each must be a folder."""
    missing = [f"--{f}" for f in flags if not getattr(args, f)]
    if missing:
        raise ValueError(f"{command} needs {', '.join(missing)} (or --experiment DIR)")
    for flag in flags:
        if not Path(getattr(args, flag)).is_dir():
            raise FileNotFoundError(f"--{flag} {getattr(args, flag)}: not a directory")


def cmd_blend(args) -> None:
    if args.experiment:
        if not (Path(args.experiment) / "inpaint.json").is_file():
            raise FileNotFoundError(f"--experiment {args.experiment}: no inpaint.json (an unfinished or "
                                    f"missing inpaint run; dvc repro inpaint@NAME)")
        _api()
        from inpaintflow.flows.blend import blend_experiment_flow

        blend_experiment_flow(experiment=Path(args.experiment), out=Path(args.out))
        return
    _need_dirs(args, "blend", ("generated", "damaged", "masks"))
    _api()
    from inpaintflow.flows.blend import blend_flow

    blend_flow(generated=Path(args.generated), damaged=Path(args.damaged), masks=Path(args.masks),
               out=Path(args.out), operator=args.operator)


def cmd_evaluate(args) -> None:
    if args.experiment:
        from inpaintflow.params import load_group

        p = load_group("evaluate", Path(args.params))
        _api()
        from inpaintflow.flows.evaluate import evaluate_experiment_flow
        from inpaintflow.runtime import with_task_runner

        with_task_runner(evaluate_experiment_flow)(
            experiment=Path(args.experiment), out=Path(args.out), metrics=Path(args.metrics) if args.metrics else None,
            batch_size=p.batch_size, inception_weights=args.inception_weights or p.inception_weights,
            device=_device(args.device), blend=Path(args.blend) if args.blend else None)
        return
    _need_dirs(args, "evaluate", ("pred", "gt", "masks"))
    _api()
    from inpaintflow.flows.evaluate import evaluate_flow
    from inpaintflow.runtime import with_task_runner

    with_task_runner(evaluate_flow)(pred=Path(args.pred), gt=Path(args.gt), masks=Path(args.masks), out=Path(args.out),
                                    batch_size=args.batch_size, fid=args.fid, inception_weights=args.inception_weights,
                                    device=_device(args.device))


def cmd_table(args) -> None:
    from inpaintflow.tasks.tables.render import check_paper

    check_paper(args.paper)
    _api()
    from inpaintflow.flows.tables import table_flow

    table_flow(paper=args.paper, out=Path(args.out or f"results/{args.paper}"), params_path=Path(args.params),
               summary=Path(args.summary) if args.summary else None)


def cmd_audit(args) -> None:
    from inpaintflow.tasks.tables.audit import audit, render_report

    report = audit(Path(args.path), Path(args.params) if args.params else None, skip_status=args.skip_status)
    print(render_report(report), end="")
    if not report.passed:
        sys.exit(1)


def cmd_pipeline(args) -> None:
    from inpaintflow.runtime import configure_environment, project_root
    from inpaintflow.tasks.pipeline.stages import paper_stages

    root = project_root()
    stages = paper_stages(args.paper, root / "params.yaml", root / "dvc.yaml")  # a bad paper fails here
    if args.dry_run:
        print(f"paper {args.paper}: {len(stages)} stages, each `dvc repro --single-item STAGE` in {root}:")
        for i, stage in enumerate(stages, 1):
            print(f"{i:4d}  {stage}")
        return
    configure_environment(root)
    _api()  # one server for the flow and every stage's process
    from inpaintflow.flows.pipeline import paper_pipeline

    paper_pipeline(paper=args.paper, repo=root)


# --- server, params, demo --------------------------------------------------------------------


def cmd_server(args) -> None:
    from inpaintflow import runtime

    if args.action == "start":
        info = runtime.start_server(port=args.port)
        print(f"Prefect server: {info.url.removesuffix('/api')}  (API {info.url}, pid {info.pid}, log {info.log})")
    elif args.action == "stop":
        print("stopped" if runtime.stop_server() else "no server was running")
    else:
        info = runtime.running_server()
        print(f"running: {info.url} (pid {info.pid})" if info else "not running")
        if not info:
            sys.exit(1)


def cmd_schedule(args) -> None:
    """The nightly retraining deployment (flows/nightly.py): its next runs, or serve it."""
    import datetime as dt

    from inpaintflow.params import load_group

    params = Path(args.params)
    if args.action == "serve":
        from inpaintflow.runtime import configure_environment, project_root

        root = project_root(params.resolve().parent)
        configure_environment(root)
        # before anything imports prefect (the params' cron check does): Prefect reads its API
        # once, and the runs and every DVC stage they start must share this server
        _api()
    settings = load_group("nightly", params)
    if args.action == "show":  # Prefect's own schedule arithmetic; no server
        from inpaintflow.flows.nightly import DEPLOYMENT, next_runs

        try:
            after = dt.datetime.fromisoformat(args.after) if args.after else None
        except ValueError:
            raise ValueError(f"--after {args.after!r}: expected an ISO time such as 2026-01-01T00:00:00Z") from None
        if after is not None and after.tzinfo is None:
            after = after.replace(tzinfo=dt.timezone.utc)
        print(f'deployment {DEPLOYMENT}: cron "{settings.cron}", timezone {settings.timezone} ({params} nightly)')
        print(f"papers: {', '.join(settings.papers)}; branch {settings.branch_prefix}YYYY-MM-DD; "
              f"dvc push: {'on' if settings.push else 'off'}")
        runs = next_runs(settings.cron, settings.timezone, args.count, after)
        print(f"next {len(runs)} runs:")
        for when in runs:
            utc = when.astimezone(dt.timezone.utc)
            print(f"  {when:%Y-%m-%d %H:%M} {settings.timezone}"
                  + ("" if settings.timezone == "UTC" else f"  ({utc:%Y-%m-%d %H:%M} UTC)"))
        return
    from prefect import serve

    from inpaintflow.flows.nightly import build_deployment

    serve(build_deployment(params.resolve(), root))


def cmd_params_check(args) -> None:
    from inpaintflow.tasks.pipeline.checked_params import validate_file

    names = validate_file(Path(args.params))
    for step, entries in names.items():
        print(f"{step}: {', '.join(entries)}")
    print(f"{args.params}: ok")


def cmd_demo(args) -> None:
    """The main job: the demo pipeline (embedded data, CPU, offline) via `dvc repro`."""
    from inpaintflow.runtime import configure_environment, project_root

    root = project_root()
    if not (root / "dvc.yaml").is_file():
        raise SystemExit(f"inpaintflow demo: no dvc.yaml in {root}; run it from the project checkout")
    configure_environment(root)
    _api()  # one server for every stage's process
    # the stages call `inpaintflow`: put this interpreter's scripts first, venv activated or not
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [sys.executable, "-m", "dvc", "repro", *args.targets]
    print("+ dvc repro", *args.targets, flush=True)
    result = subprocess.run(cmd, cwd=root, env=env)
    if result.returncode:
        sys.exit(result.returncode)
    print("\nDemo outputs: data/datasets/, data/masks/ (images and masks with manifests), runs/<model>/"
          " (checkpoints, previews), runs/inpaint/<paper>/ (inpainted test splits), runs/blend/<paper>/"
          " (Poisson-blended latent results), runs/scores/<paper>/ (per-image scores),"
          "\nresults/<paper>/ (each paper's tables beside its reported numbers: README.md, CSV, LaTeX, grids,"
          " provenance.json).\n`dvc status` is now clean; `dvc metrics show` lists the scores;"
          " `inpaintflow audit results/<paper>` re-derives a table; `inpaintflow server status`"
          " shows the Prefect UI address.")


def _stage_parser(group, step: str, func) -> argparse.ArgumentParser:
    """``inpaintflow STEP stage NAME --out DIR``: the DVC stage of params.yaml STEP.NAME."""
    p = group.add_parser("stage", help=f"DVC stage: build params.yaml {step}.NAME")
    p.add_argument("name")
    p.add_argument("--out", required=True)
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inpaintflow", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="group", required=True)

    data = sub.add_parser("data", help="datasets: download, resize, split, manifest").add_subparsers(dest="cmd", required=True)
    p = data.add_parser("prepare", help="prepare one dataset into DIR")
    p.add_argument("dataset")
    p.add_argument("--source", help="local folder/archive, or http(s) URL of an archive")
    p.add_argument("--sha256", help="expected sha256 of a URL source")
    p.add_argument("--count", type=_count, help="images per split: N, or train=N,test=M")
    p.add_argument("--split", help="named split rule of the dataset (see `data list`)")
    p.add_argument("--seed", type=int, default=0, help="generator seed (synthetic-faces)")
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_data_prepare)
    _stage_parser(data, "data", cmd_data_stage)
    data.add_parser("list", help="registered datasets").set_defaults(func=cmd_data_list)

    masks = sub.add_parser("masks", help="mask generators and importers").add_subparsers(dest="cmd", required=True)
    p = masks.add_parser("make", help="generate a fixed mask set")
    p.add_argument("family")
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--count", type=int, required=True, help="masks per ratio bin")
    p.add_argument("--ratio", action="append", help="hole-ratio bin LO-HI (repeatable)")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_masks_make)
    p = masks.add_parser("import", help="import Quick Draw or NVIDIA masks")
    p.add_argument("family", choices=["quickdraw", "nvidia"])
    p.add_argument("--source", required=True)
    p.add_argument("--sha256")
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--ratio", action="append", help="keep masks in these bins (repeatable)")
    p.add_argument("--count", type=int, help="at most this many per bin")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_masks_import)
    _stage_parser(masks, "masks", cmd_masks_stage)
    masks.add_parser("list", help="mask families").set_defaults(func=cmd_masks_list)

    train = sub.add_parser("train", help="train a paper's model").add_subparsers(dest="cmd", required=True)
    from inpaintflow.models import RECIPES

    for model in RECIPES:
        p = train.add_parser(model, help=f"train {model}")
        p.set_defaults(func=cmd_train, model=model)
        p.add_argument("--data", required=True, help="prepared dataset folder (manifest.csv)")
        p.add_argument("--steps", type=int, required=True)
        p.add_argument("--batch-size", type=int, required=True)
        p.add_argument("--size", type=int, required=True)
        p.add_argument("--out", required=True, help="run folder: checkpoint.pt, live/, previews/")
        p.add_argument("--resume", action="store_true", help="continue OUT/checkpoint.pt")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--checkpoint-every", type=int, default=500)
        p.add_argument("--preview-every", type=int, default=500)
        p.add_argument("--log-every", type=int, default=10)
        p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override the paper's Config")
        p.add_argument("--tiny", action="store_true", help="start from the paper's tiny Config (CPU)")
        p.add_argument("--vgg-weights", help="VGG-19 weights: torchvision .pth, Keras .h5 or .npy folder")
        p.add_argument("--allow-random-vgg", action="store_true",
                       help="random VGG-19 when no weights are found (tables then say so)")
        p.add_argument("--compile", action="store_true", help="torch.compile the nets (CUDA)")
        p.add_argument("--no-progress", action="store_true")
    p = train.add_parser("stage", help="DVC stage: train params.yaml train.NAME")
    p.add_argument("name")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--vgg-weights")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train_stage)

    inpaint = sub.add_parser("inpaint", help="batch inpainting of a test split").add_subparsers(dest="cmd", required=True)
    p = inpaint.add_parser("run", help="inpaint a prepared test split with a fixed mask set")
    p.add_argument("--method", required=True, choices=["feed-forward", "yeh", "yeh-refine", "vitoria"])
    p.add_argument("--checkpoint", required=True, help="runs/<name>/checkpoint.pt")
    p.add_argument("--data", required=True, help="prepared dataset folder (manifest.csv, test split)")
    p.add_argument("--masks", required=True, help="mask set folder (manifest.csv)")
    p.add_argument("--out", required=True)
    p.add_argument("--label", help="row label in the tables")
    p.add_argument("--limit", type=int, help="test images per hole-ratio bin")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, help="latent steps (default: the paper's)")
    p.add_argument("--refine-steps", type=int, help="paper 001's refinement steps (default: the paper's)")
    p.add_argument("--pattern", help="paper 001's hole pattern (sets mu), e.g. center-square")
    p.add_argument("--operator", default="five-point", choices=["five-point", "paper001-3x3"])
    p.add_argument("--baseline", action="append", choices=["telea", "navier-stokes", "mean-fill"])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.set_defaults(func=cmd_inpaint_run)
    p = inpaint.add_parser("stage", help="DVC stage: run params.yaml inpaint.NAME")
    p.add_argument("name")
    p.add_argument("--out", required=True)
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_inpaint_stage)

    p = sub.add_parser("blend", help="Poisson-blend generated images into damaged ones (paired by name)")
    p.add_argument("--generated")
    p.add_argument("--damaged", help="the known pixels come from these images")
    p.add_argument("--masks", help="mask PNGs, 255 = hole")
    p.add_argument("--experiment", help="an inpaint run folder: blend the results it marks for blending "
                                        "(the DVC stage; operator from the run's settings)")
    p.add_argument("--out", required=True)
    p.add_argument("--operator", default="five-point", choices=["five-point", "paper001-3x3"])
    p.set_defaults(func=cmd_blend)

    p = sub.add_parser("evaluate", help="score results against ground truth (paired by name)")
    p.add_argument("--pred")
    p.add_argument("--gt")
    p.add_argument("--masks", help="mask PNGs, 255 = hole (bins from its manifest.csv, if any)")
    p.add_argument("--out", required=True, help="FILE.csv (or, with --experiment, a folder)")
    p.add_argument("--experiment", help="an inpaint run folder: score every result it lists")
    p.add_argument("--metrics", help="with --experiment: the summary JSON (default OUT/metrics.json)")
    p.add_argument("--blend", help="with --experiment: the blend step's folder (latent methods are scored blended)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--fid", action="store_true", help="also FID (n/a with a reason when no weights)")
    p.add_argument("--inception-weights", help="pt_inception-2015-12-05-6726825d.pth")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("table", help="a paper's result tables beside the reported numbers")
    p.add_argument("paper", help="rmnet, refinement, iwgan, regionwise or gla")
    p.add_argument("--out", help="folder (default results/PAPER)")
    p.add_argument("--summary", help="summary JSON for dvc metrics (default OUT/summary.json)")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(func=cmd_table)

    p = sub.add_parser("audit", help="check a paper's tables: provenance, dvc status, byte-identical re-render")
    p.add_argument("path", help="results/PAPER or a file in it, e.g. results/rmnet/table-1.csv")
    p.add_argument("--params", help="parameters file (default: params.yaml of the project holding PATH)")
    p.add_argument("--skip-status", action="store_true", help="skip `dvc status` (e.g. while a repro runs)")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("pipeline", help="a paper's DVC stages, in order, as one cached Prefect flow")
    p.add_argument("paper", help="rmnet, refinement, iwgan, regionwise or gla (params.yaml tables)")
    p.add_argument("--dry-run", action="store_true", help="print the stages; run nothing")
    p.set_defaults(func=cmd_pipeline)

    p = sub.add_parser("server", help="the project's local Prefect server")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--port", type=int)
    p.set_defaults(func=cmd_server)
    p = sub.add_parser("params", help="validate params.yaml")
    p.add_argument("action", choices=["check"])
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(func=cmd_params_check)
    p = sub.add_parser("schedule", help="the nightly retraining deployment (params.yaml nightly)")
    p.add_argument("action", choices=["show", "serve"], help="show: the next runs; serve: run them (blocks)")
    p.add_argument("--count", type=int, default=5, help="show: how many runs")
    p.add_argument("--after", help="show: runs at or after this ISO time (default now; no zone = UTC)")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(func=cmd_schedule)
    p = sub.add_parser("demo", help="run the demo pipeline (dvc repro)")
    p.add_argument("targets", nargs="*", help="dvc.yaml stages (default: all)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> None:
    from inpaintflow.runtime import configure_environment

    configure_environment()
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        raise SystemExit(130)
    except Exception as exc:  # a user-facing error: one clear line, no traceback
        if os.environ.get("INPAINTFLOW_DEBUG"):
            raise
        from inpaintflow.params import ParamsError

        from inpaintflow.tasks.train.engine import TrainingError

        known = (ParamsError, ValueError, FileNotFoundError, TrainingError)
        kind = "" if isinstance(exc, known) else f"{type(exc).__name__}: "
        raise SystemExit(f"inpaintflow: error: {kind}{exc}") from None


if __name__ == "__main__":
    main()

"""The training engine: one loop for all five papers, on CPU or CUDA, one process or DDP.

The engine owns everything that is not a paper: data order, training masks, device and
precision, checkpoints, resume, logging. A paper supplies a :class:`models.common.Recipe`
(networks, optimisers, one training step). Layout of a run directory::

    OUT/checkpoint.pt        latest state (atomic): nets, optimisers, config, step, RNG states
    OUT/live/                dvclive: metrics.json, plots/metrics/*.tsv (``dvc plots show``):
                             train/<loss> every log_every steps; val/<figure> (model) beside
                             val/<baseline>/<figure> every val_every steps (tasks/train/validation.py)
    OUT/previews/step-N.png  image grids: masked | output | ground truth (samples for GANs)
    OUT/train.json           summary: settings, parameter counts, VGG source, steps, final losses
    OUT/timing.json          this run's wall-clock figures (images/s, the step it resumed from):
                             not a DVC output and git-ignored, so train.json stays a pure
                             function of the inputs and a re-derived run gives the same bytes

Reproducibility: the batch at step ``s`` is a pure function of (seed, s): image indices come
from a per-epoch permutation seeded by (seed, epoch), so resuming needs no data-loader state.
Training masks come from one seeded stream whose state is checkpointed, as are the torch RNG
states. On CPU a resumed run ends with the same weights as an uninterrupted one.

DDP: launched by torchrun (RANK/WORLD_SIZE set). Every rank draws the global batch's indices
and masks and keeps its slice, so N processes see exactly the batch one process would; DDP
averages the gradients, which equals the single-process gradient of the mean loss (models
without batch-coupled layers or per-sample noise; see tests/test_train.py).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from inpaintflow.conventions import (model_to_uint8, read_image, uint8_to_model, write_bytes_atomic, write_image,
                                     write_text_atomic)
from inpaintflow.models import RECIPES
from inpaintflow.models.common import Recipe, StepContext, count_parameters

MODELS = RECIPES


class TrainingError(RuntimeError):
    """Training cannot go on (bad input, non-finite loss); the message says why and what is kept."""


@dataclass(frozen=True)
class TrainSettings:
    """Everything a run depends on; recorded in every checkpoint and in train.json."""

    model: str
    data: str  # prepared dataset folder (manifest.csv, train/*.png)
    out: str
    steps: int
    batch_size: int
    size: int
    seed: int = 0
    checkpoint_every: int = 500
    preview_every: int = 500
    log_every: int = 10
    val_every: int = 0  # score the fixed validation batch every N steps (0: never)
    val_images: int = 16  # its size: the val split, else the last N train images, held out
    val_latent_steps: int = 100  # unconditional GANs: latent-optimisation steps per validation fill
    model_config: dict[str, Any] = field(default_factory=dict)  # overrides of the paper's Config
    tiny: bool = False  # start from the paper file's Config.tiny() instead of its paper values
    vgg_weights: str | None = None
    allow_random_vgg: bool = False  # only by explicit choice (demo offline); tables say so
    compile: bool = False  # torch.compile on CUDA
    progress: bool = True

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model: unknown {self.model!r}; one of {', '.join(MODELS)}")
        for name in ("steps", "batch_size", "size", "checkpoint_every", "preview_every", "log_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be positive, got {getattr(self, name)}")
        for name in ("val_every", "val_images", "val_latent_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")


# ---------------------------------------------------------------------------------------------
# device, precision, distribution


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    rank: int
    world_size: int

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        """bf16 autocast on CUDA; nothing on CPU (fp32 there is both faster and exact)."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


def setup_runtime() -> Runtime:
    """CUDA when available, else CPU; DDP when launched by torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
        torch.use_deterministic_algorithms(True)
    if world_size > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Runtime(device=device, rank=rank, world_size=world_size)


# ---------------------------------------------------------------------------------------------
# data: a pure function of (seed, step)


def read_splits(data_dir: Path) -> list[tuple[str, str]]:
    """(file, split) of every row of a prepared dataset's manifest, in manifest order."""
    import csv

    manifest = Path(data_dir) / "manifest.csv"
    if not manifest.is_file():
        raise TrainingError(f"{manifest}: no manifest; prepare the dataset first (inpaintflow data prepare)")
    with open(manifest, newline="") as f:
        return [(row["file"], row["split"]) for row in csv.DictReader(f)]


def load_images(data_dir: Path, files: list[str], size: int) -> torch.Tensor:
    """(N, H, W, 3) uint8 of a prepared dataset's files, resized to ``size`` if needed."""
    import cv2

    images = []
    for rel in files:
        image = read_image(Path(data_dir) / rel)
        if image.shape[:2] != (size, size):
            image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        images.append(image)
    return torch.from_numpy(np.stack(images))


def load_training_images(data_dir: Path, size: int, split: str = "train") -> torch.Tensor:
    """(N, H, W, 3) uint8 of a prepared dataset's split, resized to ``size`` if needed."""
    files = [f for f, s in read_splits(data_dir) if s == split]
    if not files:
        raise TrainingError(f"{Path(data_dir) / 'manifest.csv'}: no {split!r} images")
    return load_images(data_dir, files, size)


def load_train_and_val(settings: TrainSettings, recipe: Recipe, cfg) -> tuple[torch.Tensor, Any]:
    """The training images and the fixed validation batch (None when ``val_every`` is 0)."""
    from inpaintflow.tasks.train.validation import (LATENT_VALIDATION, ValidationBatch, split_train_val,
                                                    validation_masks)

    rows = read_splits(Path(settings.data))
    # a feed-forward model is scored on its inference path, an unconditional GAN by its paper's
    # latent optimisation
    latent_model = settings.model if settings.model in LATENT_VALIDATION else None
    can_inpaint = bool(recipe.mask_families) or latent_model is not None
    count = settings.val_images if settings.val_every and can_inpaint else 0
    try:
        train_pos, val_pos, source = split_train_val([s for _, s in rows], count)
    except ValueError as exc:
        raise TrainingError(f"{Path(settings.data) / 'manifest.csv'}: {exc}") from None
    if not len(train_pos):
        raise TrainingError(f"{Path(settings.data) / 'manifest.csv'}: no 'train' images")
    train_u8 = load_images(Path(settings.data), [rows[i][0] for i in train_pos], settings.size)
    if not len(val_pos):
        return train_u8, None
    val_u8 = load_images(Path(settings.data), [rows[i][0] for i in val_pos], settings.size).numpy()
    holes = validation_masks(recipe.mask_families, settings.size, len(val_u8), settings.seed,
                             getattr(cfg, "train_mask_bin", None))
    return train_u8, ValidationBatch.build(val_u8, holes, source, latent_model=latent_model,
                                           latent_steps=settings.val_latent_steps)


def batch_indices(seed: int, step: int, n_images: int, batch_size: int) -> np.ndarray:
    """Indices of the global batch at ``step``: sample ``p = step * B + i`` is position
    ``p mod N`` of the permutation of epoch ``p // N``, seeded by (seed, epoch)."""
    positions = step * batch_size + np.arange(batch_size)
    epochs, offsets = np.divmod(positions, n_images)
    out = np.empty(batch_size, dtype=np.int64)
    for epoch in np.unique(epochs):
        perm = np.random.default_rng([seed, int(epoch)]).permutation(n_images)
        sel = epochs == epoch
        out[sel] = perm[offsets[sel]]
    return out


def local_slice(batch: torch.Tensor, rt: Runtime) -> torch.Tensor:
    """This rank's share of a global batch (contiguous, equal sizes)."""
    if not rt.distributed:
        return batch
    per_rank = batch.shape[0] // rt.world_size
    return batch[rt.rank * per_rank:(rt.rank + 1) * per_rank]


def to_model_images(uint8_batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [-1, 1] on ``device`` (the model boundary)."""
    x = uint8_to_model(uint8_batch.to(device=device, dtype=torch.float32))
    return x.permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------------------------------------
# recipes


def build_config(model: str, tiny: bool, overrides: dict[str, Any], size: int | None = None):
    """The paper's Config (or its tiny one) with overrides; ``image_size`` follows the run's
    size unless overridden, since some nets (critics ending in a linear layer) depend on it."""
    module = importlib.import_module(MODELS[model][0])
    base = module.Config.tiny() if tiny else module.Config()
    known = {f.name for f in fields(base)}
    if size is not None and "image_size" in known and "image_size" not in overrides:
        overrides = {**overrides, "image_size": size}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"model_config: {model} has no setting {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(known))}")
    values = asdict(base)
    for key, value in overrides.items():  # YAML gives lists where a Config holds tuples
        values[key] = tuple(value) if isinstance(values[key], tuple) and isinstance(value, list) else value
    return type(base)(**values)


def build_recipe(settings: TrainSettings, cfg) -> tuple[Recipe, str]:
    """The paper's recipe, with a frozen VGG-19 when its losses need one."""
    module_name, class_name, vgg_layers = MODELS[settings.model]
    recipe_cls = getattr(importlib.import_module(module_name), class_name)
    vgg, vgg_source = None, "not used"
    if vgg_layers:
        from inpaintflow.models.vgg import load_vgg19, resolve_vgg_weights

        path = resolve_vgg_weights(settings.vgg_weights)
        vgg = load_vgg19(path, layers=vgg_layers, allow_random=settings.allow_random_vgg)
        vgg_source = vgg.weights_source
    return recipe_cls(cfg, vgg=vgg), vgg_source


def prepare_nets(recipe: Recipe, rt: Runtime, compile_nets: bool) -> dict[str, nn.Module]:
    """Move nets to the device; on CUDA use channels_last (and compile if asked); wrap in DDP.
    Returns the unwrapped modules, which are what checkpoints store."""
    raw = {}
    for name, net in recipe.nets.items():
        net = net.to(rt.device)
        if rt.device.type == "cuda":
            net = net.to(memory_format=torch.channels_last)
        raw[name] = net
        wrapped: nn.Module = net
        if rt.distributed and any(p.requires_grad for p in net.parameters()):
            wrapped = nn.parallel.DistributedDataParallel(
                net, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
        if compile_nets and rt.device.type == "cuda":
            wrapped = torch.compile(wrapped)
        recipe.nets[name] = wrapped
    for opt in recipe.optimizers.values():  # optimiser state follows the params' device
        for state in opt.state.values():
            for k, v in state.items():
                if torch.is_tensor(v):
                    state[k] = v.to(rt.device)
    return raw


# ---------------------------------------------------------------------------------------------
# checkpoints


def save_checkpoint(path: Path, *, raw_nets: dict[str, nn.Module], recipe: Recipe, cfg,
                    settings: TrainSettings, step: int, mask_rng: np.random.Generator | None,
                    validation: list[dict[str, Any]] | None = None) -> Path:
    """Everything needed to continue exactly, or to rebuild the model for inference."""
    state = {
        "format": "inpaintflow-checkpoint-1",
        "model": settings.model,
        "model_config": json.loads(json.dumps(asdict(cfg))),
        "settings": json.loads(json.dumps(asdict(settings))),
        "step": step,
        "code_sha256": code_fingerprint(settings.model),
        "nets": {k: v.state_dict() for k, v in raw_nets.items()},
        "optimizers": {k: v.state_dict() for k, v in recipe.optimizers.items()},
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "mask_rng": json.dumps(mask_rng.bit_generator.state) if mask_rng is not None else "",
        "validation": list(validation or []),
    }
    # via a buffer: torch.save(obj, path) names the archive's folder after the (random) temp
    # file, which would make identical checkpoints differ in bytes
    buffer = io.BytesIO()
    torch.save(_interned(state), buffer)
    return write_bytes_atomic(path, buffer.getvalue())


def _interned(obj: Any) -> Any:
    """The same structure with every string interned. Pickle writes a string it has already
    written as a back-reference only when it is the same object: a resumed run's optimiser
    state holds keys loaded from the file (new objects), an uninterrupted run's the ones the
    code made, so without this the two checkpoints hold the same values in different bytes."""
    if isinstance(obj, str):
        return sys.intern(obj)
    if isinstance(obj, dict):
        return {_interned(k): _interned(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_interned(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_interned(v) for v in obj)
    return obj


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainingError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None


def code_fingerprint(model: str) -> str:
    """sha256 of the code a run's weights depend on: the paper's file, the shared model code,
    the engine and the mask generators."""
    import hashlib
    import inspect

    import inpaintflow.models.common
    import inpaintflow.tasks.masks.generators

    h = hashlib.sha256()
    for module in (importlib.import_module(MODELS[model][0]), inpaintflow.models.common,
                   inpaintflow.tasks.masks.generators, importlib.import_module(__name__)):
        h.update(inspect.getsource(module).encode())
    return h.hexdigest()


def _same_run(ckpt: dict[str, Any], settings: TrainSettings, cfg, *, check_code: bool) -> bool:
    """A checkpoint continues this run when everything but the step budget and logging matches
    (and, for ``resume="auto"``, the code that trained it)."""
    ignore = {"steps", "checkpoint_every", "preview_every", "log_every", "val_every", "progress", "out",
              "compile"}
    mine = {k: v for k, v in json.loads(json.dumps(asdict(settings))).items() if k not in ignore}
    theirs = {k: v for k, v in ckpt["settings"].items() if k not in ignore}
    same_code = not check_code or ckpt.get("code_sha256") == code_fingerprint(settings.model)
    return ckpt["model"] == settings.model and theirs == mine and same_code and \
        ckpt["model_config"] == json.loads(json.dumps(asdict(cfg)))


def restore(ckpt: dict[str, Any], raw_nets: dict[str, nn.Module], recipe: Recipe,
            mask_rng: np.random.Generator | None) -> int:
    for name, net in raw_nets.items():
        net.load_state_dict(ckpt["nets"][name])
    for name, opt in recipe.optimizers.items():
        opt.load_state_dict(ckpt["optimizers"][name])
    torch.set_rng_state(ckpt["torch_rng"])
    if torch.cuda.is_available() and ckpt["cuda_rng"]:
        torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
    if mask_rng is not None and ckpt["mask_rng"]:
        mask_rng.bit_generator.state = json.loads(ckpt["mask_rng"])
    return int(ckpt["step"])


def rebuild_from_checkpoint(path: Path, device: str | torch.device = "cpu") -> tuple[Recipe, Any, dict[str, Any]]:
    """The recipe (nets in eval mode, trained weights), its Config and the checkpoint's
    settings, from the checkpoint file alone: what batch inpainting needs."""
    ckpt = load_checkpoint(Path(path))
    model = ckpt["model"]
    if model not in MODELS:
        raise TrainingError(f"{path}: unknown model {model!r}")
    module = importlib.import_module(MODELS[model][0])
    defaults = asdict(module.Config())
    values = {k: tuple(v) if isinstance(defaults.get(k), tuple) and isinstance(v, list) else v
              for k, v in ckpt["model_config"].items()}
    cfg = _tuples_deep(module.Config, values)
    settings = TrainSettings(**{**ckpt["settings"], "allow_random_vgg": True, "vgg_weights": None,
                                "progress": False})
    recipe, _ = build_recipe(settings, cfg)  # VGG only for losses; its weights are not used here
    for name, net in recipe.nets.items():
        if name in ckpt["nets"]:
            net.load_state_dict(ckpt["nets"][name])
        recipe.nets[name] = net.to(device).eval()
    return recipe, cfg, ckpt["settings"]


def _tuples_deep(config_cls, values: dict[str, Any]):
    """JSON turned the Config's tuples (and tuples of layer rows) into lists: turn them back."""
    def fix(v):
        return tuple(fix(x) for x in v) if isinstance(v, list) else v

    try:
        return config_cls(**{k: fix(v) for k, v in values.items()})
    except TypeError as exc:
        raise TrainingError(f"checkpoint config does not fit {config_cls.__module__}.Config: {exc}") from None


# ---------------------------------------------------------------------------------------------
# previews


def preview_grid(images: torch.Tensor, masks: torch.Tensor | None, output: torch.Tensor,
                 max_rows: int = 4) -> np.ndarray:
    """Rows of (masked | output | ground truth), or a row of samples for unconditional GANs;
    RGB uint8 (H, W, 3)."""
    def to_uint8(x: torch.Tensor) -> np.ndarray:  # (B, 3, H, W) [-1, 1] -> (B, H, W, 3) uint8
        return model_to_uint8(x.detach().float().cpu().permute(0, 2, 3, 1).numpy())

    if masks is None:
        samples = to_uint8(output[:max_rows * 4])
        return np.concatenate(list(samples), axis=1)
    n = min(max_rows, images.shape[0])
    masked = images[:n] * (1 - masks[:n]) + masks[:n]  # holes shown white
    cols = [to_uint8(masked), to_uint8(output[:n]), to_uint8(images[:n])]
    rows = [np.concatenate([c[i] for c in cols], axis=1) for i in range(n)]
    return np.concatenate(rows, axis=0)


# ---------------------------------------------------------------------------------------------
# the loop


@dataclass
class TrainResult:
    checkpoint: Path
    steps: int
    images_per_s: float
    losses: dict[str, float]


def _training_masks(recipe: Recipe, cfg, size: int, seed: int) -> tuple[np.random.Generator | None, Iterator | None]:
    if not recipe.mask_families:
        return None, None
    from inpaintflow.tasks.masks.generators import training_masks

    rng = np.random.default_rng([seed, 7])  # one global stream; every rank draws the same masks
    return rng, training_masks(list(recipe.mask_families), size, rng, getattr(cfg, "train_mask_bin", None))


def train(settings: TrainSettings, *, resume: bool | str = False, rt: Runtime | None = None) -> TrainResult:
    """Train ``settings.model`` to ``settings.steps`` steps.

    ``resume``: False starts a new run (an existing checkpoint is an error); True continues
    OUT/checkpoint.pt (it must match model and config); "auto" (the DVC stage) continues a
    matching checkpoint and otherwise starts over, so changed params retrain from scratch and
    a killed run picks up where it stopped.
    """
    if resume not in (True, False, "auto"):
        raise ValueError(f"resume: must be True, False or 'auto', got {resume!r}")
    rt = rt or setup_runtime()
    out = Path(settings.out)
    ckpt_path = out / "checkpoint.pt"
    if settings.batch_size % rt.world_size:
        raise ValueError(f"batch_size: {settings.batch_size} is not divisible by {rt.world_size} processes")

    torch.manual_seed(settings.seed)
    cfg = build_config(settings.model, settings.tiny, settings.model_config, settings.size)
    recipe, vgg_source = build_recipe(settings, cfg)
    mask_rng, masks_stream = _training_masks(recipe, cfg, settings.size, settings.seed)
    raw_nets = prepare_nets(recipe, rt, settings.compile)

    start, history = 0, []  # history: every validation point so far, checkpointed with the weights
    if resume and ckpt_path.is_file():
        ckpt = load_checkpoint(ckpt_path)
        if _same_run(ckpt, settings, cfg, check_code=resume == "auto"):
            start = restore(ckpt, raw_nets, recipe, mask_rng)
            history = list(ckpt.get("validation", []))
        elif resume == "auto":
            print(f"{ckpt_path}: written for other settings or code; starting over")
        else:
            raise TrainingError(f"{ckpt_path}: written for {ckpt['model']} with other settings; "
                                f"use a new --out, or delete it to start over")
    elif ckpt_path.exists() and not resume:
        raise TrainingError(f"{ckpt_path} exists: pass --resume to continue it, or use a new --out")

    images_u8, val_batch = load_train_and_val(settings, recipe, cfg)
    live = _open_live(out, resume=start > 0) if rt.is_main else None
    progress = _progress(settings, start) if rt.is_main else None

    if val_batch is not None and start == 0:  # the curve starts at the untrained model
        history.append(_validate(val_batch, recipe, rt, live, 0))
    losses: dict[str, float] = {}
    t0, done = time.perf_counter(), 0
    for step in range(start, settings.steps):
        idx = batch_indices(settings.seed, step, images_u8.shape[0], settings.batch_size)
        images = local_slice(to_model_images(images_u8[idx], rt.device), rt)
        masks = None
        if masks_stream is not None:
            m = np.stack([next(masks_stream) for _ in range(settings.batch_size)])  # (B, H, W)
            masks = local_slice(torch.from_numpy(m).to(rt.device, torch.float32)[:, None], rt)
        if rt.device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)

        ctx = StepContext(step=step, autocast=rt.autocast, device=rt.device)
        step_losses = recipe.training_step(images, masks, ctx)
        losses = {k: float(v) for k, v in step_losses.items()}
        bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
        if bad:
            kept = f"the last good checkpoint is {ckpt_path}" if ckpt_path.exists() else "no checkpoint was written yet"
            raise TrainingError(f"step {step}: non-finite loss {bad}; training stopped, {kept}")
        done += 1
        finished = step + 1
        if val_batch is not None and (finished % settings.val_every == 0 or finished == settings.steps):
            # every rank runs it (a DDP module's forward is collective); the main one logs it
            history.append(_validate(val_batch, recipe, rt, live, finished))
        if rt.is_main:
            if finished % settings.log_every == 0 or finished == settings.steps:
                live.step = finished  # x axis = optimisation steps done, also after a resume
                for name, value in losses.items():
                    live.log_metric(f"train/{name}", value)
                live.make_summary()
            if finished % settings.preview_every == 0 or finished == settings.steps:
                grid = preview_grid(images, masks, recipe.preview(images, masks))
                write_image(out / "previews" / f"step-{finished:07d}.png", grid)
            if progress is not None:
                rate = done * settings.batch_size / max(time.perf_counter() - t0, 1e-9)
                progress.set_postfix({**{k: f"{v:.4g}" for k, v in losses.items()}, "img/s": f"{rate:.1f}"}, refresh=False)
                progress.update(1)
        if finished % settings.checkpoint_every == 0 or finished == settings.steps:
            if rt.is_main:
                save_checkpoint(ckpt_path, raw_nets=raw_nets, recipe=recipe, cfg=cfg, settings=settings,
                                step=finished, mask_rng=mask_rng, validation=history)
            if rt.distributed:
                torch.distributed.barrier()

    elapsed = time.perf_counter() - t0
    rate = done * settings.batch_size / elapsed if done else 0.0
    if progress is not None:
        progress.close()
    if rt.is_main:
        summary = {
            "model": settings.model, "settings": asdict(settings), "model_config": asdict(cfg),
            "steps": settings.steps,
            "device": str(rt.device), "world_size": rt.world_size, "vgg19": vgg_source,
            "parameters": {k: count_parameters(v) for k, v in raw_nets.items()},
            "final_losses": losses,
            "validation": _validation_summary(val_batch, history, settings),
        }
        write_text_atomic(out / "train.json", json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
        timing = {"images_per_s": round(rate, 3), "resumed_from": start, "steps_run": done,
                  "seconds": round(elapsed, 3)}
        write_text_atomic(out / "timing.json", json.dumps(timing, indent=2, sort_keys=True) + "\n")
        live.end()
    return TrainResult(checkpoint=ckpt_path, steps=settings.steps, images_per_s=rate, losses=losses)


def _validate(batch, recipe: Recipe, rt: Runtime, live, step: int) -> dict[str, Any]:
    """Score the validation batch and log it beside the baselines (constant lines)."""
    figures = batch.score(recipe, rt.device)
    if live is not None:
        live.step = step
        for name, value in figures.items():
            live.log_metric(f"val/{name}", value)
            for baseline, values in batch.baselines.items():
                live.log_metric(f"val/{baseline}/{name}", values[name])
        live.make_summary()
    return {"step": step, **{k: round(v, 6) for k, v in figures.items()}}


def _validation_summary(batch, history: list[dict[str, Any]], settings: TrainSettings) -> dict[str, Any] | None:
    """What train.json says of validation: the final and best figures, the baselines', and the
    first validated step at which the model beats each baseline on both figures."""
    if batch is None:
        return None
    from inpaintflow.tasks.train.validation import beats

    best = min(history, key=lambda r: r["hole_l1"]) if history else None
    passes = {name: next((r["step"] for r in history if beats(r, values)), None)
              for name, values in batch.baselines.items()}
    return {"source": batch.source, "images": int(len(batch.images_u8)), "every": settings.val_every,
            "baselines": {k: {m: round(v, 6) for m, v in vals.items()} for k, vals in batch.baselines.items()},
            "final": history[-1] if history else None, "best": best, "first_step_beating": passes}


def _open_live(out: Path, resume: bool):
    from dvclive import Live

    return Live(dir=str(out / "live"), resume=resume, save_dvc_exp=False, dvcyaml=None)


def _progress(settings: TrainSettings, start: int):
    if not settings.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=settings.steps, initial=start, desc=f"train {settings.model}", unit="step",
                dynamic_ncols=True, mininterval=1.0)

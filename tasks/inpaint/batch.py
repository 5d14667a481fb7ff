"""Batch inpainting of a test split with a fixed mask set (``inpaintflow inpaint``).

An *experiment* pairs a prepared dataset's test split with an evaluation mask set and runs one
method over every pair, streaming in batches (memory bounded by the batch, not the set):

    feed-forward   R-MNet (000), region-wise (003), MPGA/GLA (004): one forward pass
    yeh            paper 001's first pass: Yeh et al.'s latent optimisation
    yeh-refine     paper 001: first pass, then the consensus refinement pass from its blend
    vitoria        paper 002: alpha*L_c + beta*L_g + eta*L_p

The latent methods' Poisson blending is its own step (``inpaintflow blend --experiment``, DVC
stage ``blend``): this step writes the generator's raw images, which the blend step solves into
the damaged inputs. The refinement pass starts from the first pass's blend (paper 001, s3.4), so
``yeh-refine`` also blends internally, with the same function; the written results are raw.

Every experiment also runs the classical baselines (tasks/inpaint/baselines.py) on the same pairs when
asked, so each table gets their rows from the same images and masks.

Output layout (one directory per experiment, paired by file name, which is what
``inpaintflow evaluate`` and ``inpaintflow blend`` expect)::

    OUT/target/<name>.png     the ground truth (the dataset file's bytes)
    OUT/masks/<name>.png      the mask (255 = hole); masks/manifest.csv: file, bin, ratio, image, mask
    OUT/masked/<name>.png     the damaged input (holes white)
    OUT/output/<name>.png     the method's composite (known pixels = target bytes)
    OUT/generated/<name>.png  latent methods: G(z), the whole generated image (blend step input)
    OUT/refined-generated/<name>.png   paper 001: G(z) of the refinement pass (blend step input)
    OUT/baselines/<b>/<name>.png
    OUT/latent/batch-<k>.json latent methods: per batch, each image's final loss and terms, and the
                              per-step batch means of the loss, its terms and the hole L1
    OUT/inpaint.json          method, params, checkpoint sha256, pairs, results (written last);
                              latent methods: ``latent`` gathers the batch logs (per image, curves)

``<name>`` is ``<image id>-<mask file stem>``. Mask sets come in hole-ratio bins; within each
bin, test image ``i`` gets mask ``i mod M`` (M masks in the bin), for the first ``limit`` images.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from inpaintflow.conventions import (composite_uint8, damage, model_to_uint8, read_image, read_mask,
                                     uint8_to_model, write_bytes_atomic, write_csv_atomic, write_image,
                                     write_text_atomic)
from inpaintflow.tasks.pipeline.caching import sha256_file

FEED_FORWARD_MODELS = ("rmnet", "regionwise", "gla")
LATENT_MODELS = {"yeh": "dcgan", "yeh-refine": "dcgan", "vitoria": "wgan-gp"}
METHODS = ("feed-forward", *LATENT_MODELS)
VITORIA_WEIGHTS = {"alpha": "context_weight", "beta": "gradient_weight", "eta": "prior_weight"}  # Eq. (4), paper 002
MASK_MANIFEST_COLUMNS = ("file", "bin", "ratio", "image", "mask")


class InpaintError(ValueError):
    """Bad inputs to batch inpainting; the message names the file and the problem."""


@dataclass(frozen=True)
class Pair:
    name: str        # output file name, <image id>-<mask stem>.png
    image: Path      # ground-truth file
    mask: Path       # mask file (255 = hole)
    bin: str         # the mask's hole-ratio bin label
    ratio: str       # the mask's hole ratio, as the mask manifest prints it
    index: int       # position in the experiment (seeds per-image latents)


def _read_manifest(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise InpaintError(f"{path}: no manifest (build the artefact first: dvc repro, or the data/masks commands)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    missing = [c for c in required if rows and c not in rows[0]]
    if missing:
        raise InpaintError(f"{path}: manifest lacks columns {missing}")
    return rows


def plan_pairs(data_dir: Path, masks_dir: Path, limit: int | None = None, split: str = "test") -> list[Pair]:
    """The (image, mask) pairs of an experiment, bin by bin, in a fixed order."""
    data_dir, masks_dir = Path(data_dir), Path(masks_dir)
    images = [r for r in _read_manifest(data_dir / "manifest.csv", ("id", "split", "file")) if r["split"] == split]
    if not images:
        raise InpaintError(f"{data_dir / 'manifest.csv'}: no {split!r} images")
    by_bin: dict[str, list[dict[str, str]]] = {}
    for row in _read_manifest(masks_dir / "manifest.csv", ("file", "bin", "ratio")):
        by_bin.setdefault(row["bin"], []).append(row)
    if not by_bin:
        raise InpaintError(f"{masks_dir / 'manifest.csv'}: no masks")
    n = len(images) if limit is None else min(limit, len(images))
    pairs = []
    for bin_label, masks in by_bin.items():
        for i in range(n):
            mask = masks[i % len(masks)]
            image = images[i]
            pairs.append(Pair(name=f"{image['id']}-{Path(mask['file']).stem}.png", image=data_dir / image["file"],
                              mask=masks_dir / mask["file"], bin=bin_label, ratio=mask["ratio"], index=len(pairs)))
    return pairs


def write_inputs(pairs: Sequence[Pair], out_dir: Path) -> None:
    """target/, masks/ (+ manifest) and masked/ of an experiment; checks every pair first."""
    out_dir = Path(out_dir)
    sizes: dict[Path, tuple[int, int]] = {}
    for pair in pairs:
        image = read_image(pair.image)
        hole = read_mask(pair.mask)
        if image.shape[:2] != hole.shape:
            raise InpaintError(f"{pair.image}: image is {image.shape[1]}x{image.shape[0]} but mask "
                               f"{pair.mask} is {hole.shape[1]}x{hole.shape[0]}")
        sizes[pair.image] = image.shape[:2]
    if len(set(sizes.values())) > 1:
        raise InpaintError(f"{pairs[0].image.parent}: test images differ in size {sorted(set(sizes.values()))}")
    for pair in pairs:
        image_bytes = pair.image.read_bytes()
        write_bytes_atomic(out_dir / "target" / pair.name, image_bytes)
        write_bytes_atomic(out_dir / "masks" / pair.name, pair.mask.read_bytes())
        write_image(out_dir / "masked" / pair.name, damage(read_image(pair.image), read_mask(pair.mask)))
    write_csv_atomic(out_dir / "masks" / "manifest.csv", MASK_MANIFEST_COLUMNS,
                     [{"file": p.name, "bin": p.bin, "ratio": p.ratio, "image": p.image.name, "mask": p.mask.name}
                      for p in pairs])


def batches(pairs: Sequence[Pair], out_dir: Path, batch_size: int
            ) -> Iterator[tuple[list[Pair], np.ndarray, np.ndarray]]:
    """(pairs, targets (B, H, W, 3) uint8, holes (B, H, W) uint8 1 = hole), from the written inputs."""
    for start in range(0, len(pairs), batch_size):
        chunk = list(pairs[start:start + batch_size])
        targets = np.stack([read_image(Path(out_dir) / "target" / p.name) for p in chunk])
        holes = np.stack([read_mask(Path(out_dir) / "masks" / p.name) for p in chunk])
        yield chunk, targets, holes


# ---------------------------------------------------------------------------------------------
# the model boundary: uint8 files <-> (B, 3, H, W) [-1, 1] tensors, (B, 1, H, W) 1 = hole


def to_model(targets: np.ndarray, holes: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    images = uint8_to_model(torch.from_numpy(targets).to(device=device, dtype=torch.float32))
    images = images.permute(0, 3, 1, 2).contiguous()  # (B, 3, H, W)
    masks = torch.from_numpy(holes).to(device=device, dtype=torch.float32)[:, None]  # (B, 1, H, W)
    return images, masks


def from_model(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8, rounded."""
    return model_to_uint8(x.detach().float().permute(0, 2, 3, 1).cpu().numpy())


def feed_forward(recipe: Any, targets: np.ndarray, holes: np.ndarray, device: torch.device) -> np.ndarray:
    """One forward pass of a feed-forward paper's generator, composited at file level.

    The model sees only the damaged image (each recipe zeroes the hole itself); ``preview`` is
    each recipe's inference path: the generator in eval mode, composited with the input.
    """
    images, masks = to_model(targets, holes, device)
    with torch.no_grad():
        output = recipe.preview(images, masks)
    return composite_uint8(from_model(output), targets, holes)


def initial_latents(recipe: Any, pairs: Sequence[Pair], seed: int) -> torch.Tensor:
    """z_0 of each pair from its own seed (seed, pair index): the same z_0 whatever the batching."""
    zs = []
    for pair in pairs:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 1_000_003 + pair.index)
            zs.append(recipe.sample_z(1))
    return torch.cat(zs)


def check_model_size(image_size: int, cfg: Any, checkpoint: Path) -> None:
    trained = getattr(cfg, "image_size", None)
    if trained is not None and trained != image_size:
        raise InpaintError(f"{checkpoint}: the model was trained at {trained}x{trained} but the test images "
                           f"are {image_size}x{image_size}; prepare the data (or masks) at the model's size")


def write_results(out_dir: Path, subdir: str, chunk: Sequence[Pair], images: np.ndarray) -> None:
    for pair, image in zip(chunk, images):
        write_image(Path(out_dir) / subdir / pair.name, image)


def done(out_dir: Path, subdirs: Sequence[str], chunk: Sequence[Pair]) -> bool:
    """Every result of this batch is on disk (a resumed run skips it)."""
    return all((Path(out_dir) / d / p.name).is_file() for d in subdirs for p in chunk)


def run_baselines(names: Sequence[str], out_dir: Path, pairs: Sequence[Pair], batch_size: int) -> dict[str, str]:
    from inpaintflow.tasks.inpaint.baselines import BASELINES

    results = {}
    for name in names:
        label, fill = BASELINES[name]
        subdir = f"baselines/{name}"
        for chunk, targets, holes in batches(pairs, out_dir, batch_size):
            if done(out_dir, [subdir], chunk):
                continue
            write_results(out_dir, subdir, chunk, np.stack([fill(t, h) for t, h in zip(targets, holes)]))
        results[label] = subdir
    return results


def write_record(out_dir: Path, record: dict[str, Any]) -> Path:
    return write_text_atomic(Path(out_dir) / "inpaint.json", json.dumps(record, indent=2, sort_keys=True) + "\n")


def checkpoint_digest(path: Path) -> str:
    return sha256_file(path)


def progress_printer(label: str, total: int) -> Callable[[int], None]:
    start = time.perf_counter()

    def report(done_images: int) -> None:
        rate = done_images / max(time.perf_counter() - start, 1e-9)
        print(f"{label}: {done_images}/{total} images, {rate:.2f} img/s")

    return report


# ---------------------------------------------------------------------------------------------
# one experiment


@dataclass(frozen=True)
class InpaintSettings:
    method: str                     # one of METHODS
    data_dir: Path
    masks_dir: Path
    out_dir: Path
    checkpoint: Path | None = None  # the trained model (runs/<train entry>/checkpoint.pt)
    label: str = ""                 # the method's row label in the tables (e.g. "R-MNet-0.4")
    limit: int | None = None        # test images per bin (None: all)
    batch_size: int = 16
    seed: int = 0                   # per-image latents z_0 (latent methods)
    steps: int | None = None        # latent steps (None: the paper's)
    refine_steps: int | None = None  # paper 001's refinement steps (None: the paper's)
    loss_weights: dict[str, float] | None = None  # paper 002's alpha, beta, eta (None: the paper's)
    mu: float | None = None         # paper 001's inpainting-consensus weight (None: per pattern)
    pattern: str | None = None      # the mask family (paper 001's mu per pattern)
    blend_operator: str = "five-point"
    baselines: tuple[str, ...] = ()
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InpaintError(f"unknown method {self.method!r}; known: {', '.join(METHODS)}")
        if self.checkpoint is None:
            raise InpaintError(f"method {self.method!r} needs a trained checkpoint")


def _load_model(settings: InpaintSettings, image_size: int, device: torch.device):
    from inpaintflow.tasks.train.engine import rebuild_from_checkpoint

    if not Path(settings.checkpoint).is_file():
        raise InpaintError(f"{settings.checkpoint}: no checkpoint (train the model first: dvc repro train@...)")
    recipe, cfg, train_settings = rebuild_from_checkpoint(settings.checkpoint, device=device)
    model = train_settings["model"]
    expected = LATENT_MODELS.get(settings.method)
    if settings.method == "feed-forward" and model not in FEED_FORWARD_MODELS:
        raise InpaintError(f"{settings.checkpoint}: model {model!r} is not feed-forward "
                           f"({', '.join(FEED_FORWARD_MODELS)}); use a latent method")
    if expected is not None and model != expected:
        raise InpaintError(f"{settings.checkpoint}: method {settings.method!r} needs a {expected!r} model, "
                           f"the checkpoint holds {model!r}")
    check_model_size(image_size, cfg, settings.checkpoint)
    for net in recipe.nets.values():
        net.requires_grad_(False)
    return recipe, model


def hole_l1_monitor(images: torch.Tensor, masks: torch.Tensor) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    """x -> {"hole_l1": (B,)}: mean |x - target| over each image's hole, on the [0, 1] scale
    of tasks/evaluate/metrics.py (model images span [-1, 1], hence the halving)."""
    area = (masks.sum(dim=(1, 2, 3)) * images.shape[1]).clamp(min=1)

    def monitor(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"hole_l1": ((x - images).abs() * masks).sum(dim=(1, 2, 3)) / area / 2}
    return monitor


def latent_log(res: Any, chunk: Sequence[Pair]) -> dict[str, Any]:
    """What a latent pass leaves on record: per image its final loss and terms, per step the
    batch means (loss before the step's update, every objective term, the hole L1)."""
    def floats(t: torch.Tensor) -> list[float]:
        return [round(float(v), 6) for v in t]

    return {"images": {p.name: {"final_loss": round(float(res.final_loss[i]), 6),
                                **{f"final_{k}": round(float(v[i]), 6) for k, v in sorted(res.final_terms.items())}}
                       for i, p in enumerate(chunk)},
            "steps": {"loss": floats(res.loss_history),
                      **{k: floats(v) for k, v in sorted(res.term_history.items())},
                      **{k: floats(v) for k, v in sorted(res.monitor_history.items())}}}


def gather_latent_logs(out_dir: Path) -> dict[str, Any]:
    """The batch logs of one run as inpaint.json's ``latent``: every image's final figures, and
    per pass the per-step curves averaged over all images (weighted by batch size)."""
    passes: dict[str, dict[str, Any]] = {}
    for path in sorted((Path(out_dir) / "latent").glob("batch-*.json")):
        for name, log in json.loads(path.read_text()).items():
            into = passes.setdefault(name, {"images": {}, "sums": {}, "count": 0})
            n = len(log["images"])
            into["images"].update(log["images"])
            for key, values in log["steps"].items():
                acc = into["sums"].setdefault(key, [0.0] * len(values))
                into["sums"][key] = [a + n * v for a, v in zip(acc, values)]
            into["count"] += n
    out = {}
    for name, p in passes.items():
        curves = {k: [round(v / p["count"], 6) for v in vals] for k, vals in p["sums"].items()}
        loss = curves.get("loss", [])
        tail = loss[-max(len(loss) // 10, 1):] if loss else []
        out[name] = {"images": dict(sorted(p["images"].items())), "curves": curves,
                     # how much the loss still fell over the last 10% of the steps, relative
                     "last_tenth_relative_fall": round((tail[0] - tail[-1]) / abs(tail[0]), 6)
                     if tail and tail[0] else None}
    return out


def _latent_batch(settings: InpaintSettings, recipe: Any, chunk: Sequence[Pair], targets: np.ndarray,
                  holes: np.ndarray, device: torch.device) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Paper 001 / 002 on one batch: every image its own z, optimised together; the images and
    the passes' logs (:func:`latent_log`)."""
    from inpaintflow.tasks.inpaint import latent
    from inpaintflow.tasks.blend.poisson import blend_batch

    images, masks = to_model(targets, holes, device)
    monitor = hole_l1_monitor(images, masks)
    z0 = initial_latents(recipe, chunk, settings.seed).to(device)
    G = recipe.nets["generator"]
    damaged = np.stack([damage(t, h) for t, h in zip(targets, holes)])
    out: dict[str, np.ndarray] = {}
    if settings.method == "vitoria":
        kwargs = {"steps": settings.steps} if settings.steps else {}
        weights = {VITORIA_WEIGHTS[k]: v for k, v in (settings.loss_weights or {}).items()}
        res = latent.inpaint_vitoria(G, recipe.nets["critic"], images, masks, z0,
                                     latent.VitoriaSettings(**kwargs, **weights), monitor=monitor)
    else:
        kwargs = {"steps": settings.steps} if settings.steps else {}
        res = latent.inpaint_yeh(G, recipe.nets["discriminator"], images, masks, z0, latent.YehSettings(**kwargs),
                                 monitor=monitor)
    logs = {"first_pass": latent_log(res, chunk)}
    out["generated"] = from_model(res.images)
    out["output"] = composite_uint8(out["generated"], targets, holes)
    if settings.method == "yeh-refine":
        mu = settings.mu if settings.mu is not None else latent.REFINEMENT_MU[settings.pattern]
        kwargs = {"steps": settings.refine_steps} if settings.refine_steps else {}
        first_blend = blend_batch(out["generated"], damaged, holes, settings.blend_operator)
        blended = to_model(first_blend, holes, device)[0]
        ref = latent.refine_consensus(G, recipe.nets["discriminator"], images, masks, res.z, blended,
                                      latent.RefinementSettings(**kwargs), mu=mu, monitor=monitor)
        logs["refinement"] = latent_log(ref, chunk)
        out["refined-generated"] = from_model(ref.images)
    return out, logs


def result_dirs(settings: InpaintSettings) -> list[dict[str, str | None]]:
    """What the experiment produces for scoring: row label, stage, directory, and for the latent
    methods the directory the blend step writes the Poisson-blended result to (what is scored)."""
    label = settings.label or settings.method
    if settings.method == "feed-forward":
        return [{"method": label, "stage": None, "dir": "output"}]
    if settings.method == "yeh-refine":
        return [{"method": label, "stage": "before", "dir": "generated", "blend": "blended"},
                {"method": label, "stage": "after", "dir": "refined-generated", "blend": "refined"}]
    return [{"method": label, "stage": None, "dir": "generated", "blend": "blended"}]


def run_experiment(settings: InpaintSettings, log: Callable[[str], None] = print) -> Path:
    """Inpaint every pair of the experiment; resumes a run killed part-way (finished batches
    are on disk, written atomically); ``inpaint.json`` is written last."""
    out_dir = Path(settings.out_dir)
    record_path = out_dir / "inpaint.json"
    if record_path.exists():
        record_path.unlink()  # it marks a finished run: remove it before touching anything
    device = torch.device(settings.device)
    # untrained or lightly trained GAN weights produce denormal floats, which make CPU
    # convolutions an order of magnitude slower (benchmarks/latent.py); flushing them to zero
    # changes nothing measurable and is deterministic
    torch.set_flush_denormal(True)
    pairs = plan_pairs(settings.data_dir, settings.masks_dir, settings.limit)
    write_inputs(pairs, out_dir)
    image_size = read_image(out_dir / "target" / pairs[0].name).shape[0]
    recipe, model = _load_model(settings, image_size, device)
    subdirs = ["output"] + (["generated"] if settings.method != "feed-forward" else []) + \
        (["refined-generated"] if settings.method == "yeh-refine" else [])
    report = progress_printer(f"{settings.label or settings.method}", len(pairs))
    start = time.perf_counter()
    for n_done, (chunk, targets, holes) in enumerate(batches(pairs, out_dir, settings.batch_size), 1):
        if done(out_dir, subdirs, chunk):
            continue
        if settings.method == "feed-forward":
            results = {"output": feed_forward(recipe, targets, holes, device)}
        else:
            results, logs = _latent_batch(settings, recipe, chunk, targets, holes, device)
            # before the images: a batch counts as done once its images are all on disk
            write_text_atomic(out_dir / "latent" / f"batch-{n_done:05d}.json",
                              json.dumps(logs, indent=1, sort_keys=True) + "\n")
        for subdir, images in results.items():
            write_results(out_dir, subdir, chunk, images)
        report(min(n_done * settings.batch_size, len(pairs)))
    seconds = time.perf_counter() - start
    results = result_dirs(settings)
    for label, subdir in run_baselines(settings.baselines, out_dir, pairs, settings.batch_size).items():
        results.append({"method": label, "stage": None, "dir": subdir})
    bins: dict[str, int] = {}
    for p in pairs:
        bins[p.bin] = bins.get(p.bin, 0) + 1
    train_json = Path(settings.checkpoint).parent / "train.json"
    train = json.loads(train_json.read_text()) if train_json.is_file() else {}
    record = {
        "train": {"steps": train.get("steps"), "vgg19": train.get("vgg19"), "parameters": train.get("parameters")},
        "method": settings.method, "model": model, "label": settings.label,
        "checkpoint": str(settings.checkpoint), "checkpoint_sha256": checkpoint_digest(settings.checkpoint),
        "data": str(settings.data_dir), "masks": str(settings.masks_dir),
        "pairs": len(pairs), "bins": bins, "image_size": image_size,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in settings.__dict__.items()
                     if k not in ("data_dir", "masks_dir", "out_dir", "checkpoint", "device")},
        "results": results,
        "torch": torch.__version__,
    }
    if settings.method != "feed-forward":
        record["latent"] = gather_latent_logs(out_dir)
    write_record(out_dir, record)
    log(f"{settings.label or settings.method}: {len(pairs)} pairs in {seconds:.1f} s -> {out_dir}")
    return record_path

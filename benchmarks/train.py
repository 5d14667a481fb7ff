"""Training throughput and peak memory per model; on CUDA also the optimised path vs fp32.

    python benchmarks/train.py                     # every model, demo-sized (tiny) configs
    python benchmarks/train.py --models gla --size 64 --batch-size 8 --steps 10

Each model runs in its own process, so peak memory (max RSS on CPU, max allocated on CUDA) is
its own. On CUDA each model is timed twice in the same run: plain fp32, and bf16 autocast +
channels_last (the engine's CUDA path); the ratio is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import time

import torch

from inpaintflow.models import RECIPES


def measure(model: str, size: int, batch: int, steps: int, warmup: int, optimised: bool) -> dict:
    from inpaintflow.models.common import StepContext
    from inpaintflow.tasks.masks.generators import training_masks
    from inpaintflow.tasks.train.engine import Runtime, build_config, build_recipe, prepare_nets, TrainSettings

    import numpy as np

    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rt = Runtime(device=device, rank=0, world_size=1)
    settings = TrainSettings(model=model, data="-", out="-", steps=1, batch_size=batch, size=size,
                             tiny=True, allow_random_vgg=True, progress=False)
    cfg = build_config(model, True, {}, size)
    recipe, _ = build_recipe(settings, cfg)
    if device.type == "cuda" and not optimised:  # plain fp32 path: no channels_last, no autocast
        for name, net in recipe.nets.items():
            recipe.nets[name] = net.to(device)
        autocast = contextlib.nullcontext
    else:
        prepare_nets(recipe, rt, compile_nets=False)
        autocast = rt.autocast
    images = torch.rand(batch, 3, size, size, device=device) * 2 - 1
    masks = None
    if recipe.mask_families:
        stream = training_masks(list(recipe.mask_families), size, np.random.default_rng(0),
                                getattr(cfg, "train_mask_bin", None))
        masks = torch.from_numpy(np.stack([next(stream) for _ in range(batch)])).float()[:, None].to(device)
    if device.type == "cuda" and optimised:
        images = images.contiguous(memory_format=torch.channels_last)
        torch.cuda.reset_peak_memory_stats()

    def run(n: int, start: int) -> None:
        for step in range(start, start + n):
            recipe.training_step(images, masks, StepContext(step=step, autocast=autocast, device=device))
        if device.type == "cuda":
            torch.cuda.synchronize()

    run(warmup, 0)
    t0 = time.perf_counter()
    run(steps, warmup)
    elapsed = time.perf_counter() - t0
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"model": model, "device": device.type, "optimised": optimised,
            "images_per_s": steps * batch / elapsed, "peak_mib": peak_mib}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=list(RECIPES))
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--optimised", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.size, args.batch_size, args.steps, args.warmup, args.optimised)))
        return

    cuda = torch.cuda.is_available()
    print(f"training benchmark: tiny configs, {args.size}x{args.size}, batch {args.batch_size}, "
          f"{args.steps} timed steps after {args.warmup} warm-up, device {'cuda' if cuda else 'cpu'} "
          f"({torch.get_num_threads()} threads)")
    header = f"{'model':11s} {'img/s':>9s} {'peak MiB':>9s}"
    print(header + (f" {'fp32 img/s':>11s} {'opt/fp32':>9s}" if cuda else ""))
    for model in args.models:
        def one(optimised: bool) -> dict:
            cmd = [sys.executable, __file__, "--one", model, "--size", str(args.size), "--batch-size",
                   str(args.batch_size), "--steps", str(args.steps), "--warmup", str(args.warmup)]
            out = subprocess.run(cmd + (["--optimised"] if optimised else []), capture_output=True,
                                 text=True, check=True)
            return json.loads(out.stdout.strip().splitlines()[-1])

        fast = one(optimised=True)
        line = f"{model:11s} {fast['images_per_s']:9.1f} {fast['peak_mib']:9.0f}"
        if cuda:
            plain = one(optimised=False)
            line += f" {plain['images_per_s']:11.1f} {fast['images_per_s'] / plain['images_per_s']:8.2f}x"
        print(line, flush=True)
    if not cuda:
        print("no GPU here: the optimised-vs-fp32 ratio is measured only when CUDA is available")


if __name__ == "__main__":
    main()

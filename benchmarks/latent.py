"""Latent-optimisation inpainting throughput: one batched run vs a per-image loop.

    python benchmarks/latent.py                          # tiny DCGAN, 64 images, 50 steps
    python benchmarks/latent.py --config default --images 16 --steps 10

Both sides run ``inpaintflow.tasks.inpaint.latent.inpaint_yeh`` (paper 001's first pass: weighted context loss,
log(1 - D) through the DCGAN discriminator, Adam on z, clipping) on the same images, holes
and initial z's: once as one batch, once image by image. Prints images/s (images through all
steps), the ratio, and the largest difference between the two runs' z's (the batched run must
give the same z's). Targets are G(z*) for random z*, holes the centre square of paper 001.

Denormal floats are flushed to zero (``torch.set_flush_denormal``): an untrained DCGAN (weights
N(0, 0.02)) has activations so small that CPU arithmetic on denormals dominates otherwise
(~15x slower batched), which a trained network would not show.

The max |z_batched - z_loop| printed is fp32 rounding (convolutions pick other algorithms for
other batch sizes) amplified by the L1 kinks and Adam's normalisation of tiny gradients; in
float64 the two agree to ~1e-15 (tests/test_latent.py).

One torch thread by default, for both sides: on the shared 2-core machine a 2-thread run
stalls whenever another process holds a core (single-image runs of 50 steps measured from
0.16 s to 5 s), while one thread is steady; ``--threads 2`` on an idle machine.

The default is the tiny DCGAN (``inpaintflow.models.dcgan.Config.tiny``: 64x64, widths 8) because the full
64x64 DCGAN (``Config()``, widths 64) needs ~1.7 s per batched step of 64 images on 2 CPU
cores, i.e. ~5 minutes for 64 images x 50 steps both ways; ``--config default`` runs it.
"""

from __future__ import annotations

import argparse
import time

import torch

from inpaintflow.models import dcgan
from inpaintflow.tasks.inpaint.latent import YehSettings, inpaint_yeh
from inpaintflow.tasks.masks.generators import make_mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", choices=("tiny", "default"), default="tiny")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads on CPU (module docstring: why 1)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    flushed = torch.set_flush_denormal(True)  # False where the CPU cannot
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    cfg = dcgan.Config.tiny() if args.config == "tiny" else dcgan.Config()
    G = dcgan.Generator(cfg).to(device).eval()
    D = dcgan.Discriminator(cfg).to(device).eval()
    n, size = args.images, cfg.image_size

    gen = torch.Generator().manual_seed(1)
    z_star = (torch.rand(n, cfg.z_dim, generator=gen) * 2 - 1).to(device)
    z0 = (torch.rand(n, cfg.z_dim, generator=gen) * 2 - 1).to(device)
    with torch.no_grad():
        target = G(z_star)
    hole_np, _ = make_mask("center-square", size, seed=0, index=0)
    hole = torch.from_numpy(hole_np).float().to(device).expand(n, 1, size, size).contiguous()
    settings = YehSettings(steps=args.steps)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    inpaint_yeh(G, D, target[:2], hole[:2], z0[:2], YehSettings(steps=2))  # warm-up
    sync()
    start = time.perf_counter()
    batched = inpaint_yeh(G, D, target, hole, z0, settings)
    sync()
    t_batched = time.perf_counter() - start

    start = time.perf_counter()
    singles = [inpaint_yeh(G, D, target[k:k + 1], hole[k:k + 1], z0[k:k + 1], settings).z
               for k in range(n)]
    sync()
    t_loop = time.perf_counter() - start

    max_dz = (batched.z - torch.cat(singles)).abs().max().item()
    threads = (f", {torch.get_num_threads()} threads, denormals flushed: {flushed}"
               if device.type == "cpu" else "")
    print(f"latent optimisation (paper 001 first pass): DCGAN {args.config} "
          f"({G.num_parameters() + D.num_parameters():,} parameters), {size}x{size}, "
          f"{n} images x {args.steps} steps, device {device.type}{threads}")
    print(f"{'batched':10s} {n / t_batched:9.2f} images/s  ({t_batched:.2f} s)")
    print(f"{'loop':10s} {n / t_loop:9.2f} images/s  ({t_loop:.2f} s)")
    print(f"batched / loop: {t_loop / t_batched:.2f}x; max |z_batched - z_loop| = {max_dz:.2e}")


if __name__ == "__main__":
    main()

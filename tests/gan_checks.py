"""What the two latent-GAN test files (test_dcgan.py, test_wgan_gp.py) check the same way."""

from __future__ import annotations

import torch


def smooth_targets(batch: int, size: int) -> torch.Tensor:
    """Per-sample colour ramps in [-0.8, 0.8]: (B, 3, S, S) images a tiny G can represent."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size),
                            indexing="ij")
    colours = torch.rand(batch, 3, 1, 1) * 2 - 1
    return 0.8 * colours * (0.5 * xx + 0.5 * yy)


def fit_fixed_target(recipe, size: int, steps: int) -> list[float]:
    """The MSE of G on 4 fixed z against 4 fixed smooth images, after each of ``steps`` steps of
    the recipe's own generator optimiser."""
    G = recipe.nets["generator"]
    z, target = recipe.sample_z(4), smooth_targets(4, size)
    opt = recipe.optimizers["generator"]
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = (G(z) - target).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses

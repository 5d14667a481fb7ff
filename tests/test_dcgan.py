"""The DCGAN of Yeh et al. (papers 001 and 002's baseline): shapes, ranges, z, losses, one
training step, and small overfitting checks on fixed batches."""

from __future__ import annotations

import math
from contextlib import nullcontext

import pytest
import torch

from gan_checks import fit_fixed_target
from inpaintflow.models.common import StepContext
from inpaintflow.models.dcgan import (Config, DCGANRecipe, Discriminator, Generator, discriminator_loss, generator_loss,
                                      layer_table)

CPU = StepContext(step=0, autocast=nullcontext, device=torch.device("cpu"))
S = Config.tiny().image_size  # 64


def test_paper_config_values():
    cfg = Config()
    assert (cfg.image_size, cfg.z_dim, cfg.gf, cfg.df) == (64, 100, 64, 64)
    assert (cfg.lr, cfg.betas, cfg.batch_size, cfg.epochs) == (0.002, (0.5, 0.9), 64, 25)
    recipe = DCGANRecipe(Config.tiny())
    for opt in recipe.optimizers.values():
        assert opt.defaults["lr"] == 0.002 and opt.defaults["betas"] == (0.5, 0.9)
    assert recipe.mask_families == ()
    assert set(recipe.nets) == {"generator", "discriminator"}


def test_layer_table_is_carpedm20s_at_64():
    assert layer_table(64, 64) == ((4, 512), (8, 256), (16, 128), (32, 64))
    assert layer_table(32, 8) == ((4, 32), (8, 16), (16, 8))


@pytest.mark.parametrize("cfg", [Config(), Config.tiny(), Config(image_size=32, gf=8, df=8)],
                         ids=["paper", "tiny", "32x32"])
def test_shapes_and_ranges(cfg):
    torch.manual_seed(0)
    G, D = Generator(cfg), Discriminator(cfg)
    z = torch.rand(3, cfg.z_dim) * 2 - 1
    x = G(z)
    assert x.shape == (3, 3, cfg.image_size, cfg.image_size)
    assert x.abs().max() <= 1.0
    logits = D(x)
    assert logits.shape == (3,) and torch.isfinite(logits).all()


@pytest.mark.parametrize("bad", [48, 8, 0, 100])
def test_bad_image_size_is_named_at_build_time(bad):
    with pytest.raises(ValueError, match=f"got {bad}"):
        Generator(Config(image_size=bad))
    with pytest.raises(ValueError, match=f"got {bad}"):
        Discriminator(Config(image_size=bad))


def test_discriminator_rejects_other_image_sizes():
    with pytest.raises(ValueError, match="64x64"):
        Discriminator(Config.tiny())(torch.zeros(1, 3, 32, 32))


def test_z_is_uniform_in_minus_one_one_of_dim_100():
    torch.manual_seed(0)
    recipe = DCGANRecipe(Config.tiny())
    z = recipe.sample_z(4000)
    assert z.shape == (4000, 100)
    assert z.min() >= -1 and z.max() <= 1
    assert z.min() < -0.99 and z.max() > 0.99
    assert abs(z.mean().item()) < 0.01
    assert z.std().item() == pytest.approx(1 / math.sqrt(3), rel=0.01)  # U[-1, 1]
    torch.manual_seed(1)
    a = recipe.sample_z(5)
    torch.manual_seed(1)
    assert torch.equal(a, recipe.sample_z(5))  # the global RNG decides


def test_losses_closed_form():
    zero = torch.zeros(4)
    total, terms = discriminator_loss(zero, zero)
    assert total.item() == pytest.approx(2 * math.log(2))
    assert terms["d_loss_real"].item() == pytest.approx(math.log(2))
    assert generator_loss(zero).item() == pytest.approx(math.log(2))
    # a confident, right discriminator has a small loss; the non-saturating G loss is then big
    big = torch.full((4,), 20.0)
    assert discriminator_loss(big, -big)[0].item() < 1e-6
    assert generator_loss(-big).item() == pytest.approx(20.0, rel=1e-6)


def test_latent_gradients_reach_z():
    """Latent-optimisation inpainting differentiates D(G(z)) and G(z) with respect to z."""
    torch.manual_seed(0)
    cfg = Config.tiny()
    G, D = Generator(cfg).eval(), Discriminator(cfg).eval()
    z = (torch.rand(2, cfg.z_dim) * 2 - 1).requires_grad_(True)
    (G(z).sum() + D(G(z)).sum()).backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_training_step_returns_losses_and_updates_both_nets():
    torch.manual_seed(0)
    recipe = DCGANRecipe(Config.tiny())
    before = {name: [p.detach().clone() for p in net.parameters()]
              for name, net in recipe.nets.items()}
    images = torch.rand(4, 3, S, S) * 2 - 1
    losses = recipe.training_step(images, None, CPU)
    assert set(losses) == {"d_loss", "d_loss_real", "d_loss_fake", "g_loss"}
    for value in losses.values():
        assert value.ndim == 0 and not value.requires_grad and torch.isfinite(value)
    assert losses["d_loss"] == pytest.approx(
        (losses["d_loss_real"] + losses["d_loss_fake"]).item())
    for name, net in recipe.nets.items():
        changed = [not torch.equal(a, b) for a, b in zip(before[name], net.parameters())]
        assert all(changed), f"{name}: some parameters did not move"


def test_training_step_under_bf16_autocast():
    torch.manual_seed(0)
    recipe = DCGANRecipe(Config.tiny())
    ctx = StepContext(step=0, device=torch.device("cpu"),
                      autocast=lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    losses = recipe.training_step(torch.rand(2, 3, S, S) * 2 - 1, None, ctx)
    assert all(torch.isfinite(v) for v in losses.values())


def test_discriminator_overfits_a_fixed_real_and_fake_batch():
    """D separates 4 fixed real images from 4 fixed samples: its loss falls 100-fold in 30
    steps (Adam, the paper's lr 0.002)."""
    torch.manual_seed(0)
    recipe = DCGANRecipe(Config.tiny())
    G, D = recipe.nets["generator"], recipe.nets["discriminator"]
    real = torch.rand(4, 3, S, S) * 2 - 1
    with torch.no_grad():
        fake = G(recipe.sample_z(4))
    opt = recipe.optimizers["discriminator"]
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss, _ = discriminator_loss(D(real), D(fake))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.01 * losses[0]


def test_generator_matches_a_fixed_target():
    """G maps 4 fixed z to 4 fixed smooth images: the MSE falls 10-fold in 30 steps."""
    torch.manual_seed(0)
    losses = fit_fixed_target(DCGANRecipe(Config.tiny()), S, 30)
    assert losses[-1] < 0.1 * losses[0]


def test_generator_fools_a_frozen_discriminator():
    """With D fixed, G's non-saturating loss on fixed z falls 10-fold in 20 steps."""
    torch.manual_seed(0)
    recipe = DCGANRecipe(Config.tiny())
    G, D = recipe.nets["generator"], recipe.nets["discriminator"]
    D.requires_grad_(False)
    z = recipe.sample_z(4)
    opt = recipe.optimizers["generator"]
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = generator_loss(D(G(z)))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]


def test_preview_is_fixed_noise_samples_and_restores_train_mode():
    torch.manual_seed(0)
    cfg = Config.tiny()
    recipe = DCGANRecipe(cfg)
    images = torch.zeros(2, 3, S, S)
    a = recipe.preview(images, None)
    b = recipe.preview(images, None)
    assert a.shape == (cfg.n_preview, 3, S, S) and a.abs().max() <= 1
    assert torch.equal(a, b)
    assert not a.requires_grad
    assert recipe.nets["generator"].training

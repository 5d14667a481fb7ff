"""The improved WGAN-GP of paper 002: shapes, ranges, z, the critic's normalisation, the
gradient penalty's closed forms (also under autocast and DDP), flips, one training step, and
small overfitting checks on fixed batches."""

from __future__ import annotations

import math
from contextlib import nullcontext

import pytest
import torch
from torch import nn

import inpaintflow.models.wgan_gp as wgan_gp
from gan_checks import fit_fixed_target
from inpaintflow.models.common import StepContext
from inpaintflow.models.wgan_gp import (Config, Critic, Generator, LayerNorm2d, WGANGPRecipe, channel_multipliers,
                                        critic_loss, generator_loss, gradient_penalty, random_hflip)

CPU = StepContext(step=0, autocast=nullcontext, device=torch.device("cpu"))
S = Config.tiny().image_size  # 64


class LinearCritic(nn.Module):
    """f(x) = <w, x>: its gradient is w everywhere."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w.flatten()


class QuadraticCritic(nn.Module):
    """f(x) = c/2 ||x||^2: its gradient is c x."""

    def __init__(self, c: float):
        super().__init__()
        self.c = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c / 2 * x.flatten(1).pow(2).sum(1)


def norm_three_weights(shape=(3, 4, 4)) -> torch.Tensor:
    """Nine ones, the rest zeros: ||w|| = 3, exact even in bf16."""
    w = torch.zeros(shape).flatten()
    w[::5][:9] = 1.0
    return w.reshape(shape)


def test_paper_config_values():
    cfg = Config()
    assert (cfg.image_size, cfg.z_dim, cfg.dim) == (64, 128, 64)
    assert (cfg.lr, cfg.betas, cfg.batch_size, cfg.iterations) == (1e-4, (0.0, 0.9), 64, 50_000)
    assert (cfg.n_critic, cfg.gp_weight, cfg.hflip) == (5, 10.0, True)
    recipe = WGANGPRecipe(Config.tiny())
    for opt in recipe.optimizers.values():
        assert opt.defaults["lr"] == 1e-4 and opt.defaults["betas"] == (0.0, 0.9)
    assert recipe.mask_families == ()
    assert set(recipe.nets) == {"generator", "critic"}


def test_channel_table_is_gulrajanis_at_64():
    assert channel_multipliers(64) == (1, 2, 4, 8, 8)
    assert channel_multipliers(32) == (1, 2, 4, 8)
    G = Generator(Config())
    assert G.project.out_features == 4 * 4 * 512  # "a four by four 512-dimensional tensor"
    linears = [m for m in G.modules() if isinstance(m, nn.Linear)]
    assert linears == [G.project]  # the only fully connected layer of G
    assert [m for m in Critic(Config()).modules() if isinstance(m, nn.Linear)][0].in_features \
        == 4 * 4 * 512


@pytest.mark.parametrize("cfg", [Config(), Config.tiny(), Config(image_size=32, dim=8)],
                         ids=["paper", "tiny", "32x32"])
def test_shapes_and_ranges(cfg):
    torch.manual_seed(0)
    G, D = Generator(cfg), Critic(cfg)
    x = G(torch.randn(2, cfg.z_dim))
    assert x.shape == (2, 3, cfg.image_size, cfg.image_size)
    assert x.abs().max() <= 1.0
    scores = D(x)
    assert scores.shape == (2,) and torch.isfinite(scores).all()


@pytest.mark.parametrize("bad", [48, 8, 0, 96])
def test_bad_image_size_is_named_at_build_time(bad):
    with pytest.raises(ValueError, match=f"got {bad}"):
        Generator(Config(image_size=bad))
    with pytest.raises(ValueError, match=f"got {bad}"):
        Critic(Config(image_size=bad))


def test_z_is_standard_normal_of_dim_128():
    torch.manual_seed(0)
    z = WGANGPRecipe(Config.tiny()).sample_z(4000)
    assert z.shape == (4000, 128)
    assert abs(z.mean().item()) < 0.01
    assert z.std().item() == pytest.approx(1.0, rel=0.01)
    assert z.abs().max() > 3  # unbounded, unlike the DCGAN's U[-1, 1]


def test_critic_has_layer_norm_and_no_batch_norm():
    cfg = Config.tiny()
    critic, generator = Critic(cfg), Generator(cfg)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in critic.modules())
    n_blocks = len(channel_multipliers(cfg.image_size)) - 1
    assert sum(isinstance(m, LayerNorm2d) for m in critic.modules()) == 2 * n_blocks
    assert any(isinstance(m, nn.BatchNorm2d) for m in generator.modules())  # G keeps BN


def test_layer_norm_normalises_each_sample_over_c_h_w():
    x = torch.randn(2, 8, 5, 5) * 3 + 7
    y = LayerNorm2d(8)(x)
    assert torch.allclose(y.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5)
    assert torch.allclose(y.var(dim=(1, 2, 3), unbiased=False), torch.ones(2), atol=1e-3)


def test_critic_scores_each_sample_independently():
    torch.manual_seed(0)
    critic = Critic(Config.tiny())
    x = torch.rand(4, 3, S, S) * 2 - 1
    assert torch.allclose(critic(x)[:1], critic(x[:1]), atol=1e-5)


def test_gradient_penalty_of_a_linear_critic_is_closed_form():
    """||grad|| = ||w|| = 3 everywhere: penalty = 10 (3 - 1)^2 = 40, and its gradient with
    respect to w is 10 * 2 (||w|| - 1) w / ||w|| = 40/3 w (create_graph reaches the critic)."""
    torch.manual_seed(0)
    critic = LinearCritic(norm_three_weights())
    real, fake = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    gp = gradient_penalty(critic, real, fake, weight=10.0)
    assert gp.item() == pytest.approx(40.0, rel=1e-6)
    gp.backward()
    assert torch.allclose(critic.w.grad, 40 / 3 * critic.w.detach(), atol=1e-5)


def test_gradient_penalty_of_a_quadratic_critic_is_closed_form():
    """f = c/2 ||x||^2 has gradient c x; with real == fake every interpolate is x, so the
    penalty is weight * mean_i (c ||x_i|| - 1)^2 whatever alpha is."""
    torch.manual_seed(0)
    x = torch.randn(6, 3, 4, 4)
    c = 0.5
    expected = 2.0 * ((c * x.flatten(1).norm(dim=1) - 1) ** 2).mean()
    gp = gradient_penalty(QuadraticCritic(c), x, x.clone(), weight=2.0)
    assert gp.item() == pytest.approx(expected.item(), rel=1e-5)


def test_gradient_penalty_under_bf16_autocast_is_fp32():
    torch.manual_seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gp = gradient_penalty(LinearCritic(norm_three_weights()), torch.randn(3, 3, 4, 4),
                              torch.randn(3, 3, 4, 4), weight=10.0)
    assert gp.dtype == torch.float32
    assert gp.item() == pytest.approx(40.0, rel=1e-6)
    critic = Critic(Config.tiny())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        real = torch.rand(2, 3, S, S) * 2 - 1
        gp = gradient_penalty(critic, real, real.flip(0).to(torch.bfloat16), weight=10.0)
    assert gp.dtype == torch.float32 and torch.isfinite(gp)
    gp.backward()
    # every weight is reached (biases feeding the score linearly do not affect grad_x D)
    assert all(p.grad is not None for p in critic.parameters() if p.ndim > 1)


def test_gradient_penalty_through_a_ddp_wrapped_critic(tmp_path):
    dist = torch.distributed
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0,
                            world_size=1)
    try:
        torch.manual_seed(0)
        plain = Critic(Config.tiny())
        wrapped = nn.parallel.DistributedDataParallel(Critic(Config.tiny()))
        wrapped.module.load_state_dict(plain.state_dict())
        real, fake = torch.rand(2, 3, S, S) * 2 - 1, torch.rand(2, 3, S, S) * 2 - 1
        results = []
        for critic in (plain, wrapped):
            torch.manual_seed(1)  # the same alpha
            loss = critic_loss(critic(real), critic(fake)) + gradient_penalty(
                critic, real, fake, weight=10.0)
            loss.backward()
            results.append((loss.detach(), [p.grad.clone() for p in critic.parameters()]))
        (loss_a, grads_a), (loss_b, grads_b) = results
        assert torch.allclose(loss_a, loss_b, atol=1e-5)
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(grads_a, grads_b))
    finally:
        dist.destroy_process_group()


def test_training_step_with_a_compiled_critic():
    """AOTAutograd has no double backward: the penalty must bypass torch.compile's wrapper."""
    torch.manual_seed(0)
    cfg = Config.tiny()
    cfg.n_critic = 1
    recipe = WGANGPRecipe(cfg)
    recipe.nets["critic"] = torch.compile(recipe.nets["critic"], backend="aot_eager")
    losses = recipe.training_step(torch.rand(2, 3, S, S) * 2 - 1, None, CPU)
    assert all(torch.isfinite(v) for v in losses.values())


def test_random_hflip_flips_about_half_the_samples_per_sample():
    images = torch.randn(400, 3, 4, 6)
    torch.manual_seed(0)
    out = random_hflip(images)
    same = (out == images).flatten(1).all(1)
    mirrored = (out == images.flip(-1)).flatten(1).all(1)
    assert (same ^ mirrored).all()  # each sample is either untouched or mirrored
    assert 0.4 < mirrored.float().mean().item() < 0.6
    torch.manual_seed(0)
    assert torch.equal(random_hflip(images), out)  # the global RNG decides


@pytest.mark.parametrize("hflip", [True, False])
def test_training_step_flips_real_images_once_per_critic_update(monkeypatch, hflip):
    calls = []

    def spy(images):
        calls.append(images.shape)
        return random_hflip(images)

    monkeypatch.setattr(wgan_gp, "random_hflip", spy)
    torch.manual_seed(0)
    cfg = Config.tiny()
    cfg.hflip, cfg.n_critic = hflip, 2
    WGANGPRecipe(cfg).training_step(torch.rand(2, 3, S, S) * 2 - 1, None, CPU)
    assert len(calls) == (2 if hflip else 0)


def test_training_step_returns_losses_and_updates_both_nets():
    torch.manual_seed(0)
    recipe = WGANGPRecipe(Config.tiny())
    before = {name: [p.detach().clone() for p in net.parameters()]
              for name, net in recipe.nets.items()}
    losses = recipe.training_step(torch.rand(2, 3, S, S) * 2 - 1, None, CPU)
    assert set(losses) == {"critic_loss", "wasserstein", "gradient_penalty", "generator_loss"}
    for value in losses.values():
        assert value.ndim == 0 and not value.requires_grad and torch.isfinite(value)
    assert losses["critic_loss"].item() == pytest.approx(
        (losses["gradient_penalty"] - losses["wasserstein"]).item(), abs=1e-5)
    for old, (key, new) in zip(before["generator"], recipe.nets["generator"].named_parameters()):
        assert not torch.equal(old, new), f"generator.{key} did not move"
    critic, probe = recipe.nets["critic"], torch.rand(3, 3, S, S) * 2 - 1
    for old, (key, new) in zip(before["critic"], critic.named_parameters()):
        if torch.equal(old, new):
            # only a parameter that shifts every score by the same constant (the biases that
            # feed the output linearly) may stand still: the critic's loss cannot see it
            with torch.no_grad():
                scores = critic(probe)
                new.add_(0.1)
                shift = critic(probe) - scores
                new.sub_(0.1)
            assert torch.allclose(shift, shift[0].expand(3), atol=1e-5), f"critic.{key}"


def test_training_step_under_bf16_autocast():
    torch.manual_seed(0)
    cfg = Config.tiny()
    cfg.n_critic = 2
    ctx = StepContext(step=0, device=torch.device("cpu"),
                      autocast=lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    losses = WGANGPRecipe(cfg).training_step(torch.rand(2, 3, S, S) * 2 - 1, None, ctx)
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["gradient_penalty"].dtype == torch.float32


def test_critic_learns_to_separate_a_fixed_real_and_fake_batch():
    """Critic updates (Wasserstein loss + gradient penalty, the paper's Adam) on 4 fixed real
    images vs 4 fixed samples: the estimate E[D(real)] - E[D(fake)] grows at least 5-fold, and
    by more than 3, in 15 updates. (At 32x32 to keep the double backward cheap on CPU.)"""
    torch.manual_seed(0)
    recipe = WGANGPRecipe(Config(image_size=32, dim=8))
    G, D = recipe.nets["generator"], recipe.nets["critic"]
    real = torch.rand(4, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        fake = G(recipe.sample_z(4))

    def estimate() -> float:
        with torch.no_grad():
            return (D(real).mean() - D(fake).mean()).item()

    opt = recipe.optimizers["critic"]
    start = estimate()
    for _ in range(15):
        opt.zero_grad()
        loss = critic_loss(D(real), D(fake)) + gradient_penalty(D, real, fake, weight=10.0)
        loss.backward()
        opt.step()
    end = estimate()
    assert end > 5 * abs(start) and end > start + 3


def test_generator_matches_a_fixed_target():
    """G maps 4 fixed z to 4 fixed smooth images with the paper's Adam (lr 1e-4): the MSE
    falls 2.5-fold in 40 steps."""
    torch.manual_seed(0)
    losses = fit_fixed_target(WGANGPRecipe(Config.tiny()), S, 40)
    assert losses[-1] < 0.4 * losses[0]


def test_generator_loss_is_minus_the_mean_score():
    scores = torch.tensor([1.0, 2.0, 3.0])
    assert generator_loss(scores).item() == pytest.approx(-2.0)
    assert critic_loss(scores, scores - 1).item() == pytest.approx(-1.0)


def test_latent_gradients_reach_z():
    """Latent-optimisation inpainting differentiates G(z) and D(G(z)) with respect to z."""
    torch.manual_seed(0)
    cfg = Config.tiny()
    G, D = Generator(cfg).eval(), Critic(cfg)
    z = torch.randn(2, cfg.z_dim, requires_grad=True)
    (G(z).sum() + D(G(z)).sum()).backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_preview_is_fixed_noise_samples_and_restores_train_mode():
    torch.manual_seed(0)
    cfg = Config.tiny()
    recipe = WGANGPRecipe(cfg)
    images = torch.zeros(2, 3, S, S)
    a = recipe.preview(images, None)
    assert a.shape == (cfg.n_preview, 3, S, S) and a.abs().max() <= 1
    assert torch.equal(a, recipe.preview(images, None))
    assert recipe.nets["generator"].training
    assert math.isfinite(a.sum().item())

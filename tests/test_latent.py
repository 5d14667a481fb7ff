"""Latent-optimisation inpainting (tasks/inpaint/latent.py): loss terms against numpy references, and
the three optimisations on tiny random DCGAN / WGAN nets with a target G(z*) that G can reach."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from inpaintflow.models import dcgan, wgan_gp
from inpaintflow.tasks.inpaint.latent import (REFINEMENT_MU, RefinementSettings, VitoriaSettings, YehSettings,
                                              context_weights, frozen, global_consensus_loss, gradient_loss,
                                              image_gradients, inpaint_vitoria, inpaint_yeh, inpainting_consensus_loss,
                                              perceptual_loss_from_logits, prior_loss_wgan, refine_consensus,
                                              weighted_context_loss)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = 32


# numpy references


def np_context_weights(hole: np.ndarray, window: int, denominator: str) -> np.ndarray:
    """Window sums by explicit loops; windows clipped to the image."""
    h, w = hole.shape
    r = window // 2
    out = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            if hole[i, j]:
                continue
            win = hole[max(0, i - r):i + r + 1, max(0, j - r):j + r + 1]
            n_hole = win.sum()
            out[i, j] = n_hole / (win.size if denominator == "window" else win.size - n_hole)
    return out


def np_gradients(x: np.ndarray, hole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x (H, W), hole (H, W): central / forward / backward / zero by the availability rule."""
    h, w = x.shape
    known = ~hole.astype(bool)
    gx, gy = np.zeros((h, w)), np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            if not known[i, j]:
                continue
            for g, (di, dj) in ((gx, (0, 1)), (gy, (1, 0))):
                ni, nj, pi, pj = i + di, j + dj, i - di, j - dj
                has_n = ni < h and nj < w and known[ni, nj]
                has_p = pi >= 0 and pj >= 0 and known[pi, pj]
                if has_n and has_p:
                    g[i, j] = (x[ni, nj] - x[pi, pj]) / 2
                elif has_n:
                    g[i, j] = x[ni, nj] - x[i, j]
                elif has_p:
                    g[i, j] = x[i, j] - x[pi, pj]
    return gx, gy


def random_hole(rng: np.random.Generator, b: int, h: int, w: int) -> torch.Tensor:
    hole = np.zeros((b, 1, h, w))
    for k in range(b):
        top, left = rng.integers(1, h // 2, 2)
        hole[k, 0, top:top + h // 3, left:left + w // 3] = 1
        hole[k, 0] = np.maximum(hole[k, 0], rng.random((h, w)) < 0.1)  # stray hole pixels
    return torch.from_numpy(hole)


# loss terms


@pytest.mark.parametrize("denominator", ["window", "known"])
def test_context_weights_match_window_sums(denominator):
    rng = np.random.default_rng(0)
    hole = random_hole(rng, 2, 13, 11)
    got = context_weights(hole, 7, denominator=denominator)
    assert got.shape == hole.shape
    for k in range(2):
        ref = np_context_weights(hole[k, 0].numpy(), 7, denominator)
        np.testing.assert_allclose(got[k, 0].numpy(), ref, rtol=1e-12, atol=1e-12)
    assert (got[hole > 0.5] == 0).all()
    assert (got >= 0).all()
    if denominator == "window":
        assert (got <= 1).all()
    # a known pixel with no hole in its window gets 0 (it is outside the set S of Eq. 4)
    far = torch.zeros(1, 1, 15, 15)
    far[..., 0, 0] = 1
    assert context_weights(far, 7, denominator=denominator)[0, 0, 10, 10] == 0


def test_context_weights_paper001_ratio_by_hand():
    # 3x3 window, one hole pixel at the centre of a 3x3 image: each corner's clipped window is
    # 2x2 with one hole -> 1/4 of the window, 1/3 of its clean pixels
    hole = torch.zeros(1, 1, 3, 3)
    hole[..., 1, 1] = 1
    assert context_weights(hole, 3, denominator="window")[0, 0, 0, 0] == pytest.approx(1 / 4)
    assert context_weights(hole, 3, denominator="known")[0, 0, 0, 0] == pytest.approx(1 / 3)


def test_image_gradients_equal_numpy_gradient_without_hole():
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64)
    gx, gy = image_gradients(x)
    np.testing.assert_allclose(gx.numpy(), np.gradient(x.numpy(), axis=3), atol=1e-12)
    np.testing.assert_allclose(gy.numpy(), np.gradient(x.numpy(), axis=2), atol=1e-12)


def test_image_gradients_one_sided_at_the_hole_boundary():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(size=(2, 3, 10, 9)))
    hole = random_hole(rng, 2, 10, 9)
    gx, gy = image_gradients(x, hole)
    for k in range(2):
        for c in range(3):
            rx, ry = np_gradients(x[k, c].numpy(), hole[k, 0].numpy())
            np.testing.assert_allclose(gx[k, c].numpy(), rx, atol=1e-12)
            np.testing.assert_allclose(gy[k, c].numpy(), ry, atol=1e-12)
    # by hand, one row: [a, b, HOLE, c, d, e] -> b - a backward, d - c forward, isolated = 0
    row = torch.tensor([1.0, 4.0, 100.0, 2.0, 7.0, 3.0], dtype=torch.float64).view(1, 1, 1, 6)
    row_hole = torch.tensor([0, 0, 1, 0, 0, 0.0]).view(1, 1, 1, 6)
    got = image_gradients(row, row_hole)[0].flatten().tolist()
    assert got == [3.0, 3.0, 0.0, 5.0, 0.5, -4.0]
    lone = torch.tensor([0, 1, 0, 1.0]).view(1, 1, 1, 4)  # known pixel between two holes
    assert image_gradients(torch.ones(1, 1, 1, 4) * 5, lone)[0].flatten().tolist() == [0] * 4


def pair_with_hole(*, seed: int, batch: int, size: int):
    """Two random (B, 3, size, size) batches, a random hole and its context weights (7x7)."""
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.normal(size=(batch, 3, size, size)))
    y = torch.from_numpy(rng.normal(size=(batch, 3, size, size)))
    hole = random_hole(rng, batch, size, size)
    return x, y, hole, context_weights(hole, 7)


def test_gradient_loss_matches_numpy_reference():
    x, y, hole, w = pair_with_hole(seed=2, batch=2, size=9)
    got = gradient_loss(x, y, hole, w)
    for k in range(2):
        ref = 0.0
        for c in range(3):
            ax, ay = np_gradients(x[k, c].numpy(), hole[k, 0].numpy())
            bx, by = np_gradients(y[k, c].numpy(), hole[k, 0].numpy())
            ref += (w[k, 0].numpy() * (np.abs(ax - bx) + np.abs(ay - by))).sum()
        assert got[k].item() == pytest.approx(ref, rel=1e-12)


def test_context_and_consensus_losses_are_per_image_sums():
    x, y, hole, w = pair_with_hole(seed=3, batch=3, size=8)
    ref = (w.numpy() * np.abs(x.numpy() - y.numpy())).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(weighted_context_loss(x, y, w).numpy(), ref, rtol=1e-12)
    glob, inp = global_consensus_loss(x, y, hole), inpainting_consensus_loss(x, y, hole)
    np.testing.assert_allclose((glob + inp).numpy(), (x - y).abs().sum((1, 2, 3)).numpy())
    np.testing.assert_allclose(inp.numpy(), ((x - y).abs() * hole).sum((1, 2, 3)).numpy())


def test_perceptual_and_prior_losses():
    logits = torch.tensor([-3.0, 0.0, 2.5], dtype=torch.float64)
    ref = np.log(1 - 1 / (1 + np.exp(-logits.numpy())))
    np.testing.assert_allclose(perceptual_loss_from_logits(logits[:, None]).numpy(), ref)
    assert perceptual_loss_from_logits(torch.tensor([200.0])).item() == pytest.approx(-200.0)
    assert prior_loss_wgan(torch.tensor([[1.5], [-2.0]])).tolist() == [-1.5, 2.0]


def test_paper_defaults():
    yeh, vit, ref = YehSettings(), VitoriaSettings(), RefinementSettings()
    assert (yeh.steps, yeh.lr, yeh.betas, yeh.perceptual_weight, yeh.window, yeh.clip) == (
        1500, 0.003, (0.5, 0.9), 0.003, 7, (-1.0, 1.0))
    assert (vit.steps, vit.lr, vit.betas, vit.clip) == (1000, 0.03, (0.9, 0.999), (-1.0, 1.0))
    assert (vit.context_weight, vit.gradient_weight, vit.prior_weight) == (0.1, 0.9, 0.5)
    assert (ref.steps, ref.lr, ref.betas, ref.perceptual_weight) == (1500, 0.003, (0.5, 0.9),
                                                                     0.003)
    assert REFINEMENT_MU["center-square"] == 0.66 and REFINEMENT_MU["stripes"] == 0.2
    with pytest.raises(ValueError, match="window"):
        YehSettings(window=6)


# optimisation on tiny nets


def _randomise_bn(net: torch.nn.Module, gen: torch.Generator) -> None:
    """Non-trivial running statistics, so eval mode is visibly what runs."""
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)


@pytest.fixture(scope="module")
def dcgan_nets():
    torch.manual_seed(0)
    # init_std 0.2, not DCGAN's 0.02: images that vary with z (std ~0.6, not ~1e-4)
    cfg = dataclasses.replace(dcgan.Config.tiny(), image_size=SIZE, z_dim=16, init_std=0.2)
    G, D = dcgan.Generator(cfg), dcgan.Discriminator(cfg)
    gen = torch.Generator().manual_seed(1)
    _randomise_bn(G, gen)
    _randomise_bn(D, gen)
    return G, D


@pytest.fixture(scope="module")
def wgan_nets():
    torch.manual_seed(0)
    cfg = dataclasses.replace(wgan_gp.Config.tiny(), image_size=SIZE, z_dim=16)
    G, critic = wgan_gp.Generator(cfg), wgan_gp.Critic(cfg)
    _randomise_bn(G, torch.Generator().manual_seed(2))
    return G, critic


def _problem(G, b: int, seed: int, normal: bool):
    """target = G(z*) (reachable), a hole per image, z0 from the paper's prior."""
    gen = torch.Generator().manual_seed(seed)
    draw = (lambda: torch.randn(b, 16, generator=gen).clamp(-1, 1)) if normal else (
        lambda: torch.rand(b, 16, generator=gen) * 2 - 1)
    dtype = next(G.parameters()).dtype
    z_star, z0 = draw().to(dtype), draw().to(dtype)
    with torch.no_grad(), frozen(G):
        target = G(z_star)
    hole = random_hole(np.random.default_rng(seed), b, SIZE, SIZE).to(dtype)
    return target, hole, z0


def _known_l1(images, target, hole):
    return ((images - target).abs() * (1 - hole)).sum((1, 2, 3))


YEH_FAST = YehSettings(steps=30, lr=0.05)
VIT_FAST = VitoriaSettings(steps=30, lr=0.05)
REF_FAST = RefinementSettings(steps=30, lr=0.05)


def test_yeh_lowers_loss_and_approaches_target(dcgan_nets):
    G, D = dcgan_nets
    target, hole, z0 = _problem(G, 3, 10, normal=False)
    calls = []
    res = inpaint_yeh(G, D, target, hole, z0, YEH_FAST,
                      progress=lambda step, loss: calls.append(step), progress_every=10)
    assert res.loss_history.shape == (30,) and res.final_loss.shape == (3,)
    assert res.final_loss.mean() < res.loss_history[0]
    assert set(res.final_terms) == {"context", "perceptual"}
    with torch.no_grad(), frozen(G):
        before = _known_l1(G(z0), target, hole)
    assert (_known_l1(res.images, target, hole) < before).all()
    assert calls == [0, 10, 20, 29]
    assert res.images.min() >= -1 and res.images.max() <= 1


def test_vitoria_lowers_loss_and_approaches_target(wgan_nets):
    G, critic = wgan_nets
    target, hole, z0 = _problem(G, 3, 11, normal=True)
    res = inpaint_vitoria(G, critic, target, hole, z0, VIT_FAST)
    assert res.final_loss.mean() < res.loss_history[0]
    assert set(res.final_terms) == {"context", "gradient", "prior"}
    with torch.no_grad(), frozen(G):
        before = _known_l1(G(z0), target, hole)
    assert (_known_l1(res.images, target, hole) < before).all()
    # beta = 0 ("without the gradient term") does not compute it
    no_grad_term = inpaint_vitoria(G, critic, target, hole, z0,
                                   dataclasses.replace(VIT_FAST, steps=2, gradient_weight=0.0))
    assert "gradient" not in no_grad_term.final_terms


def test_refinement_lowers_loss_and_approaches_target(dcgan_nets):
    G, D = dcgan_nets
    target, hole, z0 = _problem(G, 2, 12, normal=False)
    first = inpaint_yeh(G, D, target, hole, z0, dataclasses.replace(YEH_FAST, steps=5))
    blended = torch.where(hole > 0.5, first.images, target)  # stands in for Poisson blending
    res = refine_consensus(G, D, target, hole, first.z, blended, REF_FAST,
                           mu=REFINEMENT_MU["random-square"])
    assert res.final_loss.mean() < res.loss_history[0]
    assert set(res.final_terms) == {"global_consensus", "inpainting_consensus", "perceptual"}
    assert (_known_l1(res.images, target, hole) < _known_l1(first.images, target, hole)).all()


def test_batched_equals_per_image_loop(dcgan_nets, wgan_nets):
    # float64: the loop and the batch differ only by convolution rounding, which L1 kinks and
    # Adam's normalisation of tiny gradients can amplify over many fp32 steps (not here)
    G, D = (copy.deepcopy(net).double() for net in dcgan_nets)
    target, hole, z0 = _problem(G, 3, 13, normal=False)
    settings = dataclasses.replace(YEH_FAST, steps=20)
    batched = inpaint_yeh(G, D, target, hole, z0, settings)
    for k in range(3):
        single = inpaint_yeh(G, D, target[k:k + 1], hole[k:k + 1], z0[k:k + 1], settings)
        torch.testing.assert_close(batched.z[k:k + 1], single.z, atol=1e-12, rtol=0)
        torch.testing.assert_close(batched.final_loss[k:k + 1], single.final_loss,
                                   atol=1e-9, rtol=1e-12)

    G, critic = (copy.deepcopy(net).double() for net in wgan_nets)
    target, hole, z0 = _problem(G, 3, 14, normal=True)
    settings = dataclasses.replace(VIT_FAST, steps=20)
    batched = inpaint_vitoria(G, critic, target, hole, z0, settings)
    for k in range(3):
        single = inpaint_vitoria(G, critic, target[k:k + 1], hole[k:k + 1], z0[k:k + 1],
                                 settings)
        torch.testing.assert_close(batched.z[k:k + 1], single.z, atol=1e-12, rtol=0)


def test_hole_pixels_of_the_target_never_matter(dcgan_nets, wgan_nets):
    G, D = dcgan_nets
    target, hole, z0 = _problem(G, 2, 15, normal=False)
    noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(0)) * 5
    noisy = torch.where(hole > 0.5, noise, target)
    nan = torch.where(hole > 0.5, torch.nan, target)
    settings = dataclasses.replace(YEH_FAST, steps=5)
    clean = inpaint_yeh(G, D, target, hole, z0, settings)
    for damaged in (noisy, nan):
        other = inpaint_yeh(G, D, damaged, hole, z0, settings)
        assert torch.equal(clean.z, other.z) and torch.equal(clean.final_loss, other.final_loss)

    blended = torch.where(hole > 0.5, clean.images, target)
    ref = refine_consensus(G, D, target, hole, clean.z, blended, REF_FAST, mu=0.33)
    # the refinement reads target's known pixels and blended's hole pixels only
    other = refine_consensus(G, D, noisy, hole, clean.z, torch.where(hole > 0.5, blended, noise),
                             REF_FAST, mu=0.33)
    assert torch.equal(ref.z, other.z)

    G, critic = wgan_nets
    target, hole, z0 = _problem(G, 2, 16, normal=True)
    settings = dataclasses.replace(VIT_FAST, steps=5)
    clean = inpaint_vitoria(G, critic, target, hole, z0, settings)
    for fill in (noise, torch.full_like(noise, torch.nan)):
        other = inpaint_vitoria(G, critic, torch.where(hole > 0.5, fill, target), hole, z0,
                                settings)
        assert torch.equal(clean.z, other.z)


def test_z_stays_within_the_clip_range_and_nets_are_restored(wgan_nets):
    G, critic = wgan_nets
    target, hole, _ = _problem(G, 4, 17, normal=True)
    z0 = torch.randn(4, 16, generator=torch.Generator().manual_seed(3)) * 3  # far outside
    G.train()
    critic.eval()
    res = inpaint_vitoria(G, critic, target, hole, z0, dataclasses.replace(VIT_FAST, steps=3,
                                                                           lr=0.5))
    assert res.z.abs().max() <= 1.0 and (res.z.abs() == 1.0).any()
    assert G.training and not critic.training
    assert all(p.requires_grad and p.grad is None for p in G.parameters())
    critic.train()
    narrow = inpaint_vitoria(G, critic, target, hole, z0,
                             dataclasses.replace(VIT_FAST, steps=2, clip=(-0.25, 0.5)))
    assert narrow.z.min() >= -0.25 and narrow.z.max() <= 0.5

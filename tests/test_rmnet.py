"""R-MNet (paper 000): shapes and ranges, the reverse-mask operator (Eqs. 1-2), the
reverse-mask loss (Eq. 4) is not identically zero, WGAN weight clipping, the critic learning
rate, and one small batch overfits."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import pytest
import torch

from inpaintflow.models.common import StepContext, compose
from inpaintflow.models.rmnet import (PAPER_CRITIC_LR, Config, RMNetCritic, RMNetGenerator, RMNetRecipe, generator_loss,
                                      masked_image, masked_prediction, reverse_mask, reverse_mask_loss)
from inpaintflow.models.vgg import load_vgg19

CPU = StepContext(step=0, autocast=contextlib.nullcontext, device=torch.device("cpu"))


def _vgg():
    return load_vgg19(None, layers=("block3_conv3",), allow_random=True)


def _batch(size: int = 32, b: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.nn.functional.avg_pool2d(torch.rand(b, 3, size, size) * 2 - 1, 3, 1, 1)  # smooth
    masks = torch.zeros(b, 1, size, size)  # 1 = hole
    masks[:, :, size // 4: size // 2, size // 4: 3 * size // 4] = 1
    masks[1, :, -6:, :5] = 1
    return images, masks


# ---------------------------------------------------------------------------------------------
# shapes, ranges, compositing


def test_generator_shape_range_and_blindness_to_hole_content():
    torch.manual_seed(0)
    G = RMNetGenerator(Config.tiny()).eval()
    images, masks = _batch()
    pred = G(images, masks)
    assert pred.shape == (2, 3, 32, 32)
    assert pred.min() >= -1 and pred.max() <= 1
    # Eq. 1: G sees I_M = I * M only, so pixels inside the hole cannot change its output
    scrambled = torch.where(masks.bool(), torch.rand_like(images) * 2 - 1, images)
    assert torch.equal(G(scrambled, masks), pred)


def test_preview_keeps_known_pixels_bit_identical():
    torch.manual_seed(0)
    recipe = RMNetRecipe(Config.tiny(), vgg=_vgg())
    images, masks = _batch()
    out = recipe.preview(images, masks)
    assert out.shape == images.shape and out.min() >= -1 and out.max() <= 1
    known = ~masks.bool().expand_as(images)
    assert torch.equal(out[known], images[known])
    pred = recipe.nets["generator"].eval()(images, masks)
    assert torch.equal(out[~known], pred[~known])
    # the composite is I_M + I_Mpred (Eqs. 1-2), with M = 1 - hole
    M = 1 - masks
    torch.testing.assert_close(out, masked_image(images, M) + masked_prediction(pred, M), rtol=0, atol=0)


def test_reverse_mask_operator_closed_form():
    M = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])  # the paper's mask: 1 = known
    image = torch.tensor([[[[0.5, -0.25], [0.75, -1.0]]]])
    pred = torch.tensor([[[[0.1, 0.2], [0.3, 0.4]]]])
    assert torch.equal(reverse_mask(M), torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]]))  # M_r = 1 - M
    assert torch.equal(masked_image(image, M), torch.tensor([[[[0.5, 0.0], [0.0, -1.0]]]]))  # Eq. 1
    assert torch.equal(masked_prediction(pred, M), torch.tensor([[[[0.0, 0.2], [0.3, 0.0]]]]))  # Eq. 2
    assert torch.equal(compose(pred, image, 1 - M), masked_image(image, M) + masked_prediction(pred, M))


# ---------------------------------------------------------------------------------------------
# losses


def test_reverse_mask_loss_is_zero_only_when_the_hole_matches():
    torch.manual_seed(0)
    vgg = _vgg()
    phi = lambda x: vgg(x)["block3_conv3"]  # noqa: E731
    image, hole = _batch()
    M = 1 - hole
    noise = torch.rand_like(image) * 2 - 1

    def l_rm(pred):
        return reverse_mask_loss(phi(masked_prediction(pred, M)), phi(image * reverse_mask(M)))

    same_in_hole = torch.where(hole.bool(), image, noise)  # equal in the hole, wrong outside
    assert float(l_rm(same_in_hole)) == 0.0
    total, terms = generator_loss(pred=same_in_hole, image=image, known=M, features=phi, lam=0.4)
    assert float(terms["reverse_mask"]) == 0.0 and float(terms["perceptual"]) > 0
    wrong_in_hole = torch.where(hole.bool(), noise, image)  # right outside, wrong in the hole
    assert float(l_rm(wrong_in_hole)) > 0
    _, terms = generator_loss(pred=wrong_in_hole, image=image, known=M, features=phi, lam=0.4)
    assert float(terms["reverse_mask"]) > 0
    # a zero-weight term is not computed
    assert set(generator_loss(pred=image, image=image, known=M, features=phi, lam=0.0)[1]) == {"perceptual"}
    assert set(generator_loss(pred=image, image=image, known=M, features=phi, lam=1.0)[1]) == {"reverse_mask"}


# ---------------------------------------------------------------------------------------------
# the critic: weight clipping and learning rate


def _critic_params(recipe: RMNetRecipe) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in recipe.nets["critic"].parameters()])


def test_weight_clipping_and_critic_learning_rates():
    images, masks = _batch()
    torch.manual_seed(0)
    cfg = replace(Config.tiny(), n_critic=1)
    trains = RMNetRecipe(cfg, vgg=_vgg())
    before = _critic_params(trains)
    assert before.abs().max() <= cfg.clip_value  # clipped at construction
    trains.training_step(images, masks, CPU)
    after = _critic_params(trains)
    assert after.abs().max() <= cfg.clip_value  # clipped after the step
    assert (after - before).norm() / before.norm() > 1e-3  # the default lr trains the critic
    assert "not the paper's" in trains.critic_lr_note

    torch.manual_seed(0)
    frozen = RMNetRecipe(replace(cfg, critic_lr=PAPER_CRITIC_LR), vgg=_vgg())
    before = _critic_params(frozen)
    frozen.training_step(images, masks, CPU)
    assert (_critic_params(frozen) - before).norm() / before.norm() < 1e-9  # the paper's 1e-12
    assert "in effect frozen" in frozen.critic_lr_note


# ---------------------------------------------------------------------------------------------
# training


def test_overfits_one_small_batch():
    """Tiny config, 32x32, batch 2, fixed masks, G lr raised to 1e-3 for the test: the generator's
    feature loss (1 - lam) L_p + lam L_rm falls below half its initial value in 25 steps."""
    torch.manual_seed(0)
    cfg = replace(Config.tiny(), lr=1e-3, n_critic=1)
    recipe = RMNetRecipe(cfg, vgg=_vgg())
    images, masks = _batch()
    history = []
    for step in range(25):
        losses = recipe.training_step(images, masks, replace(CPU, step=step))
        assert all(torch.isfinite(v) for v in losses.values())
        history.append(float((1 - cfg.lam) * losses["perceptual"] + cfg.lam * losses["reverse_mask"]))
    print(f"feature loss {history[0]:.4g} -> {history[-1]:.4g} ({history[-1] / history[0]:.2f}x)")
    assert history[-1] < 0.5 * history[0], history
    assert recipe.preview(images, masks).shape == images.shape


# ---------------------------------------------------------------------------------------------
# configuration, parameter counts, recipe interface


def test_parameter_counts_of_the_paper_config():
    cfg = Config()
    g, d = RMNetGenerator(cfg).num_parameters(), RMNetCritic(cfg).num_parameters()
    print(f"R-MNet paper config (256x256): generator {g:,}, critic {d:,} parameters")
    assert g == 11_304_131 and d == 1_683_841
    tiny = Config.tiny()
    assert RMNetGenerator(tiny).num_parameters() == 177_515
    assert RMNetCritic(tiny).num_parameters() == 24_785


def test_config_and_recipe_interface():
    cfg = Config()
    assert cfg.lam == 0.4 and cfg.critic_lr != PAPER_CRITIC_LR and cfg.train_mask_bin == (0.01, 0.6)
    assert cfg.lr == 1e-4 and cfg.betas[0] == 0.9 and cfg.batch_size == 5 and cfg.image_size == 256
    with pytest.raises(ValueError, match="image_size.*40"):
        RMNetGenerator(replace(Config.tiny(), image_size=40))
    with pytest.raises(ValueError, match="image_size"):
        RMNetCritic(Config.tiny())(torch.zeros(1, 3, 64, 64))  # built for 32x32
    with pytest.raises(ValueError, match="lam"):
        RMNetRecipe(replace(Config.tiny(), lam=1.5), vgg=_vgg())
    with pytest.raises(ValueError, match="block3_conv3"):
        RMNetRecipe(Config.tiny(), vgg=None)
    with pytest.raises(ValueError, match="block3_conv3"):
        RMNetRecipe(Config.tiny(), vgg=load_vgg19(None, layers=("pool1",), allow_random=True))
    torch.manual_seed(0)
    recipe = RMNetRecipe(Config.tiny(), vgg=_vgg())
    assert recipe.mask_families == ("free-form",)
    assert set(recipe.nets) == set(recipe.optimizers) == {"generator", "critic"}
    assert recipe.optimizers["critic"].param_groups[0]["lr"] == Config.tiny().critic_lr

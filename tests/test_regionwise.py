"""Region-wise GAN (paper 003, models/regionwise.py): shapes, compositing, the region-wise
convolution invariant (Eq. 1), closed forms of Eqs. 3-6, spectral norm, the l3 warm-up, and
overfitting one batch."""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F

from inpaintflow.models.common import StepContext
from inpaintflow.models.regionwise import (CA_LAYERS, Config, Discriminator, GenConv, Generator, Layer,
                                           RegionwiseConv2d, RegionwiseRecipe, adversarial_discriminator_loss,
                                           adversarial_generator_loss, correlation_loss, gram_matrix,
                                           pairwise_correlation, resize_hole_mask, style_loss)

VGG_LAYERS = ("pool1", "pool2", "pool3")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def random_vgg():
    from inpaintflow.models.vgg import load_vgg19

    torch.manual_seed(0)
    return load_vgg19(None, layers=VGG_LAYERS, allow_random=True)


def ctx(step: int) -> StepContext:
    return StepContext(step=step, autocast=contextlib.nullcontext, device=torch.device("cpu"))


def batch(b: int = 2, size: int = 32, smooth: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Images in [-1, 1] and a rectangular hole (1 = hole) plus a few scattered hole pixels."""
    if smooth:
        images = F.interpolate(torch.rand(b, 3, size // 4, size // 4) * 2 - 1, size=size,
                               mode="bilinear", align_corners=False)
    else:
        images = torch.rand(b, 3, size, size) * 2 - 1
    masks = torch.zeros(b, 1, size, size)
    masks[:, :, size // 4:size // 2 + 4, size // 5:size // 2 + 6] = 1
    masks[:, :, size - 3, 2] = 1
    return images, masks


def no_vgg_config(**kw) -> Config:
    return Config(**{**asdict(Config.tiny()), "lambda_correlation": 0.0, "lambda_style": 0.0, **kw})


# ---------------------------------------------------------------------------------------------
# shapes, ranges, compositing


def test_generator_and_discriminator_shapes_and_ranges():
    torch.manual_seed(0)
    cfg = Config.tiny()
    G, D = Generator(cfg=cfg), Discriminator(cfg=cfg)
    images, masks = batch(3)
    p1, p2 = G(images, masks)
    for p in (p1, p2):
        assert p.shape == (3, 3, 32, 32)
        assert p.min() >= -1 and p.max() <= 1
    scores = D(p2, masks)
    assert scores.shape == (3, cfg.d_channels[-1], 4, 4)  # 3 stride-2 layers: 32 -> 4


def test_paper_config_builds_for_256_and_rejects_sizes_it_cannot_pad():
    cfg = Config()
    assert cfg.image_size == 256 and cfg.lr == 1e-4 and cfg.alpha == 0.01
    assert (cfg.lambda_correlation, cfg.lambda_style) == (1e-5, 1e-3)
    Generator(cfg=cfg)  # builds
    with pytest.raises(ValueError, match="conv10_atrous.*16"):
        Generator(cfg=Config(image_size=64))  # dilation 16 on a 16 px bottleneck
    with pytest.raises(ValueError, match="image_size 200"):
        Discriminator(cfg=Config(image_size=200))
    with pytest.raises(ValueError, match="regionwise_layers"):
        Generator(cfg=Config(regionwise_layers=("conv99",)))


def test_preview_keeps_known_pixels_and_ignores_ground_truth_in_holes(random_vgg):
    torch.manual_seed(0)
    recipe = RegionwiseRecipe(Config.tiny(), vgg=random_vgg)
    images, masks = batch(2)
    out = recipe.preview(images, masks)
    assert out.shape == images.shape and out.min() >= -1 and out.max() <= 1
    known = (masks == 0).expand_as(images)
    assert torch.equal(out[known], images[known])  # exact: no arithmetic on known pixels
    # the generator zeroes the holes itself: what lies under them cannot leak
    other = torch.where(masks.bool(), torch.rand_like(images) * 2 - 1, images)
    assert torch.equal(recipe.preview(other, masks), out)


def test_config_survives_json_and_engine_overrides():
    cfg = Config.tiny()
    assert Config(**json.loads(json.dumps(asdict(cfg)))) == cfg  # checkpoints store it as JSON
    from inpaintflow.tasks.train.engine import build_config

    yaml_layers = [list(row) for row in CA_LAYERS]  # as a params.yaml override would give them
    built = build_config("regionwise", True, {"d_channels": [8, 16, 16], "adv_warmup_steps": 7,
                                              "layers": yaml_layers})
    assert built.d_channels == (8, 16, 16) and built.adv_warmup_steps == 7
    assert built.layers == CA_LAYERS and all(isinstance(row, Layer) for row in built.layers)


# ---------------------------------------------------------------------------------------------
# region-wise convolution, Eq. 1


def _two_layer_stack() -> list[GenConv]:
    row = Layer("rw", 1, 3)
    return [GenConv(in_ch=3, out_ch=4, row=row, regionwise=True, activation="elu"),
            GenConv(in_ch=4, out_ch=4, row=row, regionwise=True, activation="elu")]


def _run(stack, x, hole):
    for layer in stack:
        x = layer(x, hole)
    return x


def test_regionwise_conv_missing_filters_act_only_where_the_hole_reaches():
    torch.manual_seed(0)
    stack = _two_layer_stack()
    x = torch.randn(2, 3, 32, 32)
    hole = torch.zeros(2, 1, 32, 32)
    hole[:, :, :8, :8] = 1  # top-left corner
    with torch.no_grad():
        before = _run(stack, x, hole)
        for layer in stack:  # perturb only W^, b^ (missing regions)
            layer.conv.missing.weight.add_(torch.randn_like(layer.conv.missing.weight))
            layer.conv.missing.bias.add_(1.0)
        after = _run(stack, x, hole)
    # two 3x3 layers: the hole reaches 2 px further; beyond that everything is known
    assert torch.equal(after[:, :, 10:, :], before[:, :, 10:, :])
    assert torch.equal(after[:, :, :, 10:], before[:, :, :, 10:])
    changed = (after - before).abs().amax(dim=1)  # (B, H, W)
    assert (changed[:, :8, :8] > 0).all()  # at every hole location

    # and symmetrically: the existing-region filters do not act deep inside the hole
    with torch.no_grad():
        for layer in stack:
            layer.conv.known.weight.add_(torch.randn_like(layer.conv.known.weight))
        again = _run(stack, x, hole)
    assert torch.equal(again[:, :, :6, :6], after[:, :, :6, :6])
    assert not torch.equal(again[:, :, 10:, 10:], after[:, :, 10:, 10:])


def test_mask_resized_by_max_pool_marks_any_cell_holding_a_hole_pixel():
    hole = torch.zeros(1, 1, 8, 8)
    hole[0, 0, 5, 2] = 1
    small = resize_hole_mask(hole, (4, 4))
    expected = torch.zeros(1, 1, 4, 4)
    expected[0, 0, 2, 1] = 1
    assert torch.equal(small, expected)
    assert resize_hole_mask(hole, (8, 8)) is hole
    # a strided region-wise conv picks W^ exactly at that cell
    conv = RegionwiseConv2d(1, 1, Layer("down", 1, 3, stride=2))
    x = torch.randn(1, 1, 8, 8)
    with torch.no_grad():
        out = conv(x, hole)
        assert torch.equal(out[small.bool()], conv.missing(x)[small.bool()])
        assert torch.equal(out[~small.bool()], conv.known(x)[~small.bool()])


# ---------------------------------------------------------------------------------------------
# losses: closed forms


def test_correlation_loss_matches_eqs_3_and_4_by_hand():
    # c = 2 channels, n = 2 positions: Psi_1 = (1, 3), Psi_2 = (2, 4)
    feats = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)
    f = pairwise_correlation(feats)  # Eq. 3
    assert torch.equal(f, torch.tensor([[[10.0, 14.0], [14.0, 20.0]]]))
    assert correlation_loss(feats, feats) == 0
    # Eq. 4 against zeros: sigma * (10 + 14 + 14 + 20), sigma = 1 / c^2
    assert correlation_loss(feats, torch.zeros_like(feats)).item() == pytest.approx(58 / 4)
    other = feats + 0.1 * torch.randn(1, 2, 1, 2)
    assert correlation_loss(other, feats) > 0
    # batch: mean over images of the per-image sums
    two = torch.cat([feats, 2 * feats])  # f scales by 4
    assert correlation_loss(two, torch.zeros_like(two)).item() == pytest.approx((58 + 4 * 58) / 4 / 2)


def test_style_loss_gram_matrix_matches_eq_5_by_hand():
    feats = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)  # c=2, h=1, w=2
    assert torch.equal(gram_matrix(feats), torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]))
    zero = {"pool1": torch.zeros_like(feats)}
    # delta_p = 1 / (c h w) = 1/4; sum |G| = 52
    assert style_loss({"pool1": feats}, zero, ("pool1",)).item() == pytest.approx(13.0)
    two_layers = {"pool1": feats, "pool2": 2 * feats}
    zeros = {k: torch.zeros_like(v) for k, v in two_layers.items()}
    assert style_loss(two_layers, zeros, ("pool1", "pool2")).item() == pytest.approx(13.0 + 4 * 13.0)
    assert style_loss(two_layers, two_layers, ("pool1", "pool2")) == 0


def test_adversarial_losses_follow_eq_6_with_alpha_on_the_ground_truth_term():
    target = torch.tensor([[[[1.0, 0.0], [0.5, 0.0]]]])  # hole fraction per patch
    d_real = torch.zeros(1, 2, 2, 2)
    d_fake = torch.full((1, 2, 2, 2), 0.25)
    # D: alpha ||m - D(real)||_1 + ||D(fake1)||_1 + ||D(fake2)||_1 (m broadcast over 2 channels)
    assert adversarial_discriminator_loss(d_real, d_fake, d_fake, target, alpha=0.01).item() == \
        pytest.approx(0.01 * 2 * 1.5 + 2 * 8 * 0.25)
    # G: ||m - D(fake1)||_1 + ||m - D(fake2)||_1; zero when fakes score like real patches
    per_channel = 0.75 + 0.25 + 0.25 + 0.25  # |m - 0.25| over the 4 patches
    assert adversarial_generator_loss(d_fake, d_fake, target).item() == pytest.approx(2 * 2 * per_channel)
    label = target.expand(1, 2, 2, 2)
    assert adversarial_generator_loss(label, label, target) == 0


# ---------------------------------------------------------------------------------------------
# discriminator, recipe


def test_every_discriminator_conv_is_spectrally_normalised():
    from torch.nn.utils import parametrize

    D = Discriminator(cfg=Config())
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == len(Config().d_channels)
    for conv in convs:
        assert parametrize.is_parametrized(conv, "weight")
        assert any("SpectralNorm" in type(p).__name__ for p in conv.parametrizations.weight)
    # after the re-init the power iteration has re-converged: sigma(W / sigma) ~ 1
    conv = convs[1]
    sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
    assert sigma.item() == pytest.approx(1.0, rel=0.05)


def test_recipe_interface_and_paper_optimiser(random_vgg):
    recipe = RegionwiseRecipe(Config(), vgg=random_vgg)
    assert set(recipe.nets) == {"generator", "discriminator", "vgg"}
    assert not any(p.requires_grad for p in recipe.nets["vgg"].parameters())
    for opt in recipe.optimizers.values():
        assert opt.defaults["lr"] == 1e-4 and opt.defaults["betas"] == (0.5, 0.9)
    from inpaintflow.tasks.masks.generators import FAMILIES

    assert recipe.mask_families == ("regionwise-contiguous", "regionwise-discontiguous")
    assert all(f in FAMILIES for f in recipe.mask_families)
    assert Config().train_mask_bin == (0.0, 0.4)


def test_vgg_is_required_only_for_the_feature_losses():
    with pytest.raises(ValueError, match="VGG-19 features: pass vgg="):
        RegionwiseRecipe(Config.tiny(), vgg=None)
    recipe = RegionwiseRecipe(no_vgg_config(), vgg=None)
    assert "vgg" not in recipe.nets
    losses = recipe.training_step(*batch(2), ctx(0))
    assert set(losses) == {"g_total", "reconstruction"}  # zero-weight terms are not computed


def test_adversarial_term_and_discriminator_updates_start_after_warmup():
    torch.manual_seed(0)
    recipe = RegionwiseRecipe(no_vgg_config(adv_warmup_steps=2), vgg=None)
    D = recipe.nets["discriminator"]
    calls = []
    D.register_forward_hook(lambda *_: calls.append(1))
    images, masks = batch(2)

    def d_state():
        return [p.detach().clone() for p in D.parameters()]

    start = d_state()
    for step in (0, 1):
        losses = recipe.training_step(images, masks, ctx(step))
        assert "adversarial" not in losses and "d" not in losses
    assert not calls  # D never called during the warm-up
    assert all(torch.equal(a, b) for a, b in zip(start, d_state()))

    losses = recipe.training_step(images, masks, ctx(2))
    assert {"adversarial", "d"} <= set(losses)
    assert len(calls) == 2  # one call for G's term (2B images), one for D's update (3B)
    assert losses["g_total"].item() == pytest.approx(
        losses["reconstruction"].item() + losses["adversarial"].item(), rel=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(start, d_state()))  # D was updated


def test_overfits_one_batch(random_vgg):
    """Tiny config, random-init VGG, lr raised from the paper's 1e-4 to 1e-3 so that 50 steps
    suffice: the generator loss (L_r + l1 L_c + l2 L_s) falls below 0.35x its initial value on
    one fixed batch (measured 0.13-0.19x over seeds; 0.47x in 80 steps at lr 1e-4)."""
    torch.manual_seed(0)
    cfg = Config(**{**asdict(Config.tiny()), "adv_warmup_steps": 1000, "lr": 1e-3})
    recipe = RegionwiseRecipe(cfg, vgg=random_vgg)
    images, masks = batch(2, smooth=True)
    history = [recipe.training_step(images, masks, ctx(step)) for step in range(50)]
    assert {"correlation", "style"} <= set(history[0])
    first, last = history[0]["g_total"].item(), history[-1]["g_total"].item()
    assert last < 0.35 * first, (first, last)

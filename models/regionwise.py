"""Region-wise GAN for large missing areas (paper 003).

Paper
    Ma, Liu, Bai, Wang, Liu, Tao, Hancock, "Region-wise Generative Adversarial Image
    Inpainting for Large Missing Areas" (extends their IJCAI 2019 "RED" paper). Sections 3.1-3.5
    and "Implementation": a two-stage generator (semantic-inferring network with region-wise
    convolutions, Eq. 1, then a global-perceiving network), a region-wise patch discriminator
    with spectral norm, and the loss L = L_r + l1 L_c + l2 L_s + l3 L_a (Eq. 7) with Eqs. 2-6.
Reference code: vickyFox/Region-wise-Inpainting (TensorFlow 1: ``inpaint_model.py``,
``region_conv.py``, ``inpaint_ops.py``, ``vgg/vgg16.py``, ``train.py``), which builds on the
coarse network of Contextual Attention (CA; Yu et al. 2018, JiahuiYu/generative_inpainting).
Tables reproduced: the "ours" columns of Table 2 (contiguous masks) and Table 3
(discontiguous masks): CelebA-HQ, Paris StreetView, Places2, hole-ratio bins 0-10% .. 40-50%.

Architecture (paper config, 256x256, c = ``base_channels`` = 32; ``CA_LAYERS`` below)

    E-D  in: 3 RGB + 1 mask -> conv1 5x5 c -> conv2 /2 2c -> conv3 2c -> conv4 /2 4c
         -> conv5 4c -> conv6 4c -> conv7..10 dilated 2, 4, 8, 16 4c
         -> conv11 [+conv6] 4c -> conv12 [+conv5] 4c -> conv13 x2 [+conv4] 2c
         -> conv14 [+conv3] 2c -> conv15 x2 [+conv2] c -> conv16 [+conv1] c/2 -> conv17 3, clip
         ("[+convK]": skip link, concatenated before the layer; "x2": nearest upsample first)
    G    semantic-inferring E-D (decoder rows conv11..conv17 region-wise, Eq. 1) on
         I_g (.) M || M  ->  I_p1;  I_c1 = I_g (.) M + I_p1 (.) (1 - M)
         global-perceiving E-D (all plain convs) on I_c1 || M  ->  I_p2
    D    input I (.) (1 - M) || M (4 ch) -> 6 x [SN conv 5x5 /2 -> LeakyReLU(0.2)]
         64, 128, 256, 256, 256, 256 channels: a (B, 256, 4, 4) map of patch scores

Mask convention. The paper's M is 1 = known, 0 = missing (Sec. 3.1); the project's masks are
1 = hole. Both networks take the project's hole mask and convert with
``conventions.to_known_is_one`` at their edge, where they build the paper's inputs
(``Generator.forward``, ``Discriminator.forward``); everything else uses the hole mask.

Choices made where the paper is silent (and where its reference code was followed or not)
    * Layer layout: CA's coarse network without contextual attention (paper: "based on the
      encoder-decoder architecture of CA, discarding its contextual attention module"), with
      the U-Net skip links of the reference code's GPNet, the same table for both stages. The
      reference SINet has one more 3x3 layer at the end and no conv1 skip; not kept.
    * Which layers are region-wise: every decoder row of the semantic-inferring network
      (conv11..conv17; the paper: "decoder D_s composing of the proposed region-wised
      convolutional layers"). The reference code makes only conv13..conv15 region-wise;
      ``Config.regionwise_layers`` sets this.
    * Region-wise convolution, Eq. 1, literally: two convolutions over the same input,
      ``W`` for existing and ``W^`` for missing cells, the output taken per location from one
      or the other (``torch.where``). The reference code instead masks the *inputs* (skip
      features only to the known branch, decoder features only to the missing one) and sums
      one convolution over the concatenation.
    * Mask resizing per layer (paper: "masks which are resized proportionally"): max pooling
      to the layer's output size, so a cell is "missing" if any hole pixel falls in it and the
      existing-region filters never produce a cell that covers a hole pixel (reference: nearest
      neighbour).
    * Activations: ELU in the generator (CA's and the reference code's; the paper's "leaky
      ReLU used as activation function" sits in its sentence on the patch discriminator, and the
      reference code uses leaky ReLU 0.2 only there); ``Config.activation`` can switch to leaky
      ReLU. The output layer has no activation and is clipped to [-1, 1] (CA, reference).
    * Padding: reflect (reference code), hence the image size must keep every dilated
      layer's padding below its feature size (checked; ``Config.tiny`` drops conv9, conv10).
    * Discriminator: the reference code's six 5x5 stride-2 SN convs with leaky ReLU after every
      layer, the last included, and no 1-channel head: each of the 256 output channels is a
      patch score (kept, since the loss balance l3 = 1 was tuned on it). Input: the image's
      missing region and the paper's M concatenated ("we extract the missing regions of each
      image and concatenate the mask"; "concatenate mask M ... better than (1 - M)").
    * Adversarial loss, Eq. 6: the reference code's default form (``adv_type=' '``), least
      absolute deviations to a patch label map m = the hole fraction of each patch. D
      minimises  alpha ||m - D(I_g)||_1 + ||D(I_p1)||_1 + ||D(I_p2)||_1  (alpha = 0.01 weights
      the *ground-truth* term: "heavy penalization for inferred contents"); G minimises
      ||m - D(I_p1)||_1 + ||m - D(I_p2)||_1 ("generated patches will be considered as real and
      thus labeled as 1"). m: the area fraction of hole pixels per patch (reference: a
      nearest-neighbour sample of the mask, which at 4x4 picks 16 arbitrary pixels).
    * D sees I_p1 and I_p2 themselves (Eq. 6), detached for its own update; its update uses
      the outputs of the same forward as G's update, i.e. both nets step on one forward as in
      the reference (one ``sess.run`` for both optimisers). L_a and L_r of the second stage
      reach the first through I_c1 (no stop-gradient, as the reference).
    * D's 5x5 stride-2 convs pad 2 on each side (TF 'SAME' pads 1 before, 2 after: same output
      size, the grid shifted by one pixel; no weights are ported).
    * Reductions: ||.||_1 and the sums of Eqs. 4-6 are sums over all entries of one image, and
      every term is averaged over the batch (the reference sums over the batch too, i.e. all
      terms B times larger; their ratios, which l1, l2, l3 and alpha were tuned on, are equal).
    * Normalisers: sigma (Eq. 4) = 1 / c^2 and delta_p (Eq. 5) = 1 / (c_p h_p w_p), the
      reference code's ``new_gram`` and ``gram_matrix`` (the paper names them only "by position"
      and "by channel").
    * L_c uses I_c1 and L_s uses I_c2 (Eqs. 4, 5; the reference code too; Algorithm 1 line 9
      says I_p1, I_p2). Features come from the frozen VGG-19 the engine passes (the paper says
      "pre-trained VGG", the reference code loads VGG-16, whose pool1/pool2 have the same
      layout); the images are not resized to 224 as the reference code's VGG does, and the
      losses are computed in float32 outside autocast.
    * Schedule (l3 = 0 for 20 epochs, then 1 for 9): ``adv_warmup_steps`` counts optimiser
      steps; before it L_a is not computed and D is neither called nor updated. Turning epochs
      into steps is the engine's (params') job: warm-up = 20/29 of the run. The default,
      67,500, is 20 epochs of CelebA-HQ's 27,000 training images at batch 8 (reference default;
      the paper profile's 97,875 steps are the 29 epochs). The reference trains the two phases
      as two runs (``--stage 0``, then ``--stage 1`` restoring G and starting a fresh D), which
      this single run with a warm-up reproduces. ``Config.tiny`` warms up for 20 steps.
    * Demo only (0 in the paper config): before ``recon_warmup_steps`` Eq. 2's L_r is the only
      term (no VGG pass, no D): a CPU demo trains for minutes, and the VGG terms cost ~4x the
      tiny generator at 64 px. The demo profile also scales l1 and l2 down: on 0-255 Keras VGG
      inputs the correlation and Gram terms are ~1e7-1e8, so the paper's 1e-5 and 1e-3 would
      hand the last steps to the style term alone.
    * Adam: lr 1e-4 (paper) for G and D, betas (0.5, 0.9) (reference ``train.py``; the paper
      gives none). The reference passes alpha = 0.001 by its command line default; the
      paper's 0.01 is kept.
    * Training masks: both region-wise families (contiguous, discontiguous; the paper wants one
      model for both), hole ratio in [0, 0.4) ("varies from 0 to 40% in the training").
    * Init: Xavier-uniform weights, zero biases (TF's default in the reference). The SN
      power-iteration vectors are re-converged after the re-init.
    * The frozen VGG rides in ``RegionwiseRecipe.nets["vgg"]`` so that the engine moves it to
      the device (no trainable parameter: never wrapped in DDP; its weights are in checkpoints).

Parameter counts (``count_parameters``): paper config G 4,609,897 (semantic-inferring
2,733,926, which includes the second filter set of its region-wise rows; global-perceiving
1,875,971), D 5,946,816; tiny config G 253,217 (153,502 + 99,715), D 40,080.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from inpaintflow.conventions import to_known_is_one
from inpaintflow.models.common import StepContext, compose, count_parameters, masked_input, sn_conv2d

# ---------------------------------------------------------------------------------------------
# helpers


class Layer(NamedTuple):
    """One row of the encoder-decoder table."""

    name: str
    width: float | None  # output channels = width x base_channels; None = the 3 RGB channels
    kernel: int
    stride: int = 1
    dilation: int = 1
    upsample: bool = False  # nearest x2 before the conv (CA's gen_deconv)
    skip: str | None = None  # skip link: this earlier row's output is concatenated to the input


# CA's coarse network (Yu et al. 2018) without attention, with the reference code's skip links
CA_LAYERS: tuple[Layer, ...] = (
    Layer("conv1", 1, 5),
    Layer("conv2_down", 2, 3, stride=2),
    Layer("conv3", 2, 3),
    Layer("conv4_down", 4, 3, stride=2),
    Layer("conv5", 4, 3),
    Layer("conv6", 4, 3),
    Layer("conv7_atrous", 4, 3, dilation=2),
    Layer("conv8_atrous", 4, 3, dilation=4),
    Layer("conv9_atrous", 4, 3, dilation=8),
    Layer("conv10_atrous", 4, 3, dilation=16),
    Layer("conv11", 4, 3, skip="conv6"),
    Layer("conv12", 4, 3, skip="conv5"),
    Layer("conv13_up", 2, 3, upsample=True, skip="conv4_down"),
    Layer("conv14", 2, 3, skip="conv3"),
    Layer("conv15_up", 1, 3, upsample=True, skip="conv2_down"),
    Layer("conv16", 0.5, 3, skip="conv1"),
    Layer("conv17_rgb", None, 3),
)
DECODER_LAYERS: tuple[str, ...] = ("conv11", "conv12", "conv13_up", "conv14", "conv15_up",
                                   "conv16", "conv17_rgb")
ACTIVATIONS = {"elu": nn.ELU, "leaky_relu": lambda: nn.LeakyReLU(0.2)}
VGG_POOLS = ("pool1", "pool2", "pool3")


@dataclass
class Config:
    image_size: int = 256  # paper: "Input images are resized to 256x256"
    base_channels: int = 32  # CA's cnum
    layers: tuple[Layer, ...] = CA_LAYERS
    regionwise_layers: tuple[str, ...] = DECODER_LAYERS  # rows of the semantic-inferring net
    activation: str = "elu"  # generator; CA and the reference code (see module docstring)
    d_channels: tuple[int, ...] = (64, 128, 256, 256, 256, 256)  # reference RW_discriminator
    d_kernel: int = 5
    d_leaky_slope: float = 0.2
    lr: float = 1e-4  # paper, G and D
    betas: tuple[float, float] = (0.5, 0.9)  # reference train.py (the paper gives none)
    lambda_correlation: float = 1e-5  # l1, Eq. 7
    lambda_style: float = 1e-3  # l2, Eq. 7
    lambda_adv: float = 1.0  # l3 after the warm-up (0 before it), Eq. 7
    alpha: float = 0.01  # Eq. 6, weight of the ground-truth term
    adv_warmup_steps: int = 67_500  # 20 epochs x 27,000 CelebA-HQ images / batch 8
    recon_warmup_steps: int = 0  # demo only: Eq. 2's L_r alone (no VGG terms, no D) before this step
    correlation_layer: str = "pool2"  # paper: "only feature maps extracted by pool2"
    style_layers: tuple[str, ...] = VGG_POOLS  # paper: "pool1, pool2, and pool3 together"
    mask_families: tuple[str, ...] = ("regionwise-contiguous", "regionwise-discontiguous")
    train_mask_bin: tuple[float, float] | None = (0.0, 0.4)  # "varies from 0 to 40%"

    def __post_init__(self) -> None:  # YAML and JSON give lists where the config holds tuples
        self.layers = tuple(Layer(*row) for row in self.layers)
        for name in ("regionwise_layers", "d_channels", "betas", "style_layers", "mask_families"):
            setattr(self, name, tuple(getattr(self, name)))
        if self.train_mask_bin is not None:
            self.train_mask_bin = tuple(self.train_mask_bin)

    @classmethod
    def tiny(cls) -> Config:
        """32x32, c = 8, no conv9/conv10 (an 8x8 bottleneck cannot reflect-pad 8 or 16)."""
        return cls(image_size=32, base_channels=8,
                   layers=tuple(row for row in CA_LAYERS
                                if row.name not in ("conv9_atrous", "conv10_atrous")),
                   d_channels=(16, 32, 32), adv_warmup_steps=20)


def layer_resolutions(layers: tuple[Layer, ...], size: int) -> list[int]:
    """The input size (after any upsampling) of every row's convolution at image size ``size``;
    a ValueError naming the row when a stride does not divide, a dilated reflect padding is
    not smaller than the feature map, or a skip link joins maps of different sizes."""
    sizes, out_size, res = [], {}, size
    for row in layers:
        if row.skip is not None:
            if row.skip not in out_size:
                raise ValueError(f"layers: {row.name} skips from {row.skip!r}, not an earlier row")
            if out_size[row.skip] != res:
                raise ValueError(f"layers: {row.name} joins a {res}px map with {row.skip}'s "
                                 f"{out_size[row.skip]}px map at image size {size}")
        if row.upsample:
            res *= 2
        pad = row.dilation * (row.kernel - 1) // 2
        if pad >= res:
            raise ValueError(f"image size {size}: {row.name} reflect-pads {pad} px on a {res} px "
                             f"map; use a larger image or drop the dilated row")
        if res % row.stride:
            raise ValueError(f"image size {size}: {row.name}'s stride {row.stride} does not "
                             f"divide its {res} px input")
        sizes.append(res)
        res //= row.stride
        out_size[row.name] = res
    if res != size:
        raise ValueError(f"layers: the table maps {size} px to {res} px; it must return to {size}")
    return sizes


def resize_hole_mask(hole: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 1, H, W) hole mask -> (B, 1, h, w): a cell is missing if any hole pixel lies in it
    (max pooling; identity at full size)."""
    if tuple(hole.shape[-2:]) == tuple(size):
        return hole
    return F.adaptive_max_pool2d(hole, size)


def patch_targets(hole: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 1, H, W) hole mask -> (B, 1, h, w) hole fraction of each discriminator patch: the
    label m of real patches in Eq. 6 (1 = all inferred, 0 = all existing)."""
    return F.adaptive_avg_pool2d(hole.float(), size)


def _l1_per_image(x: torch.Tensor) -> torch.Tensor:
    """||x||_1 summed over each image's entries, averaged over the batch."""
    return x.float().abs().flatten(1).sum(1).mean()


# ---------------------------------------------------------------------------------------------
# helpers: the losses (pure functions, computed in float32)


def reconstruction_loss(p1: torch.Tensor, p2: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 2: L_r = ||I_p1 - I_g||_1 + ||I_p2 - I_g||_1 (whole images, both stages)."""
    return _l1_per_image(p1.float() - target) + _l1_per_image(p2.float() - target)


def pairwise_correlation(features: torch.Tensor) -> torch.Tensor:
    """Eq. 3: f_ij = Psi_i^T Psi_j for all positions i, j of a (B, c, h, w) feature map ->
    (B, n, n), n = h w."""
    psi = rearrange(features.float(), "b c h w -> b c (h w)")
    return torch.einsum("bci,bcj->bij", psi, psi)


def correlation_loss(features: torch.Tensor, target_features: torch.Tensor) -> torch.Tensor:
    """Eq. 4: L_c = sigma sum_ij |f_ij(I_c1) - f_ij(I_g)|, sigma = 1 / c^2 (reference code)."""
    c = features.shape[1]
    return _l1_per_image(pairwise_correlation(features) - pairwise_correlation(target_features)) / c**2


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Phi^T Phi of Eq. 5 for a (B, c, h, w) feature map -> (B, c, c), unnormalised."""
    phi = rearrange(features.float(), "b c h w -> b c (h w)")
    return torch.einsum("bcn,bdn->bcd", phi, phi)


def style_loss(features: dict[str, torch.Tensor], target_features: dict[str, torch.Tensor],
               layers: tuple[str, ...]) -> torch.Tensor:
    """Eq. 5: L_s = sum_p delta_p ||G_p(I_c2) - G_p(I_g)||_1, delta_p = 1 / (c_p h_p w_p)."""
    total = features[layers[0]].new_zeros((), dtype=torch.float32)
    for p in layers:
        c, h, w = features[p].shape[1:]
        delta = 1.0 / (c * h * w)
        total = total + delta * _l1_per_image(gram_matrix(features[p]) - gram_matrix(target_features[p]))
    return total


def adversarial_generator_loss(d_fake1: torch.Tensor, d_fake2: torch.Tensor,
                               target: torch.Tensor) -> torch.Tensor:
    """Eq. 6, G's side: the inferred patches of both stages labelled real,
    ||m - D(I_p1)||_1 + ||m - D(I_p2)||_1 (m broadcasts over D's channels)."""
    return _l1_per_image(target - d_fake1.float()) + _l1_per_image(target - d_fake2.float())


def adversarial_discriminator_loss(d_real: torch.Tensor, d_fake1: torch.Tensor,
                                   d_fake2: torch.Tensor, target: torch.Tensor,
                                   alpha: float) -> torch.Tensor:
    """Eq. 6, D's side: alpha ||m - D(I_g)||_1 + ||D(I_p1)||_1 + ||D(I_p2)||_1."""
    return (alpha * _l1_per_image(target - d_real.float()) + _l1_per_image(d_fake1)
            + _l1_per_image(d_fake2))


Features = dict[str, torch.Tensor]  # VGG layer name -> (B, c, h, w)


def generator_loss(*, image: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor,
                   feats_c1: Features | None, feats_c2: Features | None, feats_gt: Features | None,
                   d_fake: tuple[torch.Tensor, torch.Tensor] | None, d_target: torch.Tensor | None,
                   cfg: Config, lambda_adv: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 7: L = L_r + l1 L_c + l2 L_s + l3 L_a -> (total, {term: unweighted value}).
    A zero-weight term is not computed (and its inputs may be None)."""
    terms = {"reconstruction": reconstruction_loss(p1, p2, image)}  # Eq. 2
    total = terms["reconstruction"]
    if cfg.lambda_correlation:
        layer = cfg.correlation_layer
        terms["correlation"] = correlation_loss(feats_c1[layer], feats_gt[layer])  # Eqs. 3-4
        total = total + cfg.lambda_correlation * terms["correlation"]
    if cfg.lambda_style:
        terms["style"] = style_loss(feats_c2, feats_gt, cfg.style_layers)  # Eq. 5
        total = total + cfg.lambda_style * terms["style"]
    if lambda_adv:
        terms["adversarial"] = adversarial_generator_loss(*d_fake, d_target)  # Eq. 6
        total = total + lambda_adv * terms["adversarial"]
    return total, terms


# ---------------------------------------------------------------------------------------------
# blocks


def _reflect_conv(in_ch: int, out_ch: int, row: Layer) -> nn.Conv2d:
    pad = row.dilation * (row.kernel - 1) // 2  # 'SAME' by reflection (reference code)
    return nn.Conv2d(in_ch, out_ch, row.kernel, stride=row.stride, padding=pad,
                     dilation=row.dilation, padding_mode="reflect")


class RegionwiseConv2d(nn.Module):
    """Eq. 1: x' = W^T x + b on existing regions, W^^T x + b^ on missing ones.

    Both convolutions see the same input; each output cell takes the one its region asks for,
    the region being the hole mask max-pooled to the output size (a cell holding any hole pixel
    is missing). With the paper's M (1 = known), "x in X (.) (1 - M)" is our hole = 1.
    """

    def __init__(self, in_ch: int, out_ch: int, row: Layer):
        super().__init__()
        self.known = _reflect_conv(in_ch, out_ch, row)  # W, b
        self.missing = _reflect_conv(in_ch, out_ch, row)  # W^, b^

    def forward(self, x: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        y_known, y_missing = self.known(x), self.missing(x)  # (B, C, h, w) each
        m = resize_hole_mask(hole, y_known.shape[-2:])  # (B, 1, h, w), 1 = missing cell
        return torch.where(m.bool(), y_missing, y_known)


class GenConv(nn.Module):
    """One table row: (nearest x2 upsample,) reflect-padded conv, region-wise (Eq. 1) or plain,
    then the activation (none on the RGB output row)."""

    def __init__(self, *, in_ch: int, out_ch: int, row: Layer, regionwise: bool, activation: str | None):
        super().__init__()
        self.upsample, self.regionwise = row.upsample, regionwise
        self.conv = (RegionwiseConv2d(in_ch, out_ch, row) if regionwise
                     else _reflect_conv(in_ch, out_ch, row))
        self.act = ACTIVATIONS[activation]() if activation else nn.Identity()

    def forward(self, x: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.act(self.conv(x, hole) if self.regionwise else self.conv(x))


class EncoderDecoder(nn.Module):
    """The CA-style encoder-decoder of ``cfg.layers`` with skip links: (B, 4, H, W) -> (B, 3, H, W)
    in [-1, 1]. Rows named in ``regionwise`` are region-wise convolutions."""

    def __init__(self, *, cfg: Config, regionwise: tuple[str, ...]):
        super().__init__()
        names = [row.name for row in cfg.layers]
        unknown = sorted(set(regionwise) - set(names))
        if unknown:
            raise ValueError(f"regionwise_layers: {unknown} are not rows of the layer table {names}")
        for row in cfg.layers[:-1]:
            if row.width is None or int(row.width * cfg.base_channels) < 1:
                raise ValueError(f"layers: {row.name} has width {row.width} x base_channels "
                                 f"{cfg.base_channels}, fewer than one channel")
        if cfg.layers[-1].width is not None:
            raise ValueError(f"layers: the last row ({cfg.layers[-1].name}) must be the RGB "
                             f"output (width None), got width {cfg.layers[-1].width}")
        if cfg.activation not in ACTIVATIONS:
            raise ValueError(f"activation: {cfg.activation!r} is not one of {sorted(ACTIVATIONS)}")
        layer_resolutions(cfg.layers, cfg.image_size)
        self.rows = cfg.layers
        self.blocks = nn.ModuleDict()
        out_ch, in_ch = {}, 4  # masked RGB + the paper's M
        for i, row in enumerate(cfg.layers):
            last = i == len(cfg.layers) - 1
            width = 3 if last else int(row.width * cfg.base_channels)
            cin = in_ch + (out_ch[row.skip] if row.skip else 0)
            self.blocks[row.name] = GenConv(in_ch=cin, out_ch=width, row=row,
                                            regionwise=row.name in regionwise,
                                            activation=None if last else cfg.activation)
            out_ch[row.name] = in_ch = width

    def forward(self, x: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        for size in x.shape[-2:]:
            layer_resolutions(self.rows, int(size))  # a clear error instead of a padding one
        outs = {}
        for row in self.rows:
            if row.skip is not None:
                x = torch.cat([x, outs[row.skip]], dim=1)  # skip link
            x = self.blocks[row.name](x, hole)
            outs[row.name] = x
        return x.clamp(-1.0, 1.0)  # CA: clip_by_value


# ---------------------------------------------------------------------------------------------
# generator


class Generator(nn.Module):
    """Region-wise generator (Sec. 3.1): (image, hole mask) -> (I_p1, I_p2), each (B, 3, H, W)
    in [-1, 1]. Holes of ``image`` are zeroed here, so it never sees the ground truth there."""

    def __init__(self, *, cfg: Config):
        super().__init__()
        self.semantic = EncoderDecoder(cfg=cfg, regionwise=cfg.regionwise_layers)  # E_s, D_s
        self.perceiving = EncoderDecoder(cfg=cfg, regionwise=())  # E_g, D_g
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Conv2d):  # TF default of the reference code
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)

    def num_parameters(self) -> int:
        return count_parameters(self)

    def forward(self, image: torch.Tensor, hole: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        known = to_known_is_one(hole)  # the paper's M: 1 = existing, 0 = missing
        damaged = masked_input(image, hole)  # I^_g = I_g (.) M
        p1 = self.semantic(torch.cat([damaged, known], dim=1), hole)  # I_p1 = D_s(E_s(I^_g))
        c1 = compose(p1, damaged, hole)  # I_c1 = I^_g + I_p1 (.) (1 - M)
        p2 = self.perceiving(torch.cat([c1, known], dim=1), hole)  # I_p2 = D_g(E_g(I_c1))
        return p1, p2


# ---------------------------------------------------------------------------------------------
# discriminator


class Discriminator(nn.Module):
    """Region-wise patch discriminator (Sec. 3.4): sees only the missing region of an image and
    the paper's mask M: (image, hole) -> (B, d_channels[-1], H / 2^L, W / 2^L) patch scores."""

    def __init__(self, *, cfg: Config):
        super().__init__()
        n = len(cfg.d_channels)
        if n == 0 or cfg.image_size % 2**n:
            raise ValueError(f"d_channels: {n} stride-2 layers need an image size divisible by "
                             f"{2**n}, got image_size {cfg.image_size}")
        layers, in_ch = [], 4  # I (.) (1 - M) and M
        for ch in cfg.d_channels:  # leaky ReLU after every layer, the last too (reference)
            layers += [sn_conv2d(in_ch, ch, cfg.d_kernel, stride=2, padding=cfg.d_kernel // 2),
                       nn.LeakyReLU(cfg.d_leaky_slope)]
            in_ch = ch
        self.net = nn.Sequential(*layers)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Conv2d):
            nn.init.xavier_uniform_(module.parametrizations.weight.original)
            nn.init.zeros_(module.bias)
            with torch.no_grad():  # the SN power iteration starts afresh on the new weight:
                for _ in range(15):  # 15 iterations, as spectral_norm does at registration
                    module.weight  # noqa: B018 - each access in training mode iterates once

    def num_parameters(self) -> int:
        return count_parameters(self)

    def forward(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        known = to_known_is_one(hole)  # the paper's M: 1 = existing
        return self.net(torch.cat([image * hole, known], dim=1))  # D_r(I (.) (1 - M), M)


# ---------------------------------------------------------------------------------------------
# training recipe


class RegionwiseRecipe:
    """Nets: "generator", "discriminator" and, when L_c or L_s is on, the frozen "vgg" (kept in
    ``nets`` so the engine moves it to the device; it has no trainable parameter, so it is never
    wrapped in DDP). One step = one G update, then (after the warm-up) one D update."""

    def __init__(self, cfg: Config, *, vgg: nn.Module | None = None):
        self.cfg = cfg
        needed = set(cfg.style_layers if cfg.lambda_style else ()) | (
            {cfg.correlation_layer} if cfg.lambda_correlation else set())
        if needed and vgg is None:
            raise ValueError("region-wise losses need VGG-19 features: pass vgg=models.vgg.load_vgg19("
                             "path, layers=('pool1', 'pool2', 'pool3')), or set lambda_correlation "
                             "and lambda_style to 0")
        missing = sorted(needed - set(getattr(vgg, "layers", needed)))
        if missing:
            raise ValueError(f"vgg: the feature extractor gives {getattr(vgg, 'layers', None)}, "
                             f"but the losses need {missing}")
        for name in ("adv_warmup_steps", "recon_warmup_steps"):
            if getattr(cfg, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(cfg, name)}")
        generator, discriminator = Generator(cfg=cfg), Discriminator(cfg=cfg)
        self.nets: dict[str, nn.Module] = {"generator": generator, "discriminator": discriminator}
        if needed:
            self.nets["vgg"] = vgg
        self.optimizers = {
            "generator": torch.optim.Adam(generator.parameters(), lr=cfg.lr, betas=cfg.betas),
            "discriminator": torch.optim.Adam(discriminator.parameters(), lr=cfg.lr, betas=cfg.betas),
        }
        self.mask_families = tuple(cfg.mask_families)

    def adversarial_on(self, step: int) -> bool:
        """l3 schedule: 0 for the first ``adv_warmup_steps`` steps, then ``lambda_adv``."""
        return bool(self.cfg.lambda_adv) and step >= self.cfg.adv_warmup_steps

    def training_step(self, images: torch.Tensor, masks: torch.Tensor | None,
                      ctx: StepContext) -> dict[str, torch.Tensor]:
        if masks is None:
            raise ValueError("the region-wise GAN inpaints: it needs masks (1 = hole)")
        cfg = self.cfg
        G, D = self.nets["generator"], self.nets["discriminator"]
        opt_g, opt_d = self.optimizers["generator"], self.optimizers["discriminator"]
        warm = ctx.step < cfg.recon_warmup_steps  # demo only: a minutes-long run learns L_r first
        loss_cfg = replace(cfg, lambda_correlation=0.0, lambda_style=0.0) if warm else cfg
        adversarial = self.adversarial_on(ctx.step) and not warm

        # generator: Eq. 7
        opt_g.zero_grad(set_to_none=True)
        with ctx.autocast():
            p1, p2 = G(images, masks)
            feats_gt = feats_c1 = feats_c2 = d_fake = d_target = None
            if "vgg" in self.nets and (loss_cfg.lambda_correlation or loss_cfg.lambda_style):
                vgg = self.nets["vgg"]
                with torch.no_grad():
                    feats_gt = vgg(images)
                if loss_cfg.lambda_correlation:
                    feats_c1 = vgg(compose(p1, images, masks))  # I_c1
                if loss_cfg.lambda_style:
                    feats_c2 = vgg(compose(p2, images, masks))  # I_c2
            if adversarial:
                scores = D(torch.cat([p1, p2]), torch.cat([masks, masks]))  # one call, 2B images
                d_fake = scores.chunk(2)
                d_target = patch_targets(masks, scores.shape[-2:])
        total, terms = generator_loss(image=images, p1=p1, p2=p2, feats_c1=feats_c1,
                                      feats_c2=feats_c2, feats_gt=feats_gt, d_fake=d_fake,
                                      d_target=d_target, cfg=loss_cfg,
                                      lambda_adv=cfg.lambda_adv if adversarial else 0.0)
        total.backward()
        opt_g.step()
        losses = {"g_total": total.detach(), **{k: v.detach() for k, v in terms.items()}}

        # discriminator (after the warm-up): minimise its side of Eq. 6 on this step's outputs
        if adversarial:
            opt_d.zero_grad(set_to_none=True)  # drops what G's backward left in D
            with ctx.autocast():
                scores = D(torch.cat([images, p1.detach(), p2.detach()]), masks.repeat(3, 1, 1, 1))
            d_real, d_fake1, d_fake2 = scores.chunk(3)
            d_loss = adversarial_discriminator_loss(d_real, d_fake1, d_fake2, d_target, cfg.alpha)
            d_loss.backward()
            opt_d.step()
            losses["d"] = d_loss.detach()
        return losses

    @torch.no_grad()
    def preview(self, images: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        """The final composite I_c2: known pixels from ``images``, holes from I_p2."""
        if masks is None:
            raise ValueError("the region-wise GAN inpaints: it needs masks (1 = hole)")
        _, p2 = self.nets["generator"](images, masks)
        return compose(p2, images, masks)

"""Global and local attention (GLA) for free-form inpainting: Uddin & Jung, "Global and Local
Attention-Based Free-Form Image Inpainting", Sensors 20(11):3204, 2020 (paper 004,
/work/shared/papers/004_*.txt). Reference code: github.com/SayedNadim/Global-and-Local-Attention-
Based-Free-Form-Image-Inpainting (``model/network.py``, ``model/Attention.py``,
``scripts/trainer.py``); read for ideas, nothing copied.

What is reproduced
    * Table A1 (coarse network with the MPGA module, Eqs. 1-5), Table A2 (refinement network
      with the GLA module, Eqs. 6-12), Table A3 (spectral-norm discriminator), written as data
      below (``REGULAR_BRANCH`` .. ``DISCRIMINATOR``).
    * Losses: Eq. 13 (L1 + SSIM reconstruction), Eqs. 14-17 (relativistic average hinge),
      Eq. 18 (Lorentzian), Eqs. 19-20 (totals). Adam, lr 1e-4, betas (0.5, 0.9), batch 4
      (Section 4). Training masks: DeepFill v2 free-form strokes drawn on the fly (Section 4
      follows GC [16]); ``train_mask_bin = None``: the paper trains on unbinned masks and only
      bins its test masks (20-30 %, 30-40 %, 40-50 %, Tables 1-3).
    * Table 5's ablation: ``Config.use_mpga`` / ``use_gla`` = False replace a module with a
      3x3 convolution (Section 4.3); Figure 10's "without discriminator": both adversarial
      weights 0 (the discriminator is then never run).

Mask polarity. The paper's mask M is 1 = known, 0 = hole (Section 3.1.1). The project's masks
are 1 = hole; :class:`Generator` converts once, at its edge, with ``to_known_is_one``; every
module below it (MPGA, GLA, the networks' mask channel) uses the paper's M.

Reading the appendix tables (the text extraction keeps their rows; some entries cannot be right)
    * Table A1/A2 list stride 2 on the regular branch's 5th convolution and on attention-branch
      convolutions 2-5. Taken literally the regular branch ends at 1/8 and the attention branch
      at 1/16 of the input, yet the two are concatenated channel-wise and the decoder upsamples
      only twice (x4) to an output "with the same size as input" (Section 3.1.1). Both
      branches must therefore end at 1/4. We keep stride 2 on regular rows 2 and 4 and on
      attention rows 2 and 4 (the rows whose counterparts downsample in the reference code,
      and DeepFill's [14] layout) and use stride 1 on regular row 5 and attention rows 3 and 5.
      Every kernel, dilation and width is the table's.
    * The attention-branch rows list five convolutions before the attention module, while
      Section 3.1.2 says MPGA reads "the 6th convolution layer of the attention branch" and
      the reference code has six. We follow the table (five); a sixth 128-channel 3x3 layer
      would add 147,584 parameters per network.
    * The attention-module row reads "3x3, dilation 2, stride 1, 128, no activation". MPGA has
      no spatial kernel (Eq. 1: omega is a 1x1 convolution), so for MPGA the row only says
      "128 channels, no activation". GLA's patches (Eqs. 6-12) use it: 3x3 patches, dilation 2,
      stride 1 (``ATTENTION_PATCH``). The reference code extracts undilated 3x3 patches.
    * The last decoder convolution is listed with a Leaky ReLU, then "Clamp [-1, 1]". We keep
      the table (the reference code has no activation there); with slope 0.2 a pre-activation
      of -5 still reaches -1.
    * Table A3: five 5x5 convolutions, dilation 2, stride 2, widths 64-128-256-256-256, Leaky
      ReLU, spectral norm, then "Linear, 1 output, no normalisation". The Linear is applied at
      every position of the final feature volume (one score per position, as Section 3.3
      describes: "we apply GANs for each element in the final feature volume"); it is an
      ``nn.Linear`` over channels, not spectral-normalised, exactly as the table says. The
      reference code uses padding 2 and no dilation; the table's column says dilation 2.

Choices where the paper is silent (all in :class:`Config` or named here)
    * Input: 4 channels, (I_in, M) with I_in the image with holes zeroed (Section 3.1.1). The
      reference code adds a constant "ones" channel (5 inputs); the paper does not.
    * Leaky ReLU slope 0.2; "Upscale factor of 2" is nearest-neighbour (the reference code);
      padding keeps the size at stride 1 and halves it at stride 2 (dilation*(k-1)/2).
    * The refinement network's input is the coarse output pasted into the known pixels
      (compose), concatenated with M, as in the reference code; the paper says only that
      I_coarse and M are fed in. The final image is compose(I_rec, I_in, mask) (Section 3.2.1).
    * Mask pruning (Eqs. 2 and 7) multiplies the correlation map by M along the attended
      (key) axis, exactly as written. A product sets a hole key's logit to 0 rather than
      excluding it, so holes keep a weight exp(0); we do not change the equation. (The
      reference code multiplies along the query axis, which gives hole queries uniform
      attention, and with its 1 = hole masks keeps hole features and replaces known ones: the
      opposite of Eq. 5. We follow the paper.)
    * Learnable scale: Eq. 5 has none; the reference code multiplies the attended features by
      a scale gamma (as in SAGAN [41]) but keeps it in a plain tensor that is never trained.
      Here each attention (MPGA, GLA's global step, GLA's patch step) owns a registered
      ``nn.Parameter`` ``scale``, initialised to 1.0 (the reference code's value):
      psi_out = M * psi + (1 - M) * scale * psi_p. Known positions are copied with
      ``torch.where``, so Eq. 5 holds bit-exactly.
    * Attention logits are not divided by sqrt(C) (Eqs. 1 and 6 do not); omega_1..3 map C to C
      channels (the reference code; the paper gives no width).
    * GLA (Eqs. 6-10) is read as MPGA inside each patch: the k*k positions of a foreground
      patch attend to the positions of the co-located background patch psi_b = psi * M,
      pruned by the patch's mask. (The reference code instead forms a CxC channel correlation
      per patch.) The 1x1 convolutions are applied before patch extraction, so zero padding
      stays zero (the padded positions have M = 0 and are pruned).
    * Eq. 11 is the cosine similarity between every patch of psi_out and every pruned patch p'
      (all H*W candidates; the reference code drops candidates that touch a hole, the paper
      does not). Eq. 12's softmax is over candidates, with a temperature
      ``local_softmax_scale`` = 10: the paper writes a plain softmax, but cosines lie in
      [-1, 1], and over 4096 candidates an unscaled softmax is nearly uniform; 10 is
      contextual attention's value [14], the module GLA extends. Set 1.0 for the literal Eq. 12.
    * "Deconvolution with the patches as filters" is ``F.fold`` of the score-weighted pruned
      patches, divided by the number of patches overlapping each pixel (an average, so the
      map keeps its scale; the reference code sums). GLA returns the reconstructed map at
      every position (the paper does not paste known features back here).
    * Reconstruction (Eq. 13), lambda = 0.75: the paper gives no value; the reference trainer
      uses 0.75 * L1 + 0.25 * (1 - SSIM). Eq. 13 is applied to the raw coarse and the raw
      refined outputs over the whole image and the two are summed (Section 3.1.1 names the
      coarse output, Figure 10 trains the refined output on L_recon alone, Eq. 19 has one
      L_recon term). L1 is the mean absolute error in model space [-1, 1]; SSIM maps images
      to [0, 1] ((x + 1) / 2, data range 1) and uses an 11x11 Gaussian window, sigma 1.5,
      population (co)variances, K1 = 0.01, K2 = 0.03, averaged over the valid positions and
      the channels: the same number as skimage's ``structural_similarity(gaussian_weights=True,
      sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=-1)``. SSIM runs
      in float32 with autocast off (E[x^2] - E[x]^2 cancels badly in bf16).
    * Adversarial expectations are means over batch and positions of the discriminator's
      score map; Eqs. 14-17 use the batch means of the other side (relativistic average).
      Eqs. 19-20 add hinge and Lorentzian terms with weight 1 (``adversarial_weight``,
      ``lorentzian_weight``); the reference code halves the hinge sums, the equations do not.
    * Lorentzian (Eq. 18): mean of log(1 + |C(x_r) - C(x_f)|) over corresponding score-map
      elements of each ground truth and its inpainted image. Per Eq. 20 the discriminator also
      minimises it (it pulls the two scores together, bounding the hinge's push apart).
    * The discriminator sees the composited refined image and the ground truth, each 3
      channels (Section 3.3); its dropout (Section 3.3, rate not given) is 0.2 (the reference
      code's value) and sits before the output Linear.
    * Initialisation: Kaiming-normal (leaky ReLU gain) for every convolution and linear
      layer, zero biases; the paper and the reference code use framework defaults.
    * Order in one iteration: one discriminator step on the detached composite, then one
      generator step (the reference trainer's order).
    * Demo only: ``adv_warmup_steps`` (0 in the paper config) trains on L_recon alone for the
      first steps, the discriminator neither run nor updated, as paper 003 warms up: a CPU
      demo of minutes is spent where the hinge term would only add noise to a blurry fill.

Parameters (``count_parameters``; the paper reports 8.71 M, Table 4)
    paper Config: generator 4,156,873 (coarse 2,053,668 incl. MPGA 49,537; refinement
    2,103,205 incl. GLA 99,074), discriminator 4,306,817. Table 4's 8.71 M is not the generator
    of Tables A1-A2: those tables give 4.16 M. The generator plus the Table A3 discriminator
    gives 8.46 M (-2.8 %), and with the reference code's sixth attention-branch layer and its
    5-channel input the sum is 8.76 M (+0.6 %), so Table 4 most likely counts generator and
    discriminator together. tiny Config: generator 263,353, discriminator 270,305.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import einsum, rearrange
from torch import nn
from torch.nn.utils import parametrize

from inpaintflow.conventions import to_known_is_one
from inpaintflow.models.common import StepContext, compose, count_parameters, masked_input, sn_conv2d

PAPER_PARAMETERS_M = 8.71  # Table 4, "Proposed"

# ---------------------------------------------------------------------------------------------
# the appendix tables, as data


class Conv(NamedTuple):
    """One table row: kernel size, dilation, stride, output channels (at the paper's widths)."""

    kernel: int
    dilation: int
    stride: int
    out: int


UPSCALE = "upscale x2"  # Table A1/A2 "Upscale, factor of 2"

# Tables A1 and A2 share every row; A1 has MPGA as its attention module, A2 has GLA.
REGULAR_BRANCH: tuple[Conv, ...] = (
    Conv(5, 1, 1, 32),
    Conv(3, 1, 2, 32),
    Conv(3, 1, 1, 64),
    Conv(3, 1, 2, 64),
    Conv(3, 1, 1, 128),  # the table says stride 2 (see the module docstring)
    Conv(3, 1, 1, 128),
    Conv(3, 2, 1, 128),  # atrous
    Conv(3, 4, 1, 128),
    Conv(3, 8, 1, 128),
    Conv(3, 16, 1, 128),  # "Regular Branch Output"
)
ATTENTION_BRANCH_IN: tuple[Conv, ...] = (
    Conv(5, 1, 1, 32),
    Conv(3, 1, 2, 32),
    Conv(3, 1, 1, 64),  # the table says stride 2
    Conv(3, 1, 2, 128),
    Conv(3, 1, 1, 128),  # the table says stride 2
)
ATTENTION_PATCH = Conv(3, 2, 1, 128)  # the "MPGA/GLA Module" row: GLA's patches; no activation
ATTENTION_BRANCH_OUT: tuple[Conv, ...] = (
    Conv(3, 1, 1, 128),
    Conv(3, 1, 1, 128),  # "Attention Branch Output"
)
DECODER: tuple[Conv | str, ...] = (  # "Combined Layer", input: concat(regular, attention)
    Conv(3, 1, 1, 128),
    Conv(3, 1, 1, 128),
    UPSCALE,
    Conv(3, 1, 1, 64),
    Conv(3, 1, 1, 64),
    UPSCALE,
    Conv(3, 1, 1, 32),
    Conv(3, 1, 1, 16),
    Conv(3, 1, 1, 3),  # RGB, Leaky ReLU, then clamp to [-1, 1]
)
# Table A3: five spectral-norm convolutions with Leaky ReLU, then a Linear to 1 score.
DISCRIMINATOR: tuple[Conv, ...] = (
    Conv(5, 2, 2, 64),
    Conv(5, 2, 2, 128),
    Conv(5, 2, 2, 256),
    Conv(5, 2, 2, 256),
    Conv(5, 2, 2, 256),
)
TABLE_BASE_CHANNELS = 32  # first width of Tables A1-A2
TABLE_DIS_BASE_CHANNELS = 64  # first width of Table A3
DOWNSAMPLING = 4  # each generator branch ends at 1/4 of the input (two stride-2 rows)


@dataclass
class Config:
    image_size: int = 256  # Section 3.1.1 (4 x 256 x 256 input); a multiple of 32 (5 halvings in D)
    base_channels: int = 32  # generator widths = table width * base_channels / 32
    dis_base_channels: int = 64  # discriminator widths = table width * dis_base_channels / 64
    leaky_slope: float = 0.2  # "Leaky ReLU" everywhere; slope not given
    use_mpga: bool = True  # False: MPGA replaced by a 3x3 conv (Table 5, "MPGA-")
    use_gla: bool = True  # False: GLA replaced by a 3x3 conv (Table 5, "GLA-")
    attention_scale_init: float = 1.0  # learnable scale of the attended features (reference code)
    local_softmax_scale: float = 10.0  # Eq. 12 temperature on cosine similarities (1.0 = literal)
    dis_dropout: float = 0.2  # Section 3.3 mentions a dropout layer; rate from the reference code
    l1_weight: float = 0.75  # lambda of Eq. 13 (reference trainer; the paper gives no value)
    adversarial_weight: float = 1.0  # RaHinge terms in Eqs. 19-20
    lorentzian_weight: float = 1.0  # Lorentzian terms in Eqs. 19-20
    adv_warmup_steps: int = 0  # demo only: L_recon alone (no discriminator) before this step
    lr: float = 1e-4  # Section 4, Adam
    betas: tuple[float, float] = (0.5, 0.9)  # Section 4
    batch_size: int = 4  # Section 4 (the engine takes its batch from params; recorded here)
    mask_families: tuple[str, ...] = ("free-form",)  # DeepFill v2 strokes, drawn on the fly
    train_mask_bin: tuple[float, float] | None = None  # training masks are not binned

    def __post_init__(self) -> None:
        if self.image_size <= 0 or self.image_size % 32:
            raise ValueError(f"image_size: must be a positive multiple of 32 (two generator "
                             f"downsamplings, five discriminator ones), got {self.image_size}")
        if self.base_channels <= 0 or self.base_channels % 2:  # the narrowest width is 16 = 32 / 2
            raise ValueError(f"base_channels: must be a positive even number, got {self.base_channels}")
        if self.dis_base_channels <= 0:
            raise ValueError(f"dis_base_channels: must be positive, got {self.dis_base_channels}")
        if not 0.0 <= self.l1_weight <= 1.0:
            raise ValueError(f"l1_weight: lambda of Eq. 13 must lie in [0, 1], got {self.l1_weight}")
        if not 0.0 <= self.dis_dropout < 1.0:
            raise ValueError(f"dis_dropout: must lie in [0, 1), got {self.dis_dropout}")
        if self.local_softmax_scale <= 0:
            raise ValueError(f"local_softmax_scale: must be positive, got {self.local_softmax_scale}")
        for name in ("adversarial_weight", "lorentzian_weight", "adv_warmup_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        self.betas = tuple(self.betas)
        self.mask_families = tuple(self.mask_families)
        if self.train_mask_bin is not None:
            self.train_mask_bin = tuple(self.train_mask_bin)

    @classmethod
    def tiny(cls) -> Config:
        """CPU tests and demos: widths / 4, 32x32 images. MPGA attends over 8x8 = 64 positions
        and GLA over 64 patches, so both modules still run."""
        return cls(image_size=32, base_channels=8, dis_base_channels=16)

    def width(self, table_width: int) -> int:
        return table_width * self.base_channels // TABLE_BASE_CHANNELS

    def dis_width(self, table_width: int) -> int:
        return table_width * self.dis_base_channels // TABLE_DIS_BASE_CHANNELS


# ---------------------------------------------------------------------------------------------
# helpers


def _same_padding(row: Conv) -> int:
    """Padding that keeps the size at stride 1 and halves an even size at stride 2."""
    return row.dilation * (row.kernel - 1) // 2


def conv_block(in_ch: int, row: Conv, out_ch: int, *, slope: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, row.kernel, stride=row.stride, padding=_same_padding(row),
                  dilation=row.dilation),
        nn.LeakyReLU(slope),
    )


def resize_mask(known: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The mask at a feature map's size, nearest neighbour (Section 3.1.2)."""
    return F.interpolate(known, size=size, mode="nearest")


def _init_weights(module: nn.Module) -> None:
    """Kaiming-normal for the leaky-ReLU stacks, zero bias (spectral-normed convs: the raw weight)."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        if parametrize.is_parametrized(module, "weight"):
            weight = module.parametrizations.weight.original
        else:
            weight = module.weight
        nn.init.kaiming_normal_(weight, a=0.2, nonlinearity="leaky_relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)


# ---------------------------------------------------------------------------------------------
# blocks: the two attention modules


class MaskPrunedGlobalAttention(nn.Module):
    """MPGA (Section 3.1.2, Eqs. 1-5): self-attention over all positions, correlations pruned
    by the mask, attended features written only into the holes.

    ``forward(features, known)``: features (B, C, h, w); known (B, 1, H, W), the paper's M
    (1 = known), resized to (h, w) by nearest neighbour.
    """

    def __init__(self, *, channels: int, scale_init: float = 1.0):
        super().__init__()
        self.omega1 = nn.Conv2d(channels, channels, 1)  # query
        self.omega2 = nn.Conv2d(channels, channels, 1)  # key
        self.omega3 = nn.Conv2d(channels, channels, 1)  # value
        self.scale = nn.Parameter(torch.tensor(float(scale_init)))  # learnable scale of psi_p

    def forward(self, features: torch.Tensor, known: torch.Tensor,
                keys_from: torch.Tensor | None = None) -> torch.Tensor:
        h, w = features.shape[-2:]
        m = resize_mask(known, (h, w))  # (B, 1, h, w)
        q = rearrange(self.omega1(features), "b c h w -> b (h w) c")
        k = rearrange(self.omega2(features if keys_from is None else keys_from), "b c h w -> b (h w) c")
        v = rearrange(self.omega3(features), "b c h w -> b (h w) c")
        rho = einsum(q, k, "b i c, b j c -> b i j")  # Eq. 1, (B, hw, hw)
        rho_m = rho * rearrange(m, "b 1 h w -> b 1 (h w)")  # Eq. 2, prune the attended positions
        kappa = rho_m.softmax(dim=-1)  # Eq. 3
        psi_p = einsum(kappa, v, "b i j, b j c -> b i c")  # Eq. 4
        psi_p = rearrange(psi_p, "b (h w) c -> b c h w", h=h, w=w)
        # Eq. 5: known positions keep psi exactly, holes take the (scaled) attended features
        return torch.where(m.bool(), features, self.scale * psi_p)


class GlobalLocalAttention(nn.Module):
    """GLA (Section 3.2.2, Eqs. 6-12): mask-pruned global attention (Eq. 5) on the feature map,
    mask-pruned attention inside every patch (Eqs. 6-10), then each patch of the pruned map is
    rebuilt from the pruned patches weighted by their cosine similarity (Eqs. 11-12) and
    pasted back by a transposed convolution (fold).

    ``forward(features, known)``: features (B, C, h, w); known (B, 1, H, W), 1 = known.
    """

    def __init__(self, *, channels: int, patch: Conv = ATTENTION_PATCH, scale_init: float = 1.0,
                 softmax_scale: float = 10.0):
        super().__init__()
        if patch.stride != 1 or patch.kernel % 2 == 0:
            raise ValueError(f"patch: GLA needs an odd kernel at stride 1 (one patch per position), "
                             f"got {patch}")
        self.patch = patch
        self.softmax_scale = softmax_scale
        self.global_attention = MaskPrunedGlobalAttention(channels=channels, scale_init=scale_init)
        self.omega1 = nn.Conv2d(channels, channels, 1)  # patch query (foreground)
        self.omega2 = nn.Conv2d(channels, channels, 1)  # patch key (background)
        self.omega3 = nn.Conv2d(channels, channels, 1)  # patch value (foreground)
        self.scale = nn.Parameter(torch.tensor(float(scale_init)))  # learnable scale of p_psi_p

    def _unfold(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, C*k*k, h*w), one column per position (zero padding)."""
        p = self.patch
        return F.unfold(x, p.kernel, dilation=p.dilation, padding=_same_padding(p), stride=1)

    def _fold(self, cols: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        p = self.patch
        return F.fold(cols, size, p.kernel, dilation=p.dilation, padding=_same_padding(p), stride=1)

    def _patches(self, x: torch.Tensor) -> torch.Tensor:
        return rearrange(self._unfold(x), "b (c n) l -> b l n c", n=self.patch.kernel ** 2)

    def forward(self, features: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        h, w = features.shape[-2:]
        m = resize_mask(known, (h, w))  # (B, 1, h, w)
        background = features * m  # psi_b; the foreground psi_f is the whole map
        psi_out = self.global_attention(features, m, keys_from=background)  # Eq. 5

        # patches: (B, L, n, C), L = h*w patches of n = k*k positions
        p_f = self._patches(features)
        q = self._patches(self.omega1(features))
        k = self._patches(self.omega2(background))
        v = self._patches(self.omega3(features))
        p_m = rearrange(self._unfold(m), "b n l -> b l n")  # (B, L, n), padding counts as hole
        rho_p = einsum(q, k, "b l i c, b l j c -> b l i j")  # Eq. 6, (B, L, n, n)
        rho_pm = rho_p * rearrange(p_m, "b l j -> b l 1 j")  # Eq. 7
        kappa_p = rho_pm.softmax(dim=-1)  # Eq. 8
        p_psi_p = einsum(kappa_p, v, "b l i j, b l j c -> b l i c")  # Eq. 9
        p_pruned = torch.where(rearrange(p_m, "b l n -> b l n 1").bool(), p_f,
                               self.scale * p_psi_p)  # Eq. 10
        filters = rearrange(p_pruned, "b l n c -> b l (c n)")  # (B, L, C*k*k) candidates

        # Eq. 11: cosine similarity of every patch i of psi_out with every pruned patch j
        queries = F.normalize(rearrange(self._unfold(psi_out), "b d l -> b l d"), dim=-1, eps=1e-6)
        s = einsum(queries, F.normalize(filters, dim=-1, eps=1e-6), "b i d, b j d -> b i j")
        kappa_s = (self.softmax_scale * s).softmax(dim=-1)  # Eq. 12, over candidates j
        # deconvolution with the pruned patches as filters: paste, then average the overlaps
        cols = einsum(kappa_s, filters, "b i j, b j d -> b d i")
        overlap = self._fold(torch.ones_like(cols[:1, :, :]), (h, w))  # patches covering a pixel
        return self._fold(cols, (h, w)) / overlap


class ConvInsteadOfAttention(nn.Module):
    """The ablation of Section 4.3: the attention module replaced by a 3x3 convolution."""

    def __init__(self, *, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, features: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        return self.conv(features)


class TwoBranchNetwork(nn.Module):
    """One stage (Table A1 or A2): a dilated regular branch and an attention branch read
    concat(image, M); their outputs are concatenated and decoded to an image in [-1, 1]."""

    def __init__(self, *, cfg: Config, attention: nn.Module):
        super().__init__()
        slope = cfg.leaky_slope

        def stack(rows, in_ch: int) -> tuple[nn.Sequential, int]:
            layers = []
            for row in rows:
                if row == UPSCALE:
                    layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
                    continue
                out_ch = 3 if row.out == 3 else cfg.width(row.out)  # RGB stays 3 wide
                layers.append(conv_block(in_ch, row, out_ch, slope=slope))
                in_ch = out_ch
            return nn.Sequential(*layers), in_ch

        self.regular, regular_ch = stack(REGULAR_BRANCH, 4)  # (I_in, M): 4 channels
        self.attention_in, attention_ch = stack(ATTENTION_BRANCH_IN, 4)
        self.attention = attention
        self.attention_out, attention_ch = stack(ATTENTION_BRANCH_OUT, attention_ch)
        self.decoder, _ = stack(DECODER, regular_ch + attention_ch)

    def forward(self, image: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        x = torch.cat([image, known], dim=1)  # (B, 4, H, W)
        regular = self.regular(x)  # (B, 4*base, H/4, W/4)
        att = self.attention(self.attention_in(x), known)
        att = self.attention_out(att)
        return self.decoder(torch.cat([regular, att], dim=1)).clamp(-1.0, 1.0)


# ---------------------------------------------------------------------------------------------
# generator


class Generator(nn.Module):
    """Coarse network (MPGA) then refinement network (GLA).

    ``forward(images, masks)``: images (B, 3, H, W) in [-1, 1]; masks (B, 1, H, W), 1 = hole
    (the project's convention). Returns (coarse, refined), raw outputs in [-1, 1]; the
    inpainted image is ``compose(refined, images, masks)``. Hole pixels of ``images`` are
    never read.
    """

    def __init__(self, *, cfg: Config):
        super().__init__()
        width = cfg.width(ATTENTION_PATCH.out)
        mpga = (MaskPrunedGlobalAttention(channels=width, scale_init=cfg.attention_scale_init)
                if cfg.use_mpga else ConvInsteadOfAttention(channels=width))
        gla = (GlobalLocalAttention(channels=width, scale_init=cfg.attention_scale_init,
                                    softmax_scale=cfg.local_softmax_scale)
               if cfg.use_gla else ConvInsteadOfAttention(channels=width))
        self.coarse = TwoBranchNetwork(cfg=cfg, attention=mpga)
        self.refine = TwoBranchNetwork(cfg=cfg, attention=gla)
        self.apply(_init_weights)

    def forward(self, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = images.shape[-2:]
        if h % DOWNSAMPLING or w % DOWNSAMPLING:
            raise ValueError(f"images: height and width must be multiples of {DOWNSAMPLING}, got {h}x{w}")
        known = to_known_is_one(masks)  # the paper's M: 1 = known, 0 = hole (Section 3.1.1)
        coarse = self.coarse(masked_input(images, masks), known)  # I_coarse
        refined = self.refine(compose(coarse, images, masks), known)  # I_rec
        return coarse, refined


# ---------------------------------------------------------------------------------------------
# discriminator


class Discriminator(nn.Module):
    """Table A3: spectral-norm 5x5 convolutions (dilation 2, stride 2), dropout, and a Linear
    scoring every position: (B, 3, H, W) -> (B, 1, H/32, W/32), the non-transformed C(x)."""

    def __init__(self, *, cfg: Config):
        super().__init__()
        layers, in_ch = [], 3
        for row in DISCRIMINATOR:
            out_ch = cfg.dis_width(row.out)
            layers += [sn_conv2d(in_ch, out_ch, row.kernel, stride=row.stride,
                                 padding=_same_padding(row), dilation=row.dilation),
                       nn.LeakyReLU(cfg.leaky_slope)]
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(cfg.dis_dropout)
        self.score = nn.Linear(in_ch, 1)  # "Linear, output 1, no normalisation"
        self.apply(_init_weights)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        f = self.dropout(self.features(images))  # (B, C, h, w)
        scores = self.score(rearrange(f, "b c h w -> b h w c"))
        return rearrange(scores, "b h w 1 -> b 1 h w")


# ---------------------------------------------------------------------------------------------
# losses


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Normalised 1-D Gaussian, (size,), float64."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def ssim(x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0, window: int = 11,
         sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Mean SSIM of each image pair, (B,), differentiable. Gaussian window, population
    (co)variances, mean over the valid (unpadded) positions and the channels: skimage's
    ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        x, y = x.to(dtype), y.to(dtype)
        channels = x.shape[1]
        g = gaussian_window(window, sigma).to(device=x.device, dtype=dtype)
        kernel = (g[:, None] * g[None, :]).expand(channels, 1, window, window)

        def blur(t: torch.Tensor) -> torch.Tensor:
            return F.conv2d(t, kernel, groups=channels)

        mu_x, mu_y = blur(x), blur(y)
        var_x = blur(x * x) - mu_x ** 2
        var_y = blur(y * y) - mu_y ** 2
        cov = blur(x * y) - mu_x * mu_y
        c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
        s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
        return s.mean(dim=(1, 2, 3))


def ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_SSIM = 1 - SSIM, images mapped from [-1, 1] to [0, 1] (data range 1)."""
    return 1.0 - ssim((pred + 1) / 2, (target + 1) / 2, data_range=1.0).mean()


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, *, l1_weight: float) -> torch.Tensor:
    """Eq. 13: lambda * L1 + (1 - lambda) * L_SSIM over the whole image."""
    total = pred.new_zeros(())
    if l1_weight > 0:
        total = total + l1_weight * (pred - target).abs().mean()
    if l1_weight < 1:
        total = total + (1 - l1_weight) * ssim_loss(pred, target)
    return total


def _relativistic(real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eqs. 16-17: D~(x_r) = C(x_r) - E[C(x_f)], D~(x_f) = C(x_f) - E[C(x_r)]."""
    return real - fake.mean(), fake - real.mean()


def rahinge_discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Eq. 14: E[max(0, 1 - D~(x_r))] + E[max(0, 1 + D~(x_f))]; inputs are C(.) score maps."""
    real_rel, fake_rel = _relativistic(real, fake)
    return F.relu(1 - real_rel).mean() + F.relu(1 + fake_rel).mean()


def rahinge_generator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Eq. 15: E[max(0, 1 - D~(x_f))] + E[max(0, 1 + D~(x_r))]."""
    real_rel, fake_rel = _relativistic(real, fake)
    return F.relu(1 - fake_rel).mean() + F.relu(1 + real_rel).mean()


def lorentzian_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Eq. 18: E[log(1 + |C(x_r) - C(x_f)|)] over corresponding score-map elements."""
    return torch.log1p((real - fake).abs()).mean()


def generator_loss(coarse: torch.Tensor, refined: torch.Tensor, target: torch.Tensor,
                   real_scores: torch.Tensor | None, fake_scores: torch.Tensor | None,
                   cfg: Config) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 19: L_recon (coarse and refined outputs) + L_hinge^G + L_loren^G.
    A zero-weight term is not computed (its scores may then be None)."""
    terms = {
        "recon_coarse": reconstruction_loss(coarse, target, l1_weight=cfg.l1_weight),
        "recon_refined": reconstruction_loss(refined, target, l1_weight=cfg.l1_weight),
    }
    total = terms["recon_coarse"] + terms["recon_refined"]
    if cfg.adversarial_weight > 0:
        terms["hinge"] = rahinge_generator_loss(real_scores, fake_scores)
        total = total + cfg.adversarial_weight * terms["hinge"]
    if cfg.lorentzian_weight > 0:
        terms["lorentzian"] = lorentzian_loss(real_scores, fake_scores)
        total = total + cfg.lorentzian_weight * terms["lorentzian"]
    return total, terms


def discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor,
                       cfg: Config) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 20: L_hinge^D + L_loren^D."""
    terms: dict[str, torch.Tensor] = {}
    total = real_scores.new_zeros(())
    if cfg.adversarial_weight > 0:
        terms["hinge"] = rahinge_discriminator_loss(real_scores, fake_scores)
        total = total + cfg.adversarial_weight * terms["hinge"]
    if cfg.lorentzian_weight > 0:
        terms["lorentzian"] = lorentzian_loss(real_scores, fake_scores)
        total = total + cfg.lorentzian_weight * terms["lorentzian"]
    return total, terms


# ---------------------------------------------------------------------------------------------
# training recipe


def _without_adversary(cfg: Config) -> Config:
    """The config with both adversarial weights 0 (L_recon alone, Figure 10's setting)."""
    return replace(cfg, adversarial_weight=0.0, lorentzian_weight=0.0)


def parameter_counts(cfg: Config) -> dict[str, int]:
    """Trainable parameters of each network (the generator is what Table 4 compares)."""
    gen, dis = Generator(cfg=cfg), Discriminator(cfg=cfg)
    return {"generator": count_parameters(gen), "coarse": count_parameters(gen.coarse),
            "refine": count_parameters(gen.refine), "discriminator": count_parameters(dis)}


class GLARecipe:
    """Paper 004's training: per iteration one discriminator step (Eq. 20) on the detached
    composite, then one generator step (Eq. 19). Masks arrive 1 = hole."""

    def __init__(self, cfg: Config, *, vgg=None):
        # ``vgg`` is part of the common interface; GLA's losses use no VGG features.
        self.cfg = cfg
        self.nets: dict[str, nn.Module] = {"generator": Generator(cfg=cfg),
                                           "discriminator": Discriminator(cfg=cfg)}
        self.optimizers = {name: torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=cfg.betas)
                           for name, net in self.nets.items()}
        self.mask_families = tuple(cfg.mask_families)

    @property
    def uses_discriminator(self) -> bool:
        return self.cfg.adversarial_weight > 0 or self.cfg.lorentzian_weight > 0

    def adversarial_on(self, step: int) -> bool:
        """Eqs. 19-20's adversarial terms: off for the first ``adv_warmup_steps`` steps."""
        return self.uses_discriminator and step >= self.cfg.adv_warmup_steps

    def _scores(self, images: torch.Tensor, inpainted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """C(x_r), C(x_f) from one discriminator pass over both halves."""
        scores = self.nets["discriminator"](torch.cat([images, inpainted], dim=0))
        return scores.chunk(2, dim=0)

    def training_step(self, images: torch.Tensor, masks: torch.Tensor | None,
                      ctx: StepContext) -> dict[str, torch.Tensor]:
        if masks is None:
            raise ValueError("masks: GLA is an inpainting model and needs masks (1 = hole)")
        cfg, logs = self.cfg, {}
        opt_g, opt_d = self.optimizers["generator"], self.optimizers["discriminator"]

        with ctx.autocast():
            coarse, refined = self.nets["generator"](images, masks)
        inpainted = compose(refined, images, masks)
        adversarial = self.adversarial_on(ctx.step)

        if adversarial:
            opt_d.zero_grad(set_to_none=True)
            with ctx.autocast():
                real, fake = self._scores(images, inpainted.detach())
                d_total, d_terms = discriminator_loss(real, fake, cfg)
            d_total.backward()
            opt_d.step()
            logs["d_total"] = d_total
            logs.update({f"d_{k}": v for k, v in d_terms.items()})

        opt_g.zero_grad(set_to_none=True)
        with ctx.autocast():
            real = fake = None
            if adversarial:
                real, fake = self._scores(images, inpainted)
            g_total, g_terms = generator_loss(coarse, refined, images, real, fake,
                                              cfg if adversarial else _without_adversary(cfg))
        g_total.backward()
        opt_g.step()
        if adversarial:
            opt_d.zero_grad(set_to_none=True)  # drop the grads the generator step left in D
        logs["g_total"] = g_total
        logs.update({f"g_{k}": v for k, v in g_terms.items()})
        return {k: v.detach().float() for k, v in logs.items()}

    @torch.no_grad()
    def preview(self, images: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        _, refined = self.nets["generator"](images, masks)
        return compose(refined, images, masks)

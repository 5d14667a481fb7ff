"""R-MNet: the reverse-masking Wasserstein GAN of paper 000.

Paper
    Jam, Kendrick, Drouard, Walker, Hsu, Yap, "R-MNet: A Perceptual Adversarial Network for
    Image Inpainting" (WACV 2021): s3.1 (generator, reverse-mask operator, Eqs. 1-2), s3.2
    (generator loss, Eqs. 3-5; Wasserstein critic, Eq. 6), s4.2 (Adam, lr 1e-4 for G and 1e-12
    for D, "beta = 0.9", batch 5, 256x256), s5.3 (the lambda ablation).
Reference code: Jireh-Jam/R-MNet-Inpainting-keras, ``rmnet.py`` (``build_generator``,
    ``build_discriminator``, ``generator_loss``, ``train``) and ``config/config.ini``.
Tables reproduced: 1 (CelebA-HQ), 2 (Paris StreetView, Places2), 3 (lambda = 0.1/0.3/0.4/0.5);
    all with hole ratios in [0.01, 0.6].

Notation: the paper's mask M is 1 on KNOWN pixels and its reversed mask M_r = 1 - M is 1 on
the hole. The project passes masks with 1 = hole; they are converted with
``conventions.to_known_is_one`` at this file's edge only (``RMNetGenerator.forward`` and
``RMNetRecipe.training_step``).

Architecture (paper config, 256x256, base width 64)::

    G  I_M = I * M (Eq. 1), 3 channels, 256x256
       encoder  5 x [conv 5x5 dilation 2 'same' -> LeakyReLU 0.2 -> BN (not on the fifth)],
                widths 64, 64, 128, 256, 512; a 2x2 max pool after each of the first four
                (-> 16x16x512); dropout 0.5 after the fifth
       decoder  up-conv 512 (32), up-conv 256 (64), up-conv 128 (128), bilinear 64 (256)
                up-conv  = reflection pad 1 -> ConvTranspose 4x4 stride 2 (exact 2x) -> ReLU -> BN
                bilinear = bilinear 2x -> reflection pad 1 -> conv 3x3 -> ReLU -> BN
       output   reflection pad 1 -> conv 3x3 -> tanh  = I_pred (raw prediction, every pixel)
       I_Mpred = I_pred * M_r (Eq. 2); the composite is I_M + I_Mpred (``models.common.compose``)
    D  (critic) 4 x [conv 3x3 stride 2 -> (BN, not on the first) -> LeakyReLU 0.2 -> dropout
       0.25], widths 64, 128, 256, 512 -> flatten -> linear -> 1 score (no sigmoid)

Losses (s3.2), on VGG-19 block3_conv3 features phi (ImageNet weights, ``models.vgg``)::

    L_p  = mean (phi(I) - phi(I_pred))^2                         Eq. 3
    L_rm = mean (phi(I_pred * M_r) - phi(I * M_r))^2             Eq. 4
    L_G  = (1 - lambda) L_p + lambda L_rm  [+ adv_weight * (-E D(I_pred))]   Eq. 5
    L_w  = E D(I) - E D(I_pred), maximised by the critic          Eq. 6

Choices made where the paper is silent, or where this code departs from the public code
    * Generator input: the masked image I_M alone (3 channels), as Eq. 1 and "I_pred = G(I_M)"
      say and as the public code does; the mask itself enters only through Eqs. 1-2 (the
      "spatial preserving operation" of s6). Masked pixels are 0, mid-grey in [-1, 1].
    * Encoder: widths 64/64/128/256/512, 5x5 dilation 2, LeakyReLU 0.2 after each conv (s3.1);
      the batch norm after each activation (Keras momentum 0.8 = PyTorch 0.2), the max pools
      after the first four and the dropout 0.5 at the bottleneck come from the public code.
    * Decoder: s3.1 lists learnable up-sampling with reflection padding and a kernel divisible
      by the stride (4, 2), and bilinear interpolation; the public code instead uses, at every
      stage, bilinear 2x upsampling + a 3x3 stride-1 transposed conv (a "reflect" pad of width
      0, a no-op) + ReLU + BN. Here the first three stages are the paper's learnable
      up-convolutions (reflection pad 1, then ConvTranspose 4x4/2 cropped by 3: exactly 2x,
      border taps see reflected features instead of zeros) and the last stage is the bilinear
      resize-convolution of the public code, so the output conv works on bilinearly smoothed
      full-resolution features (s3.1's anti-checkerboard intent, Odena et al.). Widths
      512/256/128/64 and ReLU + BN as the public code. The table is ``Config.decoder``.
    * L_p (Eq. 3) compares phi of the RAW prediction I_pred ("the output of the generator
      G(I_M)"), not the composite; the public code uses the composite.
    * L_rm (Eq. 4) compares phi(I_pred * M_r) with phi(I * M_r): the raw prediction and the
      ground truth, each kept on the hole and zeroed (grey) elsewhere. It is zero exactly when
      the prediction equals the ground truth inside the hole. The public code feeds an already
      composited output and multiplies by the KNOWN-region mask, so both sides equal the
      ground truth and its L_rm is identically zero; that is not reproduced here.
    * Adversarial term: Eq. 5 has none, but the network is trained as a WGAN; the public code
      adds -E D(G) with weight 1e-3 (``loss_weights=[1, 1e-3]``), kept as ``adv_weight``.
      The critic scores the raw prediction I_pred (Eq. 6: "I_pred ~ P_z"); the public code
      scores the composite.
    * Critic architecture: not in the paper; the public ``build_discriminator`` with its width
      64 (its ``self.df = config.gf``; the ini's DISC_FILTER = 16 is never read). Its
      ZeroPadding2D((0,1),(0,1)) after the second conv is dropped; 'same' padding is padding 1.
    * Lipschitz constraint: weight clipping of every critic parameter to [-0.01, 0.01] after
      each critic update, as the WGAN the paper adopts (Arjovsky et al. 2017, c = 0.01); the
      critic is clipped once at construction too, so that it starts inside the box (and the
      paper's lr of 1e-12 really leaves it unchanged). The public code clips nothing.
    * n_critic = 5 critic updates per generator update (Arjovsky et al.; the public code does
      one). The engine gives one batch per step: every critic update reuses it and the one
      generator forward of the step (its prediction, detached).
    * Critic optimiser: Adam, betas (0.9, 0.999) as for G (s4.2, ``config.ini``). The paper's
      critic lr 1e-12 (``PAPER_CRITIC_LR``) freezes the critic in effect; the default here is
      1e-4, which trains. ``Config.critic_lr_note`` says which one a run used.
    * lambda: 0.4 by default, the paper's headline R-MNet-0.4 (Tables 1-3, "with lambda = 0.4,
      we obtained the best results"; the public code hard-codes 0.6 L_p + 0.4 L_rm).
    * Masks: the paper trains on Quick Draw masks with hole ratios in [0.01, 0.6]; their
      generator is unpublished, so on-the-fly training uses the "free-form" family in the bin
      ``train_mask_bin = (0.01, 0.6)``. Quick Draw masks imported from disk can be used for
      evaluation sets.
    * Init: Keras defaults of the public code: Glorot-uniform kernels, zero biases, BN 1 and 0.
    * Losses are computed in fp32 whatever autocast the forward runs under.
    * ``Config.tiny()`` drops batch norm and dropout (no batch-coupled layers and no per-sample
      noise, so DDP on N processes equals one process on the summed batch; tests/test_train.py)
      and raises Adam's eps from 1e-8 to 1e-6. The last is numerical, not cosmetic: in a WGAN
      critic some gradients cancel exactly (e.g. the last conv's bias where real and fake share
      an activation pattern: +mean over fakes - mean over reals of the same weights), leaving a
      rounding residue of ~1e-9 whose sign depends on the summation order; Adam with eps 1e-8
      turns that residue into a step of ~0.1 lr, so two processes and one process (or one
      process with the batch permuted) drift apart by ~1e-3 after two steps. eps 1e-6 damps
      residues below 1e-8 while leaving real gradients (>= 1e-6 here) at full Adam steps.
      The paper config keeps BN, dropout and eps 1e-8 (the public code's values).
    * Demo-only schedule (``pixel_l1_weight``, ``adv_warmup_steps``; both 0 in the paper
      config, so the paper profile trains as s3.2 says): a CPU demo trains for minutes, where
      Eq. 5's feature losses alone cannot match colours, so the demo adds a hole-pixel L1
      term, mean |I_pred * M_r - I * M_r| over the hole (the pixel twin of Eq. 4), and leaves
      the critic and the adversarial term off for the first ``adv_warmup_steps`` steps (no
      critic updates then, as paper 003 warms up with reconstruction alone). Before
      ``recon_warmup_steps`` the hole L1 is the only term: Eq. 5's VGG terms cost ~20x the tiny
      generator at 64 px, so the demo learns colours and layout first. ``feature_weight``
      scales Eq. 5's two feature terms: block3_conv3 of 0-255 Keras inputs makes them ~1e5,
      which would drown the L1 in the last steps.
    * ``preview`` runs G in eval mode (BN running statistics, no dropout), like Keras
      ``predict``, and restores its mode afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from inpaintflow.conventions import to_known_is_one
from inpaintflow.models.common import StepContext, compose, count_parameters, eval_mode

PAPER_CRITIC_LR = 1e-12  # s4.2 and config.ini: freezes the critic in effect

# Layer tables (widths are multiples of the base width; 64 in the paper)
ENCODER: tuple[tuple[int, bool], ...] = (  # (width multiplier, 2x2 max pool after it)
    (1, True), (1, True), (2, True), (4, True), (8, False))
DECODER: tuple[tuple[str, int], ...] = (  # (kind, width multiplier); each stage upsamples 2x
    ("up-conv", 8), ("up-conv", 4), ("up-conv", 2), ("bilinear", 1))
CRITIC: tuple[int, ...] = (1, 2, 4, 8)  # conv 3x3 stride 2 widths (public build_discriminator)
DECODER_KINDS = ("up-conv", "bilinear")


@dataclass
class Config:
    image_size: int = 256  # s4.2: images and masks resized to 256x256
    base_width: int = 64  # s3.1 "filter size of 64"; public code gf = 64
    encoder: tuple[tuple[int, bool], ...] = ENCODER
    decoder: tuple[tuple[str, int], ...] = DECODER
    kernel_size: int = 5  # s3.1: 5x5
    dilation: int = 2  # s3.1: dilation rate 2
    leaky_slope: float = 0.2  # s3.1: Leaky-ReLU alpha 0.2 (encoder and critic)
    batch_norm: bool = True  # public code: BN after every activation but the bottleneck's
    bn_momentum: float = 0.2  # Keras BatchNormalization(momentum=0.8) in PyTorch terms
    bottleneck_dropout: float = 0.5  # public code: Dropout(0.5) after the fifth conv
    critic_width: int = 64  # public code: df = gf = 64
    critic: tuple[int, ...] = CRITIC
    critic_dropout: float = 0.25  # public code: Dropout(0.25) after every critic conv
    lam: float = 0.4  # Eq. 5 lambda; R-MNet-0.4 is the paper's headline model (Tables 1-3)
    adv_weight: float = 1e-3  # public code loss_weights=[1, 1e-3]; Eq. 5 has no adversarial term
    adv_warmup_steps: int = 0  # demo only: no critic and no adversarial term before this step
    pixel_l1_weight: float = 0.0  # demo only: + weight * hole-pixel L1 (not in Eq. 5)
    feature_weight: float = 1.0  # demo only: Eq. 5's feature terms times this (0: VGG not run)
    recon_warmup_steps: int = 0  # demo only: hole-pixel L1 alone (no VGG terms, no critic) before this step
    vgg_layer: str = "block3_conv3"  # s3.2.1
    lr: float = 1e-4  # s4.2, generator
    betas: tuple[float, float] = (0.9, 0.999)  # s4.2 "beta = 0.9"; beta2 from config.ini
    critic_lr: float = 1e-4  # trains; the paper's PAPER_CRITIC_LR = 1e-12 freezes the critic
    critic_betas: tuple[float, float] = (0.9, 0.999)  # s4.2, config.ini
    adam_eps: float = 1e-8  # config.ini EPSILON (both optimisers)
    clip_value: float = 0.01  # WGAN weight clipping c (Arjovsky et al.); paper silent
    n_critic: int = 5  # critic updates per generator update (Arjovsky et al.); public code: 1
    batch_size: int = 5  # s4.2 (the engine's batch size is set by the training params)
    epochs: int = 100  # s4.2: 100 epochs of 27,000 CelebA-HQ images
    train_mask_bin: tuple[float, float] | None = (0.01, 0.6)  # s5.2 hole ratios; read by the engine

    @classmethod
    def tiny(cls) -> Config:
        """CPU-sized for tests and the demo: 32x32, width 8; no BN, dropout or tiny Adam eps, so
        that DDP matches one process (see the module docstring)."""
        return cls(image_size=32, base_width=8, critic_width=8, batch_norm=False,
                   bottleneck_dropout=0.0, critic_dropout=0.0, adam_eps=1e-6, batch_size=2, epochs=1)

    @property
    def critic_lr_note(self) -> str:
        """What a table must say about the critic's learning rate."""
        if self.critic_lr == PAPER_CRITIC_LR:
            return f"critic lr {self.critic_lr:g} (the paper's value: the critic is in effect frozen)"
        return f"critic lr {self.critic_lr:g} (not the paper's {PAPER_CRITIC_LR:g}, which freezes the critic)"


# helpers


def reverse_mask(known: torch.Tensor) -> torch.Tensor:
    """s3.1: M_r = 1 - M; 1 on the hole (M is 1 on known pixels)."""
    return 1 - known


def masked_image(image: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Eq. 1: I_M = I * M, the holes zeroed (mid-grey in [-1, 1])."""
    return image * known


def masked_prediction(pred: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Eq. 2: I_Mpred = I_pred * M_r, the prediction kept on the hole only."""
    return pred * reverse_mask(known)


def perceptual_loss(feat_image: torch.Tensor, feat_pred: torch.Tensor) -> torch.Tensor:
    """Eq. 3: L_p = 1/kappa sum (phi(I) - phi(I_pred))^2, kappa = numel of phi."""
    return (feat_image.float() - feat_pred.float()).pow(2).mean()


def reverse_mask_loss(feat_masked_pred: torch.Tensor, feat_masked_image: torch.Tensor) -> torch.Tensor:
    """Eq. 4: L_rm = 1/kappa sum (phi(I_pred * M_r) - phi(I * M_r))^2.

    Both inputs are features of hole-only images. Do not feed a composite here: on a composite
    (or with the known-region mask, as the public code does) both sides are the ground truth
    and the loss is identically zero.
    """
    return (feat_masked_pred.float() - feat_masked_image.float()).pow(2).mean()


def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Eq. 6, the critic's side: maximise L_w = E D(I) - E D(I_pred), i.e. minimise -L_w."""
    return fake_scores.float().mean() - real_scores.float().mean()


def adversarial_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """Eq. 6, the generator's side: minimise -E D(I_pred)."""
    return -fake_scores.float().mean()


def hole_l1_loss(pred: torch.Tensor, image: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Demo only: mean |I_pred * M_r - I * M_r| over the hole pixels (and channels)."""
    hole = reverse_mask(known)
    return ((pred.float() - image.float()).abs() * hole).sum() / (hole.sum() * pred.shape[1]).clamp(min=1)


def generator_loss(*, pred: torch.Tensor, image: torch.Tensor, known: torch.Tensor,
                   features: Callable[[torch.Tensor], torch.Tensor], lam: float,
                   adv_weight: float = 0.0, fake_scores: torch.Tensor | None = None,
                   pixel_l1_weight: float = 0.0, feature_weight: float = 1.0,
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 5: L_G = (1 - lam) L_p + lam L_rm, plus adv_weight * (-E D(I_pred)) and, in the
    demo only, pixel_l1_weight * hole L1 and the feature terms scaled by feature_weight.

    ``pred`` is the raw I_pred (B, 3, H, W); ``known`` is M (B, 1, H, W), 1 = known;
    ``features`` maps images in [-1, 1] to VGG-19 block3_conv3 features. Zero-weight terms
    are not computed. The ground truth's features carry no gradient.
    """
    w_p, w_rm = feature_weight * (1.0 - lam), feature_weight * lam
    preds, targets = [], []
    if w_p:
        preds.append(pred)
        targets.append(image)
    if w_rm:
        preds.append(masked_prediction(pred, known))  # Eq. 2
        targets.append(image * reverse_mask(known))  # I * M_r
    b = pred.shape[0]
    if preds:
        feat_pred = features(torch.cat(preds)).split(b)  # one VGG pass for both terms
        with torch.no_grad():
            feat_target = features(torch.cat(targets)).split(b)
    terms: dict[str, torch.Tensor] = {}
    total = pred.new_zeros((), dtype=torch.float32)
    i = 0
    if w_p:
        terms["perceptual"] = perceptual_loss(feat_target[i], feat_pred[i])
        total = total + w_p * terms["perceptual"]
        i += 1
    if w_rm:
        terms["reverse_mask"] = reverse_mask_loss(feat_pred[i], feat_target[i])
        total = total + w_rm * terms["reverse_mask"]
    if pixel_l1_weight:
        terms["pixel_l1"] = hole_l1_loss(pred, image, known)
        total = total + pixel_l1_weight * terms["pixel_l1"]
    if adv_weight:
        if fake_scores is None:
            raise ValueError("generator_loss: adv_weight > 0 needs the critic's fake_scores")
        terms["adversarial"] = adversarial_loss(fake_scores)
        total = total + adv_weight * terms["adversarial"]
    return total, terms


@torch.no_grad()
def clip_weights_(module: nn.Module, clip: float) -> None:
    """WGAN Lipschitz constraint (Arjovsky et al.): every parameter clamped to [-clip, clip]."""
    for p in module.parameters():
        p.clamp_(-clip, clip)


def _init_weights(module: nn.Module) -> None:
    """Keras defaults (the public code): Glorot-uniform kernels, zero biases, BN 1 and 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def _check_config(cfg: Config) -> None:
    n_pools = sum(pool for _, pool in cfg.encoder)
    n_ups = len(cfg.decoder)
    if n_pools != n_ups:
        raise ValueError(f"encoder pools {n_pools} times but decoder upsamples {n_ups} times")
    step = 2 ** max(n_pools, len(cfg.critic))
    if cfg.image_size < step or cfg.image_size % step:
        raise ValueError(f"image_size must be a positive multiple of {step}, got {cfg.image_size}")
    for kind, _ in cfg.decoder:
        if kind not in DECODER_KINDS:
            raise ValueError(f"decoder stage kind {kind!r} is not one of {DECODER_KINDS}")
    if not 0.0 <= cfg.lam <= 1.0:
        raise ValueError(f"lam must lie in [0, 1] (Eq. 5), got {cfg.lam}")
    if cfg.clip_value <= 0:
        raise ValueError(f"clip_value must be positive, got {cfg.clip_value}")
    for name in ("adv_warmup_steps", "pixel_l1_weight", "feature_weight", "recon_warmup_steps"):
        if getattr(cfg, name) < 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(cfg, name)}")
    if cfg.recon_warmup_steps and not cfg.pixel_l1_weight:
        raise ValueError("recon_warmup_steps: the warm-up trains on the hole-pixel L1 alone, so "
                         "pixel_l1_weight must be > 0")
    if cfg.n_critic < 1:
        raise ValueError(f"n_critic must be >= 1, got {cfg.n_critic}")
    if cfg.critic_lr <= 0 or cfg.lr <= 0:
        raise ValueError(f"learning rates must be positive, got lr={cfg.lr}, critic_lr={cfg.critic_lr}")


# blocks


class EncoderBlock(nn.Module):
    """s3.1: conv 5x5 dilation 2 ('same') -> LeakyReLU 0.2 -> [BN] -> [2x2 max pool]."""

    def __init__(self, *, in_ch: int, out_ch: int, cfg: Config, pool: bool, batch_norm: bool):
        super().__init__()
        pad = cfg.dilation * (cfg.kernel_size - 1) // 2  # 'same': 4 for 5x5 dilation 2
        self.conv = nn.Conv2d(in_ch, out_ch, cfg.kernel_size, padding=pad, dilation=cfg.dilation)
        self.act = nn.LeakyReLU(cfg.leaky_slope)
        self.norm = nn.BatchNorm2d(out_ch, momentum=cfg.bn_momentum) if batch_norm else nn.Identity()
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.norm(self.act(self.conv(x))))


class UpConv(nn.Module):
    """s3.1 learnable up-sampling: reflection pad 1, ConvTranspose 4x4 stride 2 cropped by 3
    (output exactly 2H x 2W), ReLU, [BN]."""

    def __init__(self, *, in_ch: int, out_ch: int, cfg: Config):
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv = nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=3)  # (H+1)*2-6+4 = 2H
        self.act = nn.ReLU()
        self.norm = nn.BatchNorm2d(out_ch, momentum=cfg.bn_momentum) if cfg.batch_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.act(self.conv(self.pad(x))))


class BilinearUp(nn.Module):
    """Bilinear 2x resize then reflection-padded conv 3x3, ReLU, [BN] (the public code's
    UpSampling2D(bilinear) + 3x3 stride-1 Conv2DTranspose stage)."""

    def __init__(self, *, in_ch: int, out_ch: int, cfg: Config):
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv = nn.Conv2d(in_ch, out_ch, 3)
        self.act = nn.ReLU()
        self.norm = nn.BatchNorm2d(out_ch, momentum=cfg.bn_momentum) if cfg.batch_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)  # (B, C, 2H, 2W)
        return self.norm(self.act(self.conv(self.pad(x))))


# generator


class RMNetGenerator(nn.Module):
    """G: (image (B, 3, H, W) in [-1, 1], hole mask (B, 1, H, W), 1 = hole) -> I_pred
    (B, 3, H, W) in [-1, 1], the raw prediction on every pixel. Compose with
    ``models.common.compose`` (= I_M + I_Mpred, Eqs. 1-2) for the inpainted image."""

    def __init__(self, cfg: Config):
        super().__init__()
        _check_config(cfg)
        self.n_pools = sum(pool for _, pool in cfg.encoder)
        widths = [cfg.base_width * m for m, _ in cfg.encoder]
        last = len(cfg.encoder) - 1
        self.encoder = nn.Sequential(*(
            EncoderBlock(in_ch=c_in, out_ch=c_out, cfg=cfg, pool=pool,
                         batch_norm=cfg.batch_norm and i < last)  # public code: no BN at the bottleneck
            for i, (c_in, c_out, (_, pool)) in enumerate(zip([3] + widths, widths, cfg.encoder))))
        self.dropout = nn.Dropout(cfg.bottleneck_dropout)
        blocks, c_in = [], widths[-1]
        for kind, mult in cfg.decoder:
            block = UpConv if kind == "up-conv" else BilinearUp
            blocks.append(block(in_ch=c_in, out_ch=cfg.base_width * mult, cfg=cfg))
            c_in = cfg.base_width * mult
        self.decoder = nn.Sequential(*blocks)
        self.to_image = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c_in, 3, 3), nn.Tanh())
        self.apply(_init_weights)

    def num_parameters(self) -> int:
        return count_parameters(self)

    def forward(self, image: torch.Tensor, hole_mask: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        if h % 2**self.n_pools or w % 2**self.n_pools:
            raise ValueError(f"R-MNet needs H and W divisible by {2**self.n_pools}, got {h}x{w}")
        known = to_known_is_one(hole_mask)  # the paper's M: 1 = known (project: 1 = hole)
        x = masked_image(image, known)  # Eq. 1, (B, 3, H, W)
        x = self.dropout(self.encoder(x))  # (B, 8 base, H/16, W/16)
        return self.to_image(self.decoder(x))  # (B, 3, H, W) = I_pred


# discriminator (Wasserstein critic)


class RMNetCritic(nn.Module):
    """D: images (B, 3, S, S) -> scores (B,), unbounded (Wasserstein critic, Eq. 6)."""

    def __init__(self, cfg: Config):
        super().__init__()
        _check_config(cfg)
        self.image_size = cfg.image_size
        widths = [cfg.critic_width * m for m in cfg.critic]
        layers: list[nn.Module] = []
        for i, (c_in, c_out) in enumerate(zip([3] + widths, widths)):
            layers.append(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1))  # (S/2^(i+1))^2
            if cfg.batch_norm and i > 0:  # public code: no BN on the first conv
                layers.append(nn.BatchNorm2d(c_out, momentum=cfg.bn_momentum))
            layers += [nn.LeakyReLU(cfg.leaky_slope), nn.Dropout(cfg.critic_dropout)]
        self.body = nn.Sequential(*layers)
        side = cfg.image_size // 2 ** len(widths)
        self.to_score = nn.Linear(side * side * widths[-1], 1)
        self.apply(_init_weights)

    def num_parameters(self) -> int:
        return count_parameters(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(f"the critic is built for {self.image_size}x{self.image_size} images "
                             f"(Config.image_size), got shape {tuple(x.shape)}: set the model config's "
                             f"image_size to the training size (model_config / --set image_size=N)")
        h = self.body(x)  # (B, 8 width, S/16, S/16)
        return self.to_score(rearrange(h, "b c h w -> b (c h w)")).squeeze(1)  # (B,)


# training recipe


class RMNetRecipe:
    """R-MNet training (s3.2, s4.2): nets "generator" and "critic"; a frozen VGG-19 giving
    block3_conv3 features is required (``models.vgg.load_vgg19``)."""

    def __init__(self, cfg: Config, *, vgg: nn.Module | None = None):
        _check_config(cfg)
        if vgg is None:
            raise ValueError("R-MNet's losses need VGG-19 block3_conv3 features: pass "
                             "vgg=models.vgg.load_vgg19(path, layers=('block3_conv3',))")
        if cfg.vgg_layer not in getattr(vgg, "layers", ()):
            raise ValueError(f"the VGG-19 passed computes {getattr(vgg, 'layers', None)}, "
                             f"not {cfg.vgg_layer!r}")
        self.cfg = cfg
        self.vgg = vgg  # frozen, not trained, not checkpointed; follows the images' device
        self.mask_families: tuple[str, ...] = ("free-form",)  # stand-in for Quick Draw (see docstring)
        generator, critic = RMNetGenerator(cfg), RMNetCritic(cfg)
        clip_weights_(critic, cfg.clip_value)  # start inside the WGAN clip box
        self.nets: dict[str, nn.Module] = {"generator": generator, "critic": critic}
        self.optimizers = {
            "generator": torch.optim.Adam(generator.parameters(), lr=cfg.lr, betas=cfg.betas,
                                          eps=cfg.adam_eps),
            "critic": torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr, betas=cfg.critic_betas,
                                       eps=cfg.adam_eps),
        }
        self.critic_lr_note = cfg.critic_lr_note

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """phi: VGG-19 block3_conv3 features of images in [-1, 1] (s3.2.1)."""
        if next(self.vgg.parameters()).device != x.device:
            self.vgg.to(x.device)  # the engine moves the nets; the frozen VGG follows the data
        return self.vgg(x)[self.cfg.vgg_layer]

    def training_step(self, images: torch.Tensor, masks: torch.Tensor | None,
                      ctx: StepContext) -> dict[str, torch.Tensor]:
        if masks is None:
            raise ValueError("R-MNet is an inpainting model: training_step needs masks (1 = hole)")
        cfg = self.cfg
        G, D = self.nets["generator"], self.nets["critic"]
        opt_g, opt_d = self.optimizers["generator"], self.optimizers["critic"]
        known = to_known_is_one(masks)  # the paper's M (1 = known) for Eqs. 2 and 4
        warm = ctx.step < cfg.recon_warmup_steps  # demo only: pixel L1 alone first
        adversarial = ctx.step >= cfg.adv_warmup_steps and not warm

        with ctx.autocast():
            pred = G(images, masks)  # I_pred, (B, 3, H, W)
        fake = pred.detach()

        d_loss = pred.new_zeros((), dtype=torch.float32)
        for _ in range(cfg.n_critic if adversarial else 0):  # each update reuses the step's batch and fake
            opt_d.zero_grad(set_to_none=True)
            with ctx.autocast():
                d_loss = critic_loss(D(images), D(fake))  # -L_w, Eq. 6
            d_loss.backward()
            opt_d.step()
            clip_weights_(D, cfg.clip_value)

        opt_g.zero_grad(set_to_none=True)
        with ctx.autocast():
            adv_weight = cfg.adv_weight if adversarial else 0.0
            fake_scores = D(pred) if adv_weight else None
            g_total, terms = generator_loss(pred=pred, image=images, known=known,
                                            features=self.features, lam=cfg.lam,
                                            adv_weight=adv_weight, fake_scores=fake_scores,
                                            pixel_l1_weight=cfg.pixel_l1_weight,
                                            feature_weight=0.0 if warm else cfg.feature_weight)
        g_total.backward()
        opt_g.step()
        # the critic's grads from this backward are left behind; its next update zeroes them

        return {"critic_loss": d_loss.detach(), "wasserstein": -d_loss.detach(),
                "generator_loss": g_total.detach(), **{k: v.detach() for k, v in terms.items()}}

    @torch.no_grad()
    def preview(self, images: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        """The composite I_M + I_Mpred (known pixels exact), G in eval mode: (B, 3, H, W)."""
        if masks is None:
            raise ValueError("R-MNet preview needs masks (1 = hole)")
        with eval_mode(self.nets["generator"]) as G:
            pred = G(images, masks).to(images.dtype)
        return compose(pred, images, masks)

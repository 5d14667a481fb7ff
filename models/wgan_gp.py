"""The improved WGAN of paper 002: a residual WGAN-GP generator and critic (layer norm in the
critic), trained on 64x64 images, whose generator semantic inpainting later inverts.

Papers
    002  Vitoria, Sintes, Ballester, "Semantic image inpainting through improved Wasserstein
         generative adversarial networks" (VISAPP 2019): s3.1 and Fig. 3 (architecture), s4
         (training: z ~ N(0, 1)^128, 50,000 iterations, batch 64, Adam lr 1e-4, beta1 0,
         beta2 0.9, random horizontal flips); Eq. (2)-(3) (Wasserstein distance, WGAN game).
    Gulrajani et al., "Improved training of Wasserstein GANs" (NeurIPS 2017): the gradient
         penalty (their Eq. 3, lambda = 10, n_critic = 5) and the 64x64 ResNet that paper 002's
         Fig. 3 draws.
Reference code: igul222/improved_wgan_training, ``gan_64x64.py`` (``GoodGenerator``,
``GoodDiscriminator``, ``ResidualBlock``, MODE 'wgan-gp'), ``tflib/ops/layernorm.py``.
Tables reproduced: none by itself; this is the model behind paper 002's Tables 1-2.

Architecture (64x64, dim = 64; ``channel_multipliers`` computes it for any size):

    G  z (128) -> linear -> 4x4x512
       -> ResBlock up x4: 8x8x512, 16x16x256, 32x32x128, 64x64x64
       -> BN -> ReLU -> conv 3x3 -> tanh: 64x64x3
    D  64x64x3 -> conv 3x3: 64x64x64
       -> ResBlock down x4: 32x32x128, 16x16x256, 8x8x512, 4x4x512
       -> flatten -> linear -> 1 score
    ResBlock  x -> norm -> ReLU -> conv 3x3 [up: nearest 2x before it] -> norm -> ReLU
              -> conv 3x3 [down: mean-pool 2x after it];  + shortcut: 1x1 conv with the same
              resampling (nearest-up before, mean-pool before).  norm = batch norm in G,
              layer norm in D.

Choices made where the paper is silent (or only draws)
    * Fig. 3's blocks are taken from Gulrajani's ``gan_64x64.py`` (the code paper 002 builds on):
      kernel 3, nearest-neighbour upsampling (tflib's depth_to_space of 4 copies), 2x2 mean
      pooling, the first conv of each block without bias (a norm follows), no norm or ReLU
      between D's last block and its linear layer.
    * "No fully connected layers": G's first layer is the linear projection to 4x4x512 that the
      paper itself describes; the critic's last 4x4x512 map "is flattened into a single scalar"
      (s3.1) by one linear layer, as ``GoodDiscriminator``. There is no hidden FC layer.
    * Layer norm (Ba et al.) normalises each sample over (C, H, W) with a per-channel scale and
      shift, exactly tflib's ``Layernorm(name, [1, 2, 3], x)``; PyTorch's ``GroupNorm(1, C)``
      computes that (``LayerNorm2d`` below), eps 1e-5. G keeps batch norm: the paper removes it
      from the critic only (s3.1), as the reference code.
    * Image sizes other than 64: a power of two >= 16, with log2(size) - 2 blocks and widths
      ``dim * min(8, 2**k)`` (the paper's table at 64). ``Config.tiny`` keeps 64x64, dim 8.
    * One engine step = one generator iteration = ``n_critic`` (5) critic updates then one
      generator update (the paper's "iterations" count generator updates, as in the reference
      code). The engine hands one batch per step and every critic update of the step reuses it,
      each time with a fresh random flip, fresh fakes and fresh interpolation weights. The
      reference code draws a new real batch per critic update, so per iteration the critic sees
      64 real images here instead of 5 x 64 (splitting the batch would instead leave 12 or 13
      per critic update). The reported losses are those of the last critic update.
    * Horizontal flip: each real image is flipped with probability 1/2, per sample, inside
      ``training_step`` (s4: "randomly applying a horizontal flipping").
    * The gradient penalty (Gulrajani Eq. 3): interpolates real + alpha (fake - real) with one
      alpha ~ U[0, 1] per sample, lambda E[(||grad_x D||_2 - 1)^2]; the interpolates, the
      gradient and the penalty are computed in fp32 (the critic's forward may run under bf16
      autocast). The critic is called on real, fake and interpolates separately (it has no
      batch statistics), with one backward pass after all three: fine for a DDP-wrapped critic,
      whose inner ``autograd.grad`` is taken with respect to the inputs only. A critic wrapped
      by ``torch.compile`` is called uncompiled for the penalty (AOTAutograd has no double
      backward).
    * Init: convolutions Glorot-uniform with gain sqrt(2) (tflib's ``he_init``: std
      sqrt(4 / (fan_in + fan_out))), linear layers Glorot-uniform (tflib's default), biases 0,
      norm scale 1 and shift 0. tflib uses gain 1 on shortcuts and the critic's input conv;
      here every conv gets sqrt(2).
    * Noise (z, flips, alpha) comes from the global CPU torch generator and is moved to the
      images' device, so a seed gives the same draws on CPU and CUDA. ``preview`` samples a fixed
      z drawn once in ``__init__``, with G in eval mode, and restores G's mode afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import torch
from einops import rearrange
from torch import nn

from inpaintflow.models.common import StepContext, count_parameters, eval_mode


@dataclass
class Config:
    image_size: int = 64  # s4: CelebA and SVHN at 64x64
    z_dim: int = 128  # s4: z ~ N(0, 1)^128
    dim: int = 64  # base width: G starts at 4x4x(8 dim) = 4x4x512 (s3.1)
    kernel_size: int = 3  # gan_64x64.py
    lr: float = 1e-4  # s4
    betas: tuple[float, float] = (0.0, 0.9)  # s4
    batch_size: int = 64  # s4
    iterations: int = 50_000  # s4: generator iterations (each with n_critic critic updates)
    n_critic: int = 5  # critic updates per generator update (Gulrajani et al.)
    gp_weight: float = 10.0  # lambda of the gradient penalty (Gulrajani et al.)
    hflip: bool = True  # s4: random horizontal flips of the training images
    n_preview: int = 64  # samples in the preview grid

    @classmethod
    def tiny(cls) -> Config:
        """A CPU-sized model for tests and the demo profile (64x64, as the demo's CelebA
        stand-in and its 64x64 inpainting masks)."""
        return cls(dim=8, batch_size=8, iterations=20, n_preview=8)


# helpers


def channel_multipliers(image_size: int) -> tuple[int, ...]:
    """Widths / dim of D's feature maps from full resolution down to 4x4; G uses them reversed.
    At 64x64: (1, 2, 4, 8, 8), i.e. G's 4x4x8d -> 8x8x8d -> 16x16x4d -> 32x32x2d -> 64x64x1d
    of ``GoodGenerator`` and the mirror image in ``GoodDiscriminator``."""
    if image_size < 16 or image_size & (image_size - 1):
        raise ValueError(f"image_size must be a power of two >= 16, got {image_size}")
    n_blocks = int(math.log2(image_size)) - 2  # 2x resamplings between 4x4 and the image
    return tuple(min(8, 2**k) for k in range(n_blocks)) + (8,)


def random_hflip(images: torch.Tensor) -> torch.Tensor:
    """Flip each image (B, C, H, W) left-right with probability 1/2 (global CPU torch RNG)."""
    flip = (torch.rand(images.shape[0]) < 0.5).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Eq. (3), the critic's side: maximise E[D(x)] - E[D(G(z))] (the Wasserstein estimate of
    Eq. 2), i.e. minimise its negative."""
    return fake_scores.float().mean() - real_scores.float().mean()


def generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """Eq. (3), the generator's side: minimise -E[D(G(z))]."""
    return -fake_scores.float().mean()


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor, *, weight: float) -> torch.Tensor:
    """Gulrajani et al. Eq. (3): weight * E[(||grad_x D(x_hat)||_2 - 1)^2] at
    x_hat = real + alpha (fake - real), one alpha ~ U[0, 1] per sample.

    ``create_graph=True`` so the penalty back-propagates into the critic's parameters. The
    interpolates, gradient and penalty are fp32 whatever autocast the critic runs under.
    """
    alpha = torch.rand(real.shape[0], 1, 1, 1).to(real.device)  # (B, 1, 1, 1)
    real, fake = real.detach().float(), fake.detach().float()
    x_hat = (real + alpha * (fake - real)).requires_grad_(True)  # (B, C, H, W)
    scores = critic(x_hat)  # (B,)
    (grad,) = torch.autograd.grad(scores.float().sum(), x_hat, create_graph=True)
    with torch.autocast(device_type=grad.device.type, enabled=False):
        slopes = grad.float().flatten(1).norm(2, dim=1)  # (B,)
        return weight * ((slopes - 1) ** 2).mean()


# blocks


class LayerNorm2d(nn.GroupNorm):
    """Layer norm of (B, C, H, W) maps over (C, H, W), per-channel affine (tflib Layernorm)."""

    def __init__(self, num_channels: int, *, eps: float = 1e-5):
        super().__init__(1, num_channels, eps=eps)


class ResidualBlock(nn.Module):
    """Fig. 3 (bottom), gan_64x64.py ``ResidualBlock``: x -> shortcut(x) + F(x), resampling 2x.

    up:   F = norm, ReLU, nearest-up, conv, norm, ReLU, conv;  shortcut = nearest-up, 1x1 conv
    down: F = norm, ReLU, conv, norm, ReLU, conv, mean-pool;   shortcut = mean-pool, 1x1 conv
    """

    def __init__(self, *, in_ch: int, out_ch: int, resample: Literal["up", "down"],
                 norm: Callable[[int], nn.Module], kernel_size: int = 3):
        super().__init__()
        if resample not in ("up", "down"):
            raise ValueError(f"resample must be 'up' or 'down', got {resample!r}")
        pad = kernel_size // 2
        if resample == "up":
            self.shortcut = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                          nn.Conv2d(in_ch, out_ch, 1))
            self.residual = nn.Sequential(
                norm(in_ch), nn.ReLU(), nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(in_ch, out_ch, kernel_size, padding=pad, bias=False),
                norm(out_ch), nn.ReLU(),
                nn.Conv2d(out_ch, out_ch, kernel_size, padding=pad))
        else:
            self.shortcut = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(in_ch, out_ch, 1))
            self.residual = nn.Sequential(
                norm(in_ch), nn.ReLU(),
                nn.Conv2d(in_ch, in_ch, kernel_size, padding=pad, bias=False),
                norm(in_ch), nn.ReLU(),
                nn.Conv2d(in_ch, out_ch, kernel_size, padding=pad), nn.AvgPool2d(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.residual(x)


def _init_wgan_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d):
        nn.init.xavier_uniform_(module.weight, gain=math.sqrt(2))  # tflib he_init
    elif isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
        return
    else:
        return
    if module.bias is not None:
        nn.init.zeros_(module.bias)


# generator


class Generator(nn.Module):
    """G: z (B, z_dim) -> images (B, 3, S, S) in [-1, 1]."""

    def __init__(self, cfg: Config):
        super().__init__()
        widths = [cfg.dim * m for m in reversed(channel_multipliers(cfg.image_size))]
        self.z_dim = cfg.z_dim
        self.project = nn.Linear(cfg.z_dim, 4 * 4 * widths[0])  # the only FC layer (s3.1)
        self.body = nn.Sequential(*(
            ResidualBlock(in_ch=c_in, out_ch=c_out, resample="up", norm=nn.BatchNorm2d,
                          kernel_size=cfg.kernel_size)
            for c_in, c_out in zip(widths, widths[1:])))
        self.to_image = nn.Sequential(
            nn.BatchNorm2d(widths[-1]), nn.ReLU(),
            nn.Conv2d(widths[-1], 3, cfg.kernel_size, padding=cfg.kernel_size // 2), nn.Tanh())
        self.apply(_init_wgan_weights)

    def num_parameters(self) -> int:
        return count_parameters(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = rearrange(self.project(z), "b (c h w) -> b c h w", h=4, w=4)  # (B, 8 dim, 4, 4)
        return self.to_image(self.body(h))  # (B, 3, S, S)


# discriminator (critic)


class Critic(nn.Module):
    """D: images (B, 3, S, S) -> scores (B,). Layer norm, no batch norm: each sample's score
    and gradient depend on that sample alone (s3.1), as the per-sample penalty requires."""

    def __init__(self, cfg: Config):
        super().__init__()
        widths = [cfg.dim * m for m in channel_multipliers(cfg.image_size)]
        self.image_size = cfg.image_size
        self.from_image = nn.Conv2d(3, widths[0], cfg.kernel_size, padding=cfg.kernel_size // 2)
        self.body = nn.Sequential(*(
            ResidualBlock(in_ch=c_in, out_ch=c_out, resample="down", norm=LayerNorm2d,
                          kernel_size=cfg.kernel_size)
            for c_in, c_out in zip(widths, widths[1:])))
        self.to_score = nn.Linear(4 * 4 * widths[-1], 1)  # "flattened into a single scalar"
        self.apply(_init_wgan_weights)

    def num_parameters(self) -> int:
        return count_parameters(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"expected {self.image_size}x{self.image_size} images, "
                             f"got shape {tuple(x.shape)}")
        h = self.body(self.from_image(x))  # (B, 8 dim, 4, 4)
        return self.to_score(rearrange(h, "b c h w -> b (c h w)")).squeeze(1)  # (B,)


# training recipe


class WGANGPRecipe:
    """WGAN-GP training of paper 002 (s4): nets "generator" and "critic"."""

    def __init__(self, cfg: Config, *, vgg: nn.Module | None = None):
        del vgg  # no perceptual network in training
        if cfg.n_critic < 1:
            raise ValueError(f"n_critic must be >= 1, got {cfg.n_critic}")
        self.cfg = cfg
        self.mask_families: tuple[str, ...] = ()  # unconditional
        self.nets: dict[str, nn.Module] = {"generator": Generator(cfg), "critic": Critic(cfg)}
        self.optimizers = {name: torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=cfg.betas)
                           for name, net in self.nets.items()}
        self.preview_z = self.sample_z(cfg.n_preview)  # fixed noise of the preview grid

    def sample_z(self, n: int, *, device: torch.device | str | None = None) -> torch.Tensor:
        """z ~ N(0, 1)^z_dim, (n, z_dim), from the global (CPU) torch generator."""
        z = torch.randn(n, self.cfg.z_dim)
        return z if device is None else z.to(device)

    def training_step(self, images: torch.Tensor, masks: torch.Tensor | None,
                      ctx: StepContext) -> dict[str, torch.Tensor]:
        del masks  # unconditional
        cfg = self.cfg
        G, D = self.nets["generator"], self.nets["critic"]
        # torch.compile's AOTAutograd cannot double-backward: the penalty's forward runs the
        # compiled critic's original module (still the DDP wrapper when distributed)
        D_eager = getattr(D, "_orig_mod", D)
        opt_g, opt_d = self.optimizers["generator"], self.optimizers["critic"]
        batch = images.shape[0]

        for _ in range(cfg.n_critic):  # every critic update reuses the step's batch
            real = random_hflip(images) if cfg.hflip else images
            with torch.no_grad(), ctx.autocast():
                fake = G(self.sample_z(batch, device=images.device))
            opt_d.zero_grad(set_to_none=True)
            with ctx.autocast():
                w_loss = critic_loss(D(real), D(fake))
                gp = (gradient_penalty(D_eager, real, fake, weight=cfg.gp_weight) if cfg.gp_weight
                      else torch.zeros((), device=images.device))
                d_total = w_loss + gp
            d_total.backward()
            opt_d.step()

        opt_g.zero_grad(set_to_none=True)
        with ctx.autocast():
            g_loss = generator_loss(D(G(self.sample_z(batch, device=images.device))))
        g_loss.backward()
        opt_g.step()
        # the critic's grads from the G step are left behind; its next update starts with
        # zero_grad

        return {"critic_loss": d_total.detach(), "wasserstein": -w_loss.detach(),
                "gradient_penalty": gp.detach(), "generator_loss": g_loss.detach()}

    @torch.no_grad()
    def preview(self, images: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        """Samples from the fixed preview noise, G in eval mode: (n_preview, 3, S, S)."""
        with eval_mode(self.nets["generator"]) as G:
            return G(self.preview_z.to(images.device)).float()

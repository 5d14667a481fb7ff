"""The DCGAN of Yeh et al. (2017): the generative model that semantic inpainting by latent
optimisation inverts, in paper 001 and as the baseline of paper 002.

Papers
    001  Malesevic, Mayer, Gu, Timofte, "Refinement GAN with global consensus", s3.2: "We use
         the same GAN architecture and training policy as proposed by Yeh et al. [23], namely a
         DCGAN [20]" -- z ~ U[-1, 1]^100, 64x64x3 output, Adam lr 0.002, beta1 0.5, beta2 0.9,
         batch 64, 25 epochs; the GAN objective is its Eq. (1).
    Yeh et al., "Semantic image inpainting with deep generative models", CVPR 2017.
    Radford, Metz, Chintala, "Unsupervised representation learning with deep convolutional
         GANs" (DCGAN), ICLR 2016: the architecture.
Reference code: carpedm20/DCGAN-tensorflow (``model.py``, ``ops.py``), the code Yeh et al.
build on (bamos/dcgan-completion.tensorflow is the same training loop).
Tables reproduced: none by itself. This is the G and D behind paper 001's Tables 1-2 and the
Yeh et al. rows of paper 002's Tables 1-2; inpainting later calls ``G(z)`` and ``D(x)``.

Architecture (64x64, gf = df = 64; ``layer_table`` below computes it for any size):

    G  z (100) -> linear -> 4x4x512 -> BN, ReLU
       -> [deconv 5x5 /2 -> BN -> ReLU] x3: 8x8x256, 16x16x128, 32x32x64
       -> deconv 5x5 /2 -> tanh: 64x64x3
    D  64x64x3 -> conv 5x5 /2 -> LReLU(0.2): 32x32x64
       -> [conv 5x5 /2 -> BN -> LReLU(0.2)] x3: 16x16x128, 8x8x256, 4x4x512
       -> flatten -> linear -> 1 logit

Choices made where the papers are silent
    * Transposed conv: kernel 5, stride 2, padding 2, output_padding 1 (exactly 2x, the 5x5
      kernels and parameter count of TF 'SAME'). TF's 'SAME' pads 1 before and 2 after, PyTorch
      2 and 2 with the extra row at the end: the sampling grid is shifted by one pixel, which
      matters only for porting TF weights (none is ported here). D's conv: kernel 5, stride 2,
      padding 2 (the same one-pixel shift).
    * Image sizes other than 64: a power of two >= 16. G always starts at 4x4 and uses
      log2(size) - 2 transposed convs, widths halving down to gf; D mirrors it (carpedm20
      instead starts at size/16 with four deconvs). ``Config.tiny`` keeps 64x64, gf = df = 8.
    * Loss: the non-saturating GAN loss (binary cross-entropy on logits): D minimises
      BCE(D(x), 1) + BCE(D(G(z)), 0) (the sum, as carpedm20), G minimises BCE(D(G(z)), 1) =
      -log D(G(z)) rather than Eq. (1)'s log(1 - D(G(z))), as Goodfellow et al. and carpedm20.
    * lr 0.002 is paper 001's stated value (DCGAN's and carpedm20's usual is 0.0002); kept.
    * Two generator updates per discriminator update with the same z, as carpedm20 ("Run
      g_optim twice to make sure that d_loss does not go to zero"); ``generator_steps``.
    * D scores the real and the fake batch in separate calls, so its batch norm normalises
      each with its own statistics (carpedm20 does the same).
    * Init: conv, deconv and linear weights ~ N(0, 0.02) (DCGAN paper; carpedm20 uses a
      truncated normal for conv), biases 0, batch-norm scale 1 and shift 0. Batch norm has
      PyTorch's momentum 0.1 = TF decay 0.9 and eps 1e-5, as carpedm20.
    * Noise z, like all randomness here, comes from the global CPU torch generator and is moved
      to the images' device, so a seed gives the same z on CPU and CUDA.
    * ``preview`` samples from a fixed z drawn once in ``__init__`` (from the global RNG, so
      the engine's seed fixes it), with G in eval mode (batch-norm running statistics, like
      carpedm20's sampler), and restores G's mode afterwards.
    * Training length: ``epochs`` (25) of ``batch_size`` (64) are recorded here; the engine
      counts steps (params.yaml: 25 epochs' worth). Each step = 1 D update +
      ``generator_steps`` G updates on one batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from inpaintflow.models.common import StepContext, count_parameters, eval_mode


@dataclass
class Config:
    image_size: int = 64  # paper 001 s3.2: 64x64x3
    z_dim: int = 100  # U[-1, 1]^100
    gf: int = 64  # generator width: 4x4x(8 gf) at 64x64 (carpedm20 gf_dim)
    df: int = 64  # discriminator width (carpedm20 df_dim)
    kernel_size: int = 5
    leaky_slope: float = 0.2
    init_std: float = 0.02  # N(0, 0.02) weights (DCGAN paper)
    lr: float = 0.002  # paper 001 s3.2 (DCGAN's usual 0.0002; the paper's value is kept)
    betas: tuple[float, float] = (0.5, 0.9)  # paper 001 s3.2
    batch_size: int = 64
    epochs: int = 25
    generator_steps: int = 2  # G updates per D update (carpedm20 runs g_optim twice)
    n_preview: int = 64  # samples in the preview grid

    @classmethod
    def tiny(cls) -> Config:
        """A CPU-sized model for tests and the demo profile (64x64, as the demo's CelebA
        stand-in and its 64x64 inpainting masks)."""
        return cls(gf=8, df=8, batch_size=8, epochs=1, n_preview=8)


# helpers


def layer_table(image_size: int, base: int) -> tuple[tuple[int, int], ...]:
    """(resolution, channels) of G's feature maps from the 4x4 projection to the last hidden
    layer, widths doubling towards 4x4; D visits the same table in reverse. At 64x64, base 64:
    ((4, 512), (8, 256), (16, 128), (32, 64)), carpedm20's table."""
    if image_size < 16 or image_size & (image_size - 1):
        raise ValueError(f"image_size must be a power of two >= 16, got {image_size}")
    n = int(math.log2(image_size)) - 2  # number of stride-2 layers between 4x4 and the image
    return tuple((4 * 2**i, base * 2 ** (n - 1 - i)) for i in range(n))


def up_conv(in_ch: int, out_ch: int, kernel_size: int) -> nn.ConvTranspose2d:
    """Transposed conv that exactly doubles H and W (module docstring: the TF 'SAME' shift)."""
    return nn.ConvTranspose2d(in_ch, out_ch, kernel_size, stride=2, padding=kernel_size // 2,
                              output_padding=1)


def down_conv(in_ch: int, out_ch: int, kernel_size: int) -> nn.Conv2d:
    """Conv that exactly halves H and W."""
    return nn.Conv2d(in_ch, out_ch, kernel_size, stride=2, padding=kernel_size // 2)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. (1), D's side: maximise log D(x) + log(1 - D(G(z))), i.e. minimise the BCE of the
    real logits against 1 plus that of the fake logits against 0."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake, {"d_loss_real": real, "d_loss_fake": fake}


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Eq. (1), G's side, non-saturating form: minimise -log D(G(z))."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


# blocks


def up_block(in_ch: int, out_ch: int, kernel_size: int) -> nn.Sequential:
    """deconv /2 -> BN -> ReLU: one hidden generator layer."""
    return nn.Sequential(up_conv(in_ch, out_ch, kernel_size), nn.BatchNorm2d(out_ch), nn.ReLU())


def down_block(in_ch: int, out_ch: int, kernel_size: int, *, slope: float, norm: bool
               ) -> nn.Sequential:
    """conv /2 -> [BN] -> LeakyReLU: one discriminator layer (no BN on the first)."""
    layers: list[nn.Module] = [down_conv(in_ch, out_ch, kernel_size)]
    if norm:
        layers.append(nn.BatchNorm2d(out_ch))
    layers.append(nn.LeakyReLU(slope))
    return nn.Sequential(*layers)


def _init_dcgan_weights(module: nn.Module, std: float) -> None:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# generator


class Generator(nn.Module):
    """G: z (B, z_dim) -> images (B, 3, S, S) in [-1, 1]."""

    def __init__(self, cfg: Config):
        super().__init__()
        table = layer_table(cfg.image_size, cfg.gf)
        channels = [ch for _, ch in table]
        self.z_dim = cfg.z_dim
        self.init_std = cfg.init_std
        self.project = nn.Linear(cfg.z_dim, 4 * 4 * channels[0])
        self.project_norm = nn.Sequential(nn.BatchNorm2d(channels[0]), nn.ReLU())
        self.body = nn.Sequential(*(up_block(c_in, c_out, cfg.kernel_size)
                                    for c_in, c_out in zip(channels, channels[1:])))
        self.to_image = nn.Sequential(up_conv(channels[-1], 3, cfg.kernel_size), nn.Tanh())
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        _init_dcgan_weights(module, self.init_std)

    def num_parameters(self) -> int:
        return count_parameters(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = rearrange(self.project(z), "b (c h w) -> b c h w", h=4, w=4)  # (B, 8gf, 4, 4)
        h = self.body(self.project_norm(h))  # (B, gf, S/2, S/2)
        return self.to_image(h)  # (B, 3, S, S)


# discriminator


class Discriminator(nn.Module):
    """D: images (B, 3, S, S) -> logits (B,) (real = positive)."""

    def __init__(self, cfg: Config):
        super().__init__()
        table = layer_table(cfg.image_size, cfg.df)
        channels = [3] + [ch for _, ch in reversed(table)]  # 3, df, 2df, ..., 8df
        self.image_size = cfg.image_size
        self.init_std = cfg.init_std
        self.body = nn.Sequential(*(
            down_block(c_in, c_out, cfg.kernel_size, slope=cfg.leaky_slope, norm=i > 0)
            for i, (c_in, c_out) in enumerate(zip(channels, channels[1:]))))
        self.to_logit = nn.Linear(4 * 4 * channels[-1], 1)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        _init_dcgan_weights(module, self.init_std)

    def num_parameters(self) -> int:
        return count_parameters(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"expected {self.image_size}x{self.image_size} images, "
                             f"got shape {tuple(x.shape)}")
        h = self.body(x)  # (B, 8df, 4, 4)
        return self.to_logit(rearrange(h, "b c h w -> b (c h w)")).squeeze(1)  # (B,)


# training recipe


class DCGANRecipe:
    """Unconditional DCGAN training (paper 001 s3.2): nets "generator" and "discriminator"."""

    def __init__(self, cfg: Config, *, vgg: nn.Module | None = None):
        del vgg  # the DCGAN uses no perceptual network
        if cfg.generator_steps < 1:
            raise ValueError(f"generator_steps must be >= 1, got {cfg.generator_steps}")
        self.cfg = cfg
        self.mask_families: tuple[str, ...] = ()  # unconditional
        self.nets: dict[str, nn.Module] = {"generator": Generator(cfg),
                                           "discriminator": Discriminator(cfg)}
        self.optimizers = {name: torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=cfg.betas)
                           for name, net in self.nets.items()}
        self.preview_z = self.sample_z(cfg.n_preview)  # fixed noise of the preview grid

    def sample_z(self, n: int, *, device: torch.device | str | None = None) -> torch.Tensor:
        """z ~ U[-1, 1]^z_dim, (n, z_dim), from the global (CPU) torch generator."""
        z = torch.rand(n, self.cfg.z_dim) * 2 - 1
        return z if device is None else z.to(device)

    def training_step(self, images: torch.Tensor, masks: torch.Tensor | None,
                      ctx: StepContext) -> dict[str, torch.Tensor]:
        del masks  # unconditional
        G, D = self.nets["generator"], self.nets["discriminator"]
        opt_g, opt_d = self.optimizers["generator"], self.optimizers["discriminator"]
        z = self.sample_z(images.shape[0], device=images.device)

        # D: one update on the real batch and a fresh fake batch
        opt_d.zero_grad(set_to_none=True)
        with ctx.autocast():
            with torch.no_grad():
                fake = G(z)
            d_total, d_terms = discriminator_loss(D(images), D(fake))
        d_total.backward()
        opt_d.step()

        # G: generator_steps updates with the same z (carpedm20)
        for _ in range(self.cfg.generator_steps):
            opt_g.zero_grad(set_to_none=True)
            with ctx.autocast():
                g_loss = generator_loss(D(G(z)))
            g_loss.backward()
            opt_g.step()
        # D's grads from the G step are left behind; the next D step starts with zero_grad

        return {"d_loss": d_total.detach(), **{k: v.detach() for k, v in d_terms.items()},
                "g_loss": g_loss.detach()}

    @torch.no_grad()
    def preview(self, images: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        """Samples from the fixed preview noise, G in eval mode: (n_preview, 3, S, S)."""
        with eval_mode(self.nets["generator"]) as G:
            return G(self.preview_z.to(images.device)).float()

"""What the papers truly share: compositing, a spectral-norm conv, parameter counts, and the
interface the training engine drives (:class:`Recipe`).

Paper-specific blocks stay in the paper's own file (see ../shared/STYLE.md, section 1).
Conventions (inpaintflow/conventions.py): images (B, 3, H, W) float in [-1, 1] RGB; masks
(B, 1, H, W) float, 1 = hole. A paper whose equations use 1 = known converts with
``to_known_is_one`` at its own edge.
"""

from __future__ import annotations

import hashlib
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol

import torch
from torch import nn


def compose(pred: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Known pixels from ``image``, hole pixels from ``pred`` (mask: 1 = hole). Exact on known
    pixels: ``mask`` is binary, so no arithmetic touches them."""
    return torch.where(mask.bool(), pred, image)


def masked_input(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The damaged image a model sees: holes zeroed (the middle grey of [-1, 1])."""
    return image * (1 - mask)


def sn_conv2d(in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, padding: int = 0,
              **kwargs: Any) -> nn.Module:
    """A spectral-normalised Conv2d (Miyato et al. 2018), as the region-wise and GLA
    discriminators use."""
    return nn.utils.parametrizations.spectral_norm(
        nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=padding, **kwargs))


# ---------------------------------------------------------------------------------------------
# weight files of the frozen feature nets (VGG-19, FID Inception)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hub_sha256_prefix(path: Path) -> str | None:
    """The sha256 prefix a ``...-<hex>.pth`` name promises (torch hub convention), or None."""
    match = re.search(r"-([0-9a-f]{6,64})\.pth?$", Path(path).name)
    return match.group(1) if match else None


def load_state_dict_file(path: Path, *, error: type[Exception], url: str, how_to_get: str
                         ) -> tuple[dict[str, Any], str]:
    """(state dict, sha256) of a torch weights file, checked against the sha256 prefix its name
    promises. Every failure raises ``error`` naming the file and where to get a good copy."""
    path = Path(path)
    digest = sha256_of(path)
    prefix = hub_sha256_prefix(path)
    if prefix is not None and not digest.startswith(prefix):
        raise error(f"{path}: sha256 {digest[:16]}... does not start with {prefix!r}, the prefix its "
                    f"name promises: the file is corrupt or incomplete. Download it again from {url}. "
                    f"{how_to_get}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise error(f"{path}: not a readable torch state dict ({err}). {how_to_get}") from err
    if not isinstance(state, dict):
        raise error(f"{path}: expected a state dict, got {type(state).__name__}. {how_to_get}")
    return state, digest


@contextmanager
def eval_mode(net: nn.Module) -> Iterator[nn.Module]:
    """Run ``net`` in eval mode (batch-norm running stats, no dropout), then restore its mode."""
    was_training = net.training
    net.eval()
    try:
        yield net
    finally:
        net.train(was_training)


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


@dataclass(frozen=True)
class StepContext:
    """What the engine hands a recipe each step."""

    step: int
    autocast: Any  # a context manager factory: bf16 autocast on CUDA, nullcontext on CPU
    device: torch.device


class Recipe(Protocol):
    """One paper's training: the engine owns data, devices, checkpoints and logging; the
    recipe owns the networks, their optimisers and one training step.

    * ``nets``: name -> module. The engine moves them to the device, wraps them in DDP when
      distributed, and replaces the dict's values; a recipe must always call
      ``self.nets[name]``, never a module kept elsewhere.
    * ``optimizers``: name -> optimiser over those nets (built in ``__init__``).
    * ``training_step(images, masks, ctx)``: images (B, 3, H, W) in [-1, 1]; masks
      (B, 1, H, W), 1 = hole, or None for the unconditional GANs. It does every backward pass
      and optimiser step of one iteration (e.g. 5 critic steps then 1 generator step) and
      returns detached scalar losses by name.
    * ``preview(images, masks)``: (B, 3, H, W) in [-1, 1] for the image grid, without grad.
    * ``mask_families``: the training mask families of the paper (empty: no masks).
    """

    nets: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    mask_families: tuple[str, ...]

    def training_step(self, images: torch.Tensor, masks: torch.Tensor | None,
                      ctx: StepContext) -> dict[str, torch.Tensor]: ...

    def preview(self, images: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor: ...

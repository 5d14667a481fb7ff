"""Validation while training: the model against the classical baselines on a fixed batch.

Every ``val_every`` steps the training engine inpaints one fixed validation batch (fixed images,
fixed masks, never the test split) and logs hole L1 and hole PSNR (``tasks/evaluate/metrics.py``'s
definitions, on the uint8 composite, as the tables score) under ``val/`` beside the same
figures of mean fill and cv2 Telea on the same pairs, so ``dvc plots show`` draws the step at
which the model passes them.

* Images: the dataset's ``val`` split when it has one; otherwise the last ``count`` images of
  its train split, which the engine then leaves out of training (see :func:`split_train_val`).
* Masks: drawn once from ``np.random.default_rng([seed, 11])``, image i from the paper's
  training families in turn (in the training ratio bin). Unconditional GANs (no training masks)
  are validated on centre squares, the pattern both latent papers report first.
* Feed-forward models are scored on ``recipe.preview`` (their inference path). Unconditional
  GANs are scored the way their papers inpaint: a short latent optimisation of their paper's
  objective (``val_latent_steps`` steps of Yeh et al.'s for DCGAN, paper 002's for WGAN-GP,
  from latents drawn from their own fixed seed, so validating draws nothing from the training
  RNG), then composited; a GAN has no other way to fill a hole. The tables blend instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from inpaintflow.conventions import composite_uint8, model_to_uint8, uint8_to_model
from inpaintflow.tasks.inpaint.baselines import mean_fill, telea
from inpaintflow.tasks.masks.generators import generate_mask

VAL_MASK_STREAM = 11  # the mask rng is default_rng([seed, VAL_MASK_STREAM])
GAN_VAL_FAMILY = "center-square"
LATENT_VALIDATION = {"dcgan": "yeh", "wgan-gp": "vitoria"}  # the method each GAN's paper fills holes with
LATENT_SEED = 12
BASELINES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {"mean_fill": mean_fill,
                                                                        "telea": telea}
FIGURES = ("hole_l1", "hole_psnr")


def split_train_val(splits: Sequence[str], count: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(train positions, validation positions, where validation came from) for a manifest's
    split column: its ``val`` rows, else the last ``count`` train rows (held out)."""
    splits = np.asarray(splits)
    train = np.flatnonzero(splits == "train")
    val = np.flatnonzero(splits == "val")
    if count <= 0:
        return train, val[:0], "none"
    if len(val):
        return train, val[:count], "val split"
    if len(train) <= count:
        raise ValueError(f"val_images: {count} held-out images leave no training images "
                         f"(the train split has {len(train)}); lower val_images or add a val split")
    return train[:-count], train[-count:], f"last {count} train images (held out)"


def validation_masks(families: Sequence[str], size: int, count: int, seed: int,
                     ratio_bin: tuple[float, float] | None = None) -> np.ndarray:
    """(count, H, W) uint8 masks, 1 = hole, a pure function of its arguments."""
    rng = np.random.default_rng([seed, VAL_MASK_STREAM])
    families = list(families) or [GAN_VAL_FAMILY]
    return np.stack([generate_mask(families[i % len(families)], size, rng, ratio_bin) for i in range(count)])


def hole_figures(pred_u8: np.ndarray, target_u8: np.ndarray, holes: np.ndarray) -> dict[str, float]:
    """Hole L1 ([0, 1] scale) and hole PSNR (set form: from the mean hole MSE) of a batch."""
    from inpaintflow.tasks.evaluate.metrics import image_metrics, psnr_of_mean_mse

    def nchw(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2)

    m = image_metrics(nchw(pred_u8), nchw(target_u8), torch.from_numpy(holes)[:, None])
    return {"hole_l1": float(m["hole_l1"].mean()), "hole_psnr": psnr_of_mean_mse(m["hole_mse"])}


def latent_fill(model: str, recipe: Any, images: torch.Tensor, masks: torch.Tensor, steps: int) -> torch.Tensor:
    """G(z) after ``steps`` steps of the model's paper's latent optimisation, (B, 3, H, W)."""
    from inpaintflow.tasks.inpaint import latent

    gen = torch.Generator().manual_seed(LATENT_SEED)  # never the global stream training draws from
    n, z_dim, G = images.shape[0], recipe.cfg.z_dim, recipe.nets["generator"]
    if LATENT_VALIDATION[model] == "vitoria":
        z0 = torch.randn(n, z_dim, generator=gen).to(images.device)  # paper 002: z ~ N(0, 1)
        res = latent.inpaint_vitoria(G, recipe.nets["critic"], images, masks, z0, latent.VitoriaSettings(steps=steps))
    else:
        z0 = (torch.rand(n, z_dim, generator=gen) * 2 - 1).to(images.device)  # paper 001: U[-1, 1]
        res = latent.inpaint_yeh(G, recipe.nets["discriminator"], images, masks, z0, latent.YehSettings(steps=steps))
    return res.images


@dataclass
class ValidationBatch:
    images_u8: np.ndarray  # (V, H, W, 3) RGB uint8
    holes: np.ndarray  # (V, H, W) uint8, 1 = hole
    source: str
    baselines: dict[str, dict[str, float]]  # name -> {hole_l1, hole_psnr}
    latent_model: str | None = None  # an unconditional GAN (LATENT_VALIDATION): fill by latent optimisation
    latent_steps: int = 0

    @classmethod
    def build(cls, images_u8: np.ndarray, holes: np.ndarray, source: str, *, latent_model: str | None = None,
              latent_steps: int = 0) -> "ValidationBatch":
        baselines = {name: hole_figures(np.stack([fn(im, h) for im, h in zip(images_u8, holes)]),
                                        images_u8, holes)
                     for name, fn in BASELINES.items()}
        return cls(images_u8=images_u8, holes=holes, source=source, baselines=baselines,
                   latent_model=latent_model, latent_steps=latent_steps)

    def model_inputs(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        images = uint8_to_model(torch.from_numpy(self.images_u8).to(device, torch.float32))
        masks = torch.from_numpy(self.holes).to(device, torch.float32)[:, None]
        return images.permute(0, 3, 1, 2).contiguous(), masks

    def score(self, recipe: Any, device: torch.device) -> dict[str, float]:
        """The model's figures on this batch (composited at file level, as the tables score)."""
        images, masks = self.model_inputs(device)
        if self.latent_model is not None:
            output = latent_fill(self.latent_model, recipe, images, masks, self.latent_steps)
        else:
            with torch.no_grad():
                output = recipe.preview(images, masks)
        pred = model_to_uint8(output.detach().float().permute(0, 2, 3, 1).cpu().numpy())
        figures = hole_figures(composite_uint8(pred, self.images_u8, self.holes), self.images_u8, self.holes)
        if not all(math.isfinite(v) for v in figures.values()):
            raise ValueError(f"validation figures are not finite: {figures}")
        return figures


def beats(model: dict[str, float], baseline: dict[str, float]) -> bool:
    """Lower hole L1 and higher hole PSNR than the baseline."""
    return model["hole_l1"] < baseline["hole_l1"] and model["hole_psnr"] > baseline["hole_psnr"]

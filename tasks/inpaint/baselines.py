"""Classical, training-free baselines, scored by the same metric code as the papers' models.

They are extra rows in every reproduced table: a GAN that cannot beat them on the same images
and masks has not been reproduced. Each takes and returns file-level arrays (RGB uint8
(H, W, 3), hole mask (H, W) with 1 = hole) and never changes a known pixel.

    telea          cv2.inpaint(INPAINT_TELEA): fast marching (Telea 2004)
    navier-stokes  cv2.inpaint(INPAINT_NS): fluid-dynamics isophote transport (Bertalmio et al. 2001)
    mean-fill      every hole pixel = the mean colour of the image's known pixels, rounded
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from inpaintflow.conventions import as_hole_mask

DEFAULT_RADIUS = 3  # cv2.inpaint's neighbourhood radius; OpenCV's samples use 3


def _cv2_inpaint(image: np.ndarray, hole: np.ndarray, flag: int, radius: int) -> np.ndarray:
    hole = as_hole_mask(hole)
    # cv2 works in BGR; converting around the call keeps RGB everywhere else
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    filled = cv2.cvtColor(cv2.inpaint(bgr, hole * 255, radius, flag), cv2.COLOR_BGR2RGB)
    return np.where(hole[..., None].astype(bool), filled, image)


def telea(image: np.ndarray, hole: np.ndarray, radius: int = DEFAULT_RADIUS) -> np.ndarray:
    return _cv2_inpaint(image, hole, cv2.INPAINT_TELEA, radius)


def navier_stokes(image: np.ndarray, hole: np.ndarray, radius: int = DEFAULT_RADIUS) -> np.ndarray:
    return _cv2_inpaint(image, hole, cv2.INPAINT_NS, radius)


def mean_fill(image: np.ndarray, hole: np.ndarray, radius: int = DEFAULT_RADIUS) -> np.ndarray:
    """Hole = the mean colour of the known pixels (mid-grey when nothing is known)."""
    hole = as_hole_mask(hole).astype(bool)
    known = image[~hole]
    colour = np.rint(known.mean(axis=0)) if known.size else np.full(3, 128.0)
    out = image.copy()
    out[hole] = colour.astype(np.uint8)
    return out


BASELINES: dict[str, tuple[str, Callable[..., np.ndarray]]] = {
    # name -> (row label in the tables, function)
    "telea": ("Telea (cv2)", telea),
    "navier-stokes": ("Navier-Stokes (cv2)", navier_stokes),
    "mean-fill": ("mean fill", mean_fill),
}

"""Fréchet Inception Distance between two folders of images (Heusel et al., NIPS 2017), as
reported by R-MNet (paper 000, Tables 1-3) and the region-wise GAN (paper 003, Tables 2-3).

FID fits a Gaussian to the 2048-d pool3 features of each image set and measures

    d^2 = ||mu_1 - mu_2||^2 + Tr(Sigma_1 + Sigma_2 - 2 (Sigma_1 Sigma_2)^(1/2))

(Heusel et al., eq. 6). Numbers are comparable with pytorch-fid's only because every convention
is the same: its Inception weights (:mod:`inpaintflow.models.inception`, which never downloads), RGB in
[0, 1] resized bilinearly to 299x299, covariances with ddof=1 (``np.cov``), and
``scipy.linalg.sqrtm`` with the same eps fallback. Neither paper states these conventions, and
FID is biased upwards for small sets (the covariance of n < 2048 images is singular): always
report the image count beside the value.

Without the weights the result is ``fid: None`` with the reason: never a number from another
network.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import scipy.linalg
import torch

from inpaintflow.conventions import read_image
from inpaintflow.models.inception import INCEPTION_WEIGHTS, load_fid_inception, resolve_inception_weights
from inpaintflow.tasks.data.download import ChecksumError, UnverifiedDownloadWarning, download, file_digest

SQRTM_EPS = 1e-6  # pytorch-fid's diagonal offset for a singular covariance product
IMAG_ATOL = 1e-3  # largest imaginary part on the diagonal of sqrtm treated as rounding noise


class FIDError(ValueError):
    """Statistics that cannot give a distance (shapes differ, too few samples, a truly complex
    square root); the message says which."""


# ---------------------------------------------------------------------------------------------
# the distance


def frechet_distance(mu1, sigma1, mu2, sigma2, *, eps: float = SQRTM_EPS) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (Heusel et al., eq. 6), in
    float64.

    ``(Sigma_1 Sigma_2)^(1/2)`` comes from ``scipy.linalg.sqrtm``. Two numerical cases, handled
    as pytorch-fid does so that values stay comparable:
    * With fewer samples than dimensions the covariances are singular, and so is their product;
      sqrtm of a singular matrix can come back with inf/nan. Then ``eps * I`` is added to both
      covariances, which makes the product invertible at a cost of O(eps) in the distance.
    * Sigma_1 Sigma_2 is similar to the PSD matrix Sigma_1^(1/2) Sigma_2 Sigma_1^(1/2), so its
      square root is real in exact arithmetic; rounding can leave tiny negative eigenvalues and
      a complex result. Imaginary parts below ``IMAG_ATOL`` on the diagonal are dropped; larger
      ones mean the inputs are not covariances, and raise.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or mu1.ndim != 1:
        raise FIDError(f"means must be vectors of the same length, got {mu1.shape} and {mu2.shape}")
    d = mu1.shape[0]
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise FIDError(f"covariances must be ({d}, {d}), got {sigma1.shape} and {sigma2.shape}")

    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(d) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        largest = np.abs(np.diagonal(covmean).imag).max()
        if largest > IMAG_ATOL:
            raise FIDError(f"sqrtm(sigma1 @ sigma2) has an imaginary component of {largest:.3g} on "
                           f"its diagonal: are both matrices covariances (symmetric PSD)?")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


# ---------------------------------------------------------------------------------------------
# streaming statistics


@dataclass
class FeatureStats:
    """Streaming mean and covariance of feature rows: count, sum and sum of outer products,
    all float64, so features never need to be held at once. ``cov`` uses ddof=1, as
    ``np.cov(features, rowvar=False)`` (pytorch-fid)."""

    n: int = 0
    total: np.ndarray | None = field(default=None, repr=False)  # (D,)
    outer: np.ndarray | None = field(default=None, repr=False)  # (D, D), sum of x x^T

    @property
    def dim(self) -> int | None:
        return None if self.total is None else self.total.shape[0]

    def update(self, features) -> "FeatureStats":
        """Add a batch of features (B, D) (numpy or torch, any float dtype)."""
        if isinstance(features, torch.Tensor):
            features = features.detach().cpu().double().numpy()
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2:
            raise FIDError(f"features must be (B, D), got shape {f.shape}")
        if self.total is None:
            self.total = np.zeros(f.shape[1])
            self.outer = np.zeros((f.shape[1], f.shape[1]))
        elif f.shape[1] != self.dim:
            raise FIDError(f"features have {f.shape[1]} dimensions, earlier batches had {self.dim}")
        self.n += f.shape[0]
        self.total += f.sum(axis=0)
        self.outer += f.T @ f
        return self

    def mean(self) -> np.ndarray:
        if self.n < 1:
            raise FIDError("no features: the mean of an empty set is undefined")
        return self.total / self.n

    def cov(self) -> np.ndarray:
        """(sum x x^T - n mu mu^T) / (n - 1)."""
        if self.n < 2:
            raise FIDError(f"{self.n} feature rows: a covariance needs at least 2")
        mu = self.mean()
        return (self.outer - self.n * np.outer(mu, mu)) / (self.n - 1)


# ---------------------------------------------------------------------------------------------
# images -> statistics -> FID


def uint8_to_unit(images: np.ndarray) -> torch.Tensor:
    """RGB uint8 (B, H, W, 3) -> float32 (B, 3, H, W) in [0, 1], the Inception net's input."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0


def activation_stats(net: torch.nn.Module, image_paths: Iterable[str | os.PathLike],
                     batch_size: int, device: str | torch.device) -> FeatureStats:
    """Pool3 feature statistics of the PNGs at ``image_paths`` (project RGB PNGs, read with
    :func:`read_image`), ``batch_size`` at a time. ``net`` must already be on ``device``.

    A batch holds images of one size only (the net resizes each to 299x299 anyway), so a
    folder of mixed sizes works and gives the same features as one image at a time.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device)
    stats = FeatureStats()
    batch: list[np.ndarray] = []

    def flush() -> None:
        if batch:
            x = uint8_to_unit(np.stack(batch)).to(device)  # (B, 3, H, W)
            with torch.inference_mode():
                stats.update(net(x))  # (B, 2048)
            batch.clear()

    for path in image_paths:
        image = read_image(path)  # (H, W, 3) uint8 RGB
        if batch and image.shape != batch[0].shape:
            flush()
        batch.append(image)
        if len(batch) == batch_size:
            flush()
    flush()
    return stats


def list_pngs(folder: str | os.PathLike) -> list[Path]:
    """The ``*.png`` files directly inside ``folder``, sorted by name (not recursive)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a directory of images")
    return sorted(p for p in folder.glob("*.png") if p.is_file())


def fid_between_dirs(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike,
                     weights: str | os.PathLike | None, *, batch_size: int = 32,
                     device: str | torch.device = "cpu") -> dict:
    """FID between the PNGs directly inside ``pred_dir`` and those inside ``gt_dir``.

    Returns ``{"fid": float | None, "reason": str, "weights": str, "count": int,
    "count_gt": int}``: ``count`` images in ``pred_dir``, ``count_gt`` in ``gt_dir``; ``weights``
    names the file and the start of its sha256 ("" when none was used). ``fid`` is None, with
    the reason, when the weights cannot be found (see
    :func:`inpaintflow.models.inception.resolve_inception_weights`) or a folder has fewer than 2 images.
    A weight file that is found but corrupt raises :class:`inpaintflow.models.inception.InceptionWeightsError`.
    """
    pred_paths, gt_paths = list_pngs(pred_dir), list_pngs(gt_dir)
    result = {"fid": None, "reason": "", "weights": "", "count": len(pred_paths),
              "count_gt": len(gt_paths)}
    path, reason = resolve_inception_weights(weights)
    if path is None:
        return {**result, "reason": reason}
    for folder, paths in ((pred_dir, pred_paths), (gt_dir, gt_paths)):
        if len(paths) < 2:
            return {**result, "reason": f"{folder}: {len(paths)} PNG images; FID needs at least 2 "
                                        f"per set (and thousands for a stable value)"}
    net = load_fid_inception(path).to(device)
    pred = activation_stats(net, pred_paths, batch_size, device)
    gt = activation_stats(net, gt_paths, batch_size, device)
    fid = frechet_distance(pred.mean(), pred.cov(), gt.mean(), gt.cov())
    return {**result, "fid": fid, "weights": f"{path} (sha256 {net.weights_sha256[:16]})"}


def download_inception_weights(dest_dir: str | os.PathLike, *, url: str = INCEPTION_WEIGHTS.url,
                               timeout_s: float = 60.0) -> Path:
    """Download the FID weights into ``dest_dir`` (resumable) and verify the sha256 prefix.

    Uses :func:`inpaintflow.tasks.data.download.download`, which verifies full digests only; as only the prefix
    is known, it runs without one and the prefix is checked here. A file that fails the check
    is deleted and :class:`inpaintflow.tasks.data.download.ChecksumError` is raised, naming URL and file.
    """
    dest = Path(dest_dir) / INCEPTION_WEIGHTS.file_name
    expected = INCEPTION_WEIGHTS.sha256_prefix
    if dest.is_file() and not file_digest(dest).startswith(expected):
        dest.unlink()  # download() would trust an existing file when given no checksum
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnverifiedDownloadWarning)  # the prefix is checked below
        download(url, dest, None, timeout_s=timeout_s)
    actual = file_digest(dest)
    if not actual.startswith(expected):
        dest.unlink()
        raise ChecksumError(f"{url}: checksum mismatch for {dest}: expected a sha256 starting "
                            f"with {expected}, got {actual}; the file was deleted",
                            url=url, path=dest, expected=expected, actual=actual)
    return dest

"""Evaluation metrics: the one place MAE, MSE, PSNR, SSIM, l1 and l2 are defined.

Pure, batched torch on 0..255 images (uint8 or float, (B, 3, H, W)); runs on the inputs' device.
Nothing here imports the models or the training losses (STYLE.md, "Losses and metrics").

==========  ==================================================================================
metric      definition (per image unless said otherwise; ``x`` prediction, ``y`` ground truth)
==========  ==================================================================================
mae         mean |x - y| over pixels and channels, on the 0..255 scale (paper 001's scale)
mse         mean (x - y)^2 over pixels and channels, on the 0..255^2 scale
psnr        10 log10(255^2 / mse) of one image (papers 003, 004, MMagic); a table averages it
            over images. ``mse == 0`` gives ``+inf``.
            The *set* form 10 log10(255^2 / mean of the images' mse) (papers 001 and 002) is
            :func:`psnr_of_mean_mse`, reported by :func:`summarise` as ``psnr_of_mean_mse``.
ssim        Wang et al. 2004: Gaussian window of 11 taps (sigma 1.5, truncated at 3.5 sigma,
            normalised), K1 = 0.01, K2 = 0.03, data range 255, population covariance, in
            float64. The SSIM map is computed per channel on the *valid* region only: the
            5 = (11 - 1) // 2 pixels at each border are dropped (as scikit-image crops them);
            the score is the mean of that map over the region and the channels. Equals
            ``skimage.metrics.structural_similarity(x, y, gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False, data_range=255, channel_axis=-1)``.
l1          mae / 255, the [0, 1] scale
l2          mse / 255^2, the [0, 1] scale. Paper 003 prints l1/l2 x 10^-3; printing scales are
            applied by the tables, never here.
hole_<m>    the same metric inside the hole (mask 1 = hole): hole_mae and hole_mse are means
            over the hole pixels and all channels, hole_psnr comes from hole_mse, hole_l1 and
            hole_l2 are hole_mae / 255 and hole_mse / 255^2. hole_ssim is the mean of the SSIM
            map over the hole pixels that lie inside the valid region (and over channels).
            An image without hole pixels gives NaN for every hole metric; one whose hole lies
            wholly in the 5-pixel border gives NaN for hole_ssim only.
==========  ==================================================================================

:func:`summarise` aggregates per-image rows: mean and *population* standard deviation
(ddof = 0) of every metric, ignoring NaN values (counted in ``hole_count`` and
``hole_ssim_count``), plus the set-form PSNR of the whole image and of the hole. A group whose
PSNR values include ``inf`` has mean ``inf`` and standard deviation NaN.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

DATA_RANGE = 255.0
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # 11 taps at sigma 1.5, as Wang et al. 2004 and scikit-image
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_RADIUS = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)  # 5; border dropped from the SSIM map
SSIM_WINDOW = 2 * SSIM_RADIUS + 1  # 11

METRICS = ("mae", "mse", "psnr", "ssim", "l1", "l2")
HOLE_METRICS = tuple(f"hole_{m}" for m in METRICS)
ALL_METRICS = METRICS + HOLE_METRICS
TOTAL_GROUP = "total"
# Which way each metric improves: the one table that regression checks (tasks/tables/regression.py) and
# the nightly tolerances (params.yaml nightly.tolerances) follow. FID is computed in tasks/evaluate/fid.py
# but listed here so that no second table of directions exists. hole_<m> follows <m>.
HIGHER_IS_BETTER = {"mae": False, "mse": False, "psnr": True, "ssim": True, "l1": False, "l2": False,
                    "fid": False}


# helpers


def _check_images(x: torch.Tensor, name: str) -> None:
    """Check a (B, 3, H, W) batch of 0..255 images (uint8 or float)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{name}: expected shape (B, 3, H, W), got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return  # 0..255 by construction
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected uint8 or float values in 0..255, got dtype {x.dtype}")
    if x.numel() and (x.min() < 0 or x.max() > DATA_RANGE or x.isnan().any()):
        raise ValueError(f"{name}: values must lie in 0..255, found {x.min().item():g}.."
                         f"{x.max().item():g} (models' [-1, 1] output must be converted first)")


def _cpu_chunks(n: int, device: torch.device) -> Iterator[slice]:
    """Slices of ``n`` items: one at a time on CPU, all at once elsewhere.

    On CPU, small chunks keep float64 intermediates in cache and avoid page-faulting large
    fresh allocations (measured ~1.8x faster than whole batches of 32 256x256 images);
    accelerators want few, large kernels.
    """
    step = 1 if device.type == "cpu" else max(n, 1)
    return (slice(start, start + step) for start in range(0, n, step))


def _as_hole(hole: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Check a (B, 1, H, W) mask of 0 and 1 (1 = hole) and return it as float64."""
    if not isinstance(hole, torch.Tensor):
        raise TypeError(f"hole: expected a torch.Tensor, got {type(hole).__name__}")
    b, _, h, w = like.shape
    if tuple(hole.shape) != (b, 1, h, w):
        raise ValueError(f"hole: expected shape {(b, 1, h, w)} to match the images, got {tuple(hole.shape)}")
    hole = hole.to(torch.float64)
    if not ((hole == 0) | (hole == 1)).all():
        raise ValueError("hole: mask must hold only 0 and 1 (1 = hole)")
    return hole


def gaussian_kernel_1d(sigma: float = SSIM_SIGMA, radius: int = SSIM_RADIUS) -> torch.Tensor:
    """Normalised 1-D Gaussian of 2 * radius + 1 taps, float64 (scipy.ndimage's kernel)."""
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return weights / weights.sum()


def _correlate_valid(x: torch.Tensor, weights: Sequence[float], dim: int, out: torch.Tensor) -> torch.Tensor:
    """1-D correlation along ``dim`` keeping only the outputs whose window fits, into ``out``.

    Sums shifted slices in place: float64 depthwise ``conv2d`` takes a slow generic path on
    CPU (measured ~3x slower than this), and slices run unchanged on every device.
    """
    valid = x.shape[dim] - len(weights) + 1
    torch.mul(x.narrow(dim, 0, valid), weights[0], out=out)
    for offset in range(1, len(weights)):
        out.add_(x.narrow(dim, offset, valid), alpha=weights[offset])
    return out


def _ssim_of_planes(x: torch.Tensor, y: torch.Tensor, weights: Sequence[float], c1: float, c2: float,
                    out: torch.Tensor) -> None:
    """SSIM map of (P, H, W) float64 planes into ``out`` (P, H-10, W-10), Wang et al. eq. 13."""
    p, h, w = x.shape
    taps = len(weights)
    moments = torch.cat([x, y, x * x, y * y, x * y])  # (5P, H, W)
    rows = torch.empty(5 * p, h, w - taps + 1, dtype=x.dtype, device=x.device)
    _correlate_valid(moments, weights, 2, rows)
    local = torch.empty(5 * p, h - taps + 1, w - taps + 1, dtype=x.dtype, device=x.device)
    _correlate_valid(rows, weights, 1, local)
    mu_x, mu_y, e_xx, e_yy, e_xy = local.split(p)  # Gaussian-weighted local means
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_sum = (e_xx - mu_xx) + (e_yy - mu_yy)  # population (co)variances, as Wang et al.
    cov_xy = e_xy - mu_xy
    torch.div((2 * mu_xy + c1) * (2 * cov_xy + c2), (mu_xx + mu_yy + c1) * (var_sum + c2), out=out)


# metrics


def ssim_map(x: torch.Tensor, y: torch.Tensor, data_range: float = DATA_RANGE) -> torch.Tensor:
    """SSIM map of Wang et al. 2004 (their eq. 13), per channel, on the valid region.

    x, y: (B, C, H, W) on one scale of width ``data_range``. Returns float64
    (B, C, H - 10, W - 10): the pixels whose 11x11 window lies wholly inside the image, so
    no border padding enters the result.
    """
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"ssim_map: expected two (B, C, H, W) tensors of one shape, got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"ssim_map: images must be at least {SSIM_WINDOW}x{SSIM_WINDOW}, got "
                         f"{tuple(x.shape[-2:])}")
    b, c, h, w = x.shape
    planes_x = x.reshape(b * c, h, w)
    planes_y = y.reshape(b * c, h, w)
    weights = gaussian_kernel_1d().tolist()
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    out = torch.empty(b * c, h - 2 * SSIM_RADIUS, w - 2 * SSIM_RADIUS, dtype=torch.float64, device=x.device)
    for chunk in _cpu_chunks(b * c, x.device):
        _ssim_of_planes(planes_x[chunk].to(torch.float64), planes_y[chunk].to(torch.float64),
                        weights, c1, c2, out[chunk])
    return out.view(b, c, h - 2 * SSIM_RADIUS, w - 2 * SSIM_RADIUS)


def psnr_from_mse(mse: torch.Tensor | float) -> torch.Tensor:
    """PSNR in dB on the 0..255 scale: 10 log10(255^2 / mse); mse == 0 gives +inf, NaN stays NaN."""
    mse = torch.as_tensor(mse, dtype=torch.float64)
    inf = torch.full_like(mse, math.inf)
    return torch.where(mse == 0, inf, 10.0 * torch.log10(DATA_RANGE ** 2 / mse))


def psnr_of_mean_mse(mse_values: Iterable[float] | torch.Tensor | np.ndarray) -> float:
    """Set-form PSNR of papers 001 and 002: 10 log10(255^2 / mean mse), NaN values ignored.

    NaN if no value is left; +inf if the mean is 0.
    """
    if isinstance(mse_values, torch.Tensor):
        mse_values = mse_values.detach().cpu().numpy()
    values = np.asarray(list(mse_values) if not isinstance(mse_values, np.ndarray) else mse_values,
                        dtype=np.float64).ravel()
    values = values[~np.isnan(values)]
    if values.size == 0:
        return math.nan
    return float(psnr_from_mse(float(values.mean())))


def _metrics_of_images(x: torch.Tensor, y: torch.Tensor, hole: torch.Tensor) -> dict[str, torch.Tensor]:
    """:func:`image_metrics` of checked inputs: x, y (B, 3, H, W), hole (B, 1, H, W) float64."""
    channels = x.shape[1]
    diff = x.to(torch.float64) - y.to(torch.float64)
    # channel sums first, so the hole masking runs on (B, H, W) rather than (B, 3, H, W)
    abs_err = diff.abs().sum(dim=1)  # (B, H, W)
    sq_err = diff.square_().sum(dim=1)
    hole_px = hole[:, 0]  # (B, H, W)
    values = channels * x.shape[2] * x.shape[3]
    mae = abs_err.sum(dim=(1, 2)) / values
    mse = sq_err.sum(dim=(1, 2)) / values
    # 0 / 0 = NaN: an image without a hole has no hole metrics
    hole_values = hole_px.sum(dim=(1, 2)) * channels
    hole_mae = (abs_err * hole_px).sum(dim=(1, 2)) / hole_values
    hole_mse = (sq_err * hole_px).sum(dim=(1, 2)) / hole_values

    ssim = ssim_map(x, y)  # (B, 3, H-10, W-10)
    r = SSIM_RADIUS
    hole_valid = hole[:, :, r:-r, r:-r]  # (B, 1, H-10, W-10)
    hole_ssim = (ssim * hole_valid).sum(dim=(1, 2, 3)) / (hole_valid.sum(dim=(1, 2, 3)) * channels)

    return {
        "mae": mae,
        "mse": mse,
        "psnr": psnr_from_mse(mse),
        "ssim": ssim.mean(dim=(1, 2, 3)),
        "l1": mae / DATA_RANGE,
        "l2": mse / DATA_RANGE ** 2,
        "hole_mae": hole_mae,
        "hole_mse": hole_mse,
        "hole_psnr": psnr_from_mse(hole_mse),
        "hole_ssim": hole_ssim,
        "hole_l1": hole_mae / DATA_RANGE,
        "hole_l2": hole_mse / DATA_RANGE ** 2,
    }


def image_metrics(pred: torch.Tensor, target: torch.Tensor, hole: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every metric of :data:`ALL_METRICS` for each image of a batch (definitions: module docstring).

    pred, target: (B, 3, H, W) uint8 or float in 0..255; hole: (B, 1, H, W), 1 = hole.
    Returns {metric: float64 (B,)} on the inputs' device.
    """
    _check_images(pred, "pred")
    _check_images(target, "target")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if min(pred.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"images must be at least {SSIM_WINDOW}x{SSIM_WINDOW} for SSIM, got "
                         f"{tuple(pred.shape[-2:])}")
    hole = _as_hole(hole, pred).to(pred.device)
    target = target.to(pred.device)
    parts = [_metrics_of_images(pred[chunk], target[chunk], hole[chunk])
             for chunk in _cpu_chunks(pred.shape[0], pred.device)]
    return {m: torch.cat([part[m] for part in parts]) for m in ALL_METRICS}


# aggregation


def _group_summary(label: str, rows: Sequence[Mapping[str, Any]], metrics: Sequence[str],
                   group_key: str) -> dict[str, Any]:
    out: dict[str, Any] = {group_key: label, "count": len(rows)}
    columns = {m: np.array([float(r[m]) for r in rows], dtype=np.float64) for m in metrics}
    if "hole_mse" in columns:
        out["hole_count"] = int(np.count_nonzero(~np.isnan(columns["hole_mse"])))
    if "hole_ssim" in columns:
        out["hole_ssim_count"] = int(np.count_nonzero(~np.isnan(columns["hole_ssim"])))
    for m, values in columns.items():
        values = values[~np.isnan(values)]
        if values.size == 0:
            out[f"{m}_mean"] = out[f"{m}_std"] = math.nan
        else:
            with np.errstate(invalid="ignore"):  # inf PSNRs: mean inf, std NaN
                out[f"{m}_mean"] = float(values.mean())
                out[f"{m}_std"] = float(values.std(ddof=0))
    if "mse" in columns:
        out["psnr_of_mean_mse"] = psnr_of_mean_mse(columns["mse"])
    if "hole_mse" in columns:
        out["hole_psnr_of_mean_mse"] = psnr_of_mean_mse(columns["hole_mse"])
    return out


def summary_columns(group_key: str = "bin", metrics: Sequence[str] = ALL_METRICS) -> list[str]:
    """Column order of :func:`summarise`'s rows, for writing them as a table."""
    columns = [group_key, "count"]
    columns += [c for c, m in (("hole_count", "hole_mse"), ("hole_ssim_count", "hole_ssim")) if m in metrics]
    columns += [f"{m}_{stat}" for m in metrics for stat in ("mean", "std")]
    columns += [c for c, m in (("psnr_of_mean_mse", "mse"), ("hole_psnr_of_mean_mse", "hole_mse")) if m in metrics]
    return columns


def summarise(rows: Iterable[Mapping[str, Any]], group_key: str = "bin", *,
              metrics: Sequence[str] = ALL_METRICS, order: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Per-group statistics of per-image metric rows, then a final ``"total"`` group.

    Groups come in ``order`` (labels missing from the rows are skipped), then any others in
    first-appearance order. Each dict holds ``group_key``, ``count`` (rows), ``hole_count``
    and ``hole_ssim_count`` (rows where hole_mse / hole_ssim is not NaN), ``<m>_mean`` and
    ``<m>_std`` (population std, ddof = 0, over non-NaN values) for every metric, and the
    set-form PSNRs ``psnr_of_mean_mse`` and ``hole_psnr_of_mean_mse``.
    """
    rows = list(rows)
    groups: dict[str, list[Mapping[str, Any]]] = {str(label): [] for label in order or ()}
    for row in rows:
        label = str(row[group_key])
        if label == TOTAL_GROUP:
            raise ValueError(f"group label {TOTAL_GROUP!r} is reserved for the summary of all rows")
        groups.setdefault(label, []).append(row)
    summaries = [_group_summary(label, members, metrics, group_key)
                 for label, members in groups.items() if members]
    summaries.append(_group_summary(TOTAL_GROUP, rows, metrics, group_key))
    return summaries

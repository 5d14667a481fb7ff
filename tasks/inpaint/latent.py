"""Semantic inpainting by latent optimisation: find z so that G(z) agrees with the known pixels
of a damaged image and looks real to D, for a batch of images at once.

Papers
    001  Malesevic, Mayer, Gu, Timofte, "Refinement GAN with global consensus": s1.2, Eqs. (3)-(5)
         (Yeh et al.'s semantic inpainting as this paper describes it), s2, Eqs. (7)-(9) (the
         refinement pass), s3.2-3.3 (optimiser, lambda, mu per hole pattern), Table 2 (1500 vs
         3000 vs 1500 + 1500 iterations).
    002  Vitoria, Sintes, Ballester, "Semantic image inpainting through improved WGANs": s3.2,
         Eqs. (4)-(8) (contextual, gradient and prior losses), s4 (optimiser, 7x7 window, 1000
         iterations), Tables 1-2 (ablation over alpha, beta, eta, with and without L_g).
    Yeh et al., "Semantic image inpainting with deep generative models", CVPR 2017.

Networks are plain callables (``G: z (B, Z) -> images (B, 3, H, W)`` in [-1, 1];
``D: images -> (B,)`` or ``(B, 1)`` logits or critic scores), so nothing here imports a model.
While optimising, every ``nn.Module`` among them is put in eval mode (batch-norm running
statistics) with ``requires_grad`` off, and restored afterwards: only z is optimised.

Batching. Every loss term returns one value per image, and the optimiser minimises their SUM
over the batch, so d(total)/d(z_b) = d(loss_b)/d(z_b): each image's gradient is independent of
the others. Adam, the z clipping and eval-mode batch norm all act element-wise or per sample,
so a batch of N gives the z's of N single-image runs (to float rounding; tested).

Masks follow inpaintflow.conventions: ``hole`` (B, 1, H, W), 1 = hole, 0 = known. Papers 001
and 002 write M for the *known* set in their loss equations (002 says so, M(i) = 1 =
uncorrupted; 001's s1.2 first defines M as the damaged set, but its Eqs. (6), (7) and their
prose use M for the clean pixels); here that set is ``hole == 0`` throughout. The target's hole
pixels are replaced by zeros before any loss reads it, so they never influence a result.

Readings of the papers (their extracted text lost minus signs and fraction bars)
    * Paper 001 Eq. (4): L_content = sum_{i in S} w_i |x_i - y_i| with w_i = |H_i| / |H_i^c|,
      "the ratio of holes |H_i| and clean pixels |H_i^c| in a centered n x n window" around
      clean pixel i (i itself is clean, so |H_i^c| >= 1). That is what paper 001 writes, and
      the default of :class:`YehSettings` (``denominator="known"``). Yeh et al.'s own weight,
      which paper 002 copies as its Eq. (5), is the hole *fraction* of the window,
      |H_i| / |N_i| (``denominator="window"``); the two differ only in emphasis near the hole.
      Paper 001 gives no n; 7 is Yeh et al.'s and paper 002's window.
    * Windows are clipped to the image: pixels outside it are neither hole nor known, so near
      the border |N_i| (and |H_i^c|) count only the pixels inside the image.
    * Sums, not means, everywhere: Eqs. (4), (7), (8) of 001 are sums over pixels, and 002's
      Eqs. (6)-(7) are L1 norms. |x_i - y_i| of an RGB pixel is summed over its channels.
    * Paper 001 Eq. (5): L_perception = log(1 - D(x)) with D a probability; from D's logit l,
      log(1 - sigmoid(l)) = -softplus(l), computed that way for stability.
    * Paper 002 Eq. (8): L_p(z) = -D_w(G(z)), "our second WGAN loss term in (3)" (the generator
      side of min_G max_D E[D(x)] - E[D(G(z))]); the minus sign is lost in the extracted text.
    * Paper 002 Eq. (7): L_g = || W . M . (grad G(z) - grad y) ||_1 with central differences,
      forward or backward differences "depending on whether the non-corrupted information is
      available" at the hole boundary. Here, for a known pixel p and each axis: both neighbours
      known -> (x[p+1] - x[p-1]) / 2; only the next one -> x[p+1] - x[p]; only the previous one
      -> x[p] - x[p-1]; neither (or p in the hole) -> 0. Pixels outside the image count as
      unavailable, like hole pixels. The SAME stencil (chosen from y's known pixels) is applied
      to G(z) and to y, so the term compares like with like and never reads a hole pixel of y.
      The L1 norm of the per-pixel gradient is |d/dx| + |d/dy|, summed over channels.
    * Paper 002 s4: "restrict z to [-1, 1] in each iteration" (minus lost in the text, as in
      its "[-1, 1]" for the DCGAN prior): z ~ N(0, 1) is clipped to [-1, 1] after every Adam
      step, as in paper 001. The initial z0 itself is not clipped (the first loss is at z0).
      Defaults alpha = 0.1, beta = 1 - alpha, eta = 0.5: "the selected parameters" of s3.2.
    * Paper 001 Eq. (9): L_refinement = L_gc(x | x_b, M) + mu L_ic(x | x_b, M^c) + lambda L_p,
      where L_gc (Eq. 7) sums |x_i - x_b,i| over the clean pixels ("minimal when the clean and
      the corresponding synthetic pixels agree") and L_ic (Eq. 8) over the hole ("favors
      similarly inpainted parts ... as obtained from semantic inpainting with blending"; mu is
      "the confidence ... of the inpainted region"). Poisson blending (Eq. 6) keeps x_b = y on
      clean pixels, so the clean reference is taken from ``target`` (exactly y, even if the
      caller's blended image went through uint8) and the hole reference from ``blended``.
    * Refinement uses the first pass's optimiser (s3.2: "1500 gradient descent steps during
      inpainting and refinement", the same Adam settings), with fresh Adam state, starting
      from the first pass's z. Table 2's "3000 iterations" is ``YehSettings(steps=3000)``.
    * Paper 002's rows "(Yeh et al.) adding gradient loss" use alpha L_c + beta L_g +
      eta log(1 - D): ``VitoriaSettings(prior="discriminator")`` with the DCGAN's D.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Literal

import torch
import torch.nn.functional as F
from torch import nn

Net = Callable[[torch.Tensor], torch.Tensor]
Progress = Callable[[int, float], None]  # (step, mean total loss over the batch at that step)
Monitor = Callable[[torch.Tensor], "dict[str, torch.Tensor]"]  # G(z) (B, 3, H, W) -> {name: (B,)}, recorded only

# Paper 001 s3.3: mu per hole pattern, keyed by the tasks.masks family names
REFINEMENT_MU: dict[str, float] = {
    "random-square": 0.66,  # pattern (1)
    "center-square": 0.66,  # pattern (5)
    "big-random-square": 0.33,  # pattern (2)
    "left-half": 0.33,  # pattern (4)
    "stripes": 0.2,  # pattern (3)
    "random-pixels": 0.2,  # pattern (6)
}


# settings


def _check_common(steps: int, lr: float, clip: tuple[float, float]) -> None:
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if not clip[0] < clip[1]:
        raise ValueError(f"clip must be (low, high) with low < high, got {clip}")


def _check_window(window: int) -> None:
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd number, got {window}")


@dataclass(frozen=True)
class YehSettings:
    """Yeh et al.'s inpainting as paper 001 describes and runs it (s1.2, s3.2)."""

    steps: int = 1500  # s3.2 (Table 2 also runs 3000)
    lr: float = 0.003  # s3.2, Adam step size
    betas: tuple[float, float] = (0.5, 0.9)  # s3.2
    perceptual_weight: float = 0.003  # lambda of Eq. (3), s3.2
    window: int = 7  # n of Eq. (4); paper 001 gives none, 7 is Yeh et al.'s
    denominator: Literal["known", "window"] = "known"  # Eq. (4): |H_i| / |H_i^c| (module doc)
    clip: tuple[float, float] = (-1.0, 1.0)  # s3.2: z restricted to [-1, 1]

    def __post_init__(self) -> None:
        _check_common(self.steps, self.lr, self.clip)
        _check_window(self.window)


@dataclass(frozen=True)
class VitoriaSettings:
    """Paper 002's inpainting loss and optimiser (s3.2, s4)."""

    steps: int = 1000  # s4
    lr: float = 0.03  # s4, Adam learning rate
    betas: tuple[float, float] = (0.9, 0.999)  # s4
    context_weight: float = 0.1  # alpha of Eq. (4), s3.2's selected value
    gradient_weight: float = 0.9  # beta = 1 - alpha; 0 = "without the gradient term"
    prior_weight: float = 0.5  # eta
    window: int = 7  # s4: 7x7 window for W of Eq. (5)
    clip: tuple[float, float] = (-1.0, 1.0)  # s4: z restricted to [-1, 1] each iteration
    # "critic": Eq. (8), -D(G(z)); "discriminator": log(1 - D(G(z))) from logits, for Tables
    # 1-2's "(Yeh et al.) adding gradient loss" rows
    prior: Literal["critic", "discriminator"] = "critic"

    def __post_init__(self) -> None:
        _check_common(self.steps, self.lr, self.clip)
        _check_window(self.window)
        if self.prior not in ("critic", "discriminator"):
            raise ValueError(f"prior must be 'critic' or 'discriminator', got {self.prior!r}")


@dataclass(frozen=True)
class RefinementSettings:
    """Paper 001's refinement pass, Eq. (9); mu comes per hole pattern (REFINEMENT_MU)."""

    steps: int = 1500  # s3.2: 1500 steps "during inpainting and refinement"
    lr: float = 0.003  # s3.2, same optimiser as the first pass
    betas: tuple[float, float] = (0.5, 0.9)
    perceptual_weight: float = 0.003  # lambda of Eq. (9)
    clip: tuple[float, float] = (-1.0, 1.0)

    def __post_init__(self) -> None:
        _check_common(self.steps, self.lr, self.clip)


@dataclass
class LatentResult:
    """z (B, Z) and images = G(z) (B, 3, H, W) in [-1, 1] after the last step; loss_history
    (steps,) the batch-mean total loss at each step's z, before its update; final_loss (B,)
    and final_terms (term -> (B,)) at the returned z."""

    z: torch.Tensor
    images: torch.Tensor
    loss_history: torch.Tensor
    final_loss: torch.Tensor
    final_terms: dict[str, torch.Tensor] = field(default_factory=dict)
    # (steps,) batch means per step, before its update: every objective term, and what the
    # caller's ``monitor`` measured (e.g. hole L1 against the ground truth, which the objective
    # never sees)
    term_history: dict[str, torch.Tensor] = field(default_factory=dict)
    monitor_history: dict[str, torch.Tensor] = field(default_factory=dict)


# loss terms: pure functions, each returns one value per image (B,)


def context_weights(hole: torch.Tensor, window: int = 7, *,
                    denominator: Literal["known", "window"] = "window") -> torch.Tensor:
    """Per-pixel weights (B, 1, H, W) of the weighted context loss, 0 inside the hole.

    For a known pixel i with the window N_i (``window`` x ``window``, centred, clipped to the
    image) holding |H_i| hole pixels:
        "window": |H_i| / |N_i|              paper 002 Eq. (5), Yeh et al.; in [0, 1]
        "known":  |H_i| / (|N_i| - |H_i|)    paper 001 Eq. (4), |H_i| / |H_i^c|
    """
    _check_window(window)
    if denominator not in ("known", "window"):
        raise ValueError(f"denominator must be 'known' or 'window', got {denominator!r}")
    dtype = hole.dtype if hole.is_floating_point() else torch.float32
    hole = (hole > 0.5).to(dtype)
    ones = torch.ones(1, 1, window, window, dtype=hole.dtype, device=hole.device)
    pad = window // 2
    n_hole = F.conv2d(hole, ones, padding=pad)  # (B, 1, H, W)
    n_inside = F.conv2d(torch.ones_like(hole[:1]), ones, padding=pad)  # (1, 1, H, W)
    n_known = n_inside - n_hole  # >= 1 at a known pixel (the pixel itself)
    denom = n_inside if denominator == "window" else n_known.clamp(min=1.0)
    # round the counts: they are integers, and conv sums may carry float dust
    return torch.where(hole.bool(), 0.0, n_hole.round() / denom.round())


def weighted_context_loss(x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor
                          ) -> torch.Tensor:
    """sum_i W_i |x_i - y_i| over pixels and channels: paper 001 Eq. (4), paper 002 Eq. (6).

    x, y (B, 3, H, W); weights (B, 1, H, W), 0 where y is unknown (those y values are never
    read, even if they are NaN)."""
    y = torch.where(weights > 0, y, torch.zeros_like(y))
    return (weights * (x - y).abs()).flatten(1).sum(1)


def perceptual_loss_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """log(1 - D(x)) of paper 001 Eq. (5), D = sigmoid(logits): -softplus(logits), (B,)."""
    return -F.softplus(logits.reshape(logits.shape[0]))


def prior_loss_wgan(scores: torch.Tensor) -> torch.Tensor:
    """-D_w(G(z)) of paper 002 Eq. (8), the generator side of the WGAN game (its Eq. 3)."""
    return -scores.reshape(scores.shape[0])


def _shift(t: torch.Tensor, offset: int, dim: int) -> torch.Tensor:
    """t[p + offset] along ``dim`` (-1 or -2), zero where p + offset leaves the image."""
    if dim == -1:
        pad = (0, 1) if offset > 0 else (1, 0)
    else:
        pad = (0, 0, 0, 1) if offset > 0 else (0, 0, 1, 0)
    padded = F.pad(t, pad)
    size = t.shape[dim]
    return padded.narrow(dim, 1, size) if offset > 0 else padded.narrow(dim, 0, size)


def _axis_difference(x: torch.Tensor, known: torch.Tensor, dim: int) -> torch.Tensor:
    has_next = _shift(known, 1, dim)  # (B, 1, H, W) bool
    has_prev = _shift(known, -1, dim)
    nxt, prv = _shift(x, 1, dim), _shift(x, -1, dim)
    central = (nxt - prv) / 2
    d = torch.where(has_next & has_prev, central,
                    torch.where(has_next, nxt - x, torch.where(has_prev, x - prv, 0.0)))
    return torch.where(known, d, 0.0)


def image_gradients(x: torch.Tensor, hole: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Finite-difference gradient (d/dx along W, d/dy along H) of x (B, C, H, W), each
    (B, C, H, W), paper 002 s3.2: central differences, one-sided where a neighbour is in the
    hole or outside the image, 0 where neither neighbour (or the pixel itself) is known.

    ``hole`` (B, 1, H, W), 1 = hole, chooses the stencils; None = every pixel known (then this
    equals ``numpy.gradient``). Hole pixels of x are never read."""
    if hole is None:
        known = torch.ones_like(x[:, :1], dtype=torch.bool)
    else:
        known = hole <= 0.5
        x = torch.where(known, x, torch.zeros_like(x))
    return _axis_difference(x, known, -1), _axis_difference(x, known, -2)


def gradient_loss(x: torch.Tensor, y: torch.Tensor, hole: torch.Tensor, weights: torch.Tensor
                  ) -> torch.Tensor:
    """|| W . M . (grad x - grad y) ||_1, paper 002 Eq. (7), (B,): the same stencils (from the
    known pixels of y) differentiate x = G(z) and y; |d/dx| + |d/dy| summed over pixels and
    channels, weighted by W of Eq. (5)."""
    gx_x, gy_x = image_gradients(x, hole)
    gx_y, gy_y = image_gradients(y, hole)
    return (weights * ((gx_x - gx_y).abs() + (gy_x - gy_y).abs())).flatten(1).sum(1)


def global_consensus_loss(x: torch.Tensor, reference: torch.Tensor, hole: torch.Tensor
                          ) -> torch.Tensor:
    """sum over clean pixels of |x_i - x_b,i|, paper 001 Eq. (7), (B,)."""
    known = hole <= 0.5
    diff = torch.where(known, x - torch.where(known, reference, torch.zeros_like(reference)), 0.0)
    return diff.abs().flatten(1).sum(1)


def inpainting_consensus_loss(x: torch.Tensor, reference: torch.Tensor, hole: torch.Tensor
                              ) -> torch.Tensor:
    """sum over hole pixels of |x_i - x_b,i|, paper 001 Eq. (8), (B,)."""
    inside = hole > 0.5
    diff = torch.where(inside, x - torch.where(inside, reference, torch.zeros_like(reference)), 0.0)
    return diff.abs().flatten(1).sum(1)


# total losses: (total (B,), {term: (B,)}); a zero-weight term is not computed


Terms = dict[str, torch.Tensor]


def yeh_objective(x: torch.Tensor, D: Net, y: torch.Tensor, weights: torch.Tensor,
                  settings: YehSettings) -> tuple[torch.Tensor, Terms]:
    """Paper 001 Eq. (3): L_content + lambda L_perception."""
    terms = {"context": weighted_context_loss(x, y, weights)}
    total = terms["context"]
    if settings.perceptual_weight:
        terms["perceptual"] = perceptual_loss_from_logits(D(x))
        total = total + settings.perceptual_weight * terms["perceptual"]
    return total, terms


def vitoria_objective(x: torch.Tensor, critic: Net, y: torch.Tensor, hole: torch.Tensor,
                      weights: torch.Tensor, settings: VitoriaSettings
                      ) -> tuple[torch.Tensor, Terms]:
    """Paper 002 Eq. (4): alpha L_c + beta L_g + eta L_p."""
    terms: Terms = {}
    total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    if settings.context_weight:
        terms["context"] = weighted_context_loss(x, y, weights)
        total = total + settings.context_weight * terms["context"]
    if settings.gradient_weight:
        terms["gradient"] = gradient_loss(x, y, hole, weights)
        total = total + settings.gradient_weight * terms["gradient"]
    if settings.prior_weight:
        out = critic(x)
        terms["prior"] = (prior_loss_wgan(out) if settings.prior == "critic"
                          else perceptual_loss_from_logits(out))
        total = total + settings.prior_weight * terms["prior"]
    return total, terms


def refinement_objective(x: torch.Tensor, D: Net, reference: torch.Tensor, hole: torch.Tensor,
                         mu: float, settings: RefinementSettings) -> tuple[torch.Tensor, Terms]:
    """Paper 001 Eq. (9): L_global-consensus + mu L_inpainting-consensus + lambda L_perception."""
    terms = {"global_consensus": global_consensus_loss(x, reference, hole)}
    total = terms["global_consensus"]
    if mu:
        terms["inpainting_consensus"] = inpainting_consensus_loss(x, reference, hole)
        total = total + mu * terms["inpainting_consensus"]
    if settings.perceptual_weight:
        terms["perceptual"] = perceptual_loss_from_logits(D(x))
        total = total + settings.perceptual_weight * terms["perceptual"]
    return total, terms


# optimisation


@contextmanager
def frozen(*nets: Net) -> Iterator[None]:
    """Eval mode and requires_grad off for every nn.Module among ``nets``, restored on exit."""
    with ExitStack() as stack:
        for net in nets:
            if not isinstance(net, nn.Module):
                continue
            params = list(net.parameters())
            flags = [p.requires_grad for p in params]
            was_training = net.training

            def restore(net=net, params=params, flags=flags, was_training=was_training):
                net.train(was_training)
                for p, flag in zip(params, flags):
                    p.requires_grad_(flag)

            stack.callback(restore)
            net.eval()
            for p in params:
                p.requires_grad_(False)
        yield


def _check_inputs(target: torch.Tensor, hole: torch.Tensor, z0: torch.Tensor) -> None:
    if target.ndim != 4 or target.shape[1] != 3:
        raise ValueError(f"target must be (B, 3, H, W), got {tuple(target.shape)}")
    b, _, h, w = target.shape
    if tuple(hole.shape) != (b, 1, h, w):
        raise ValueError(f"hole must be (B, 1, H, W) = {(b, 1, h, w)}, got {tuple(hole.shape)}")
    if z0.ndim != 2 or z0.shape[0] != b:
        raise ValueError(f"z0 must be (B, Z) with B = {b}, got {tuple(z0.shape)}")


def known_only(target: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """The damaged image: target's hole pixels replaced by 0, so nothing downstream sees them."""
    return torch.where(hole > 0.5, torch.zeros_like(target), target)


def optimise_latents(G: Net, z0: torch.Tensor, objective: Callable[[torch.Tensor], tuple[
        torch.Tensor, Terms]], *, steps: int, lr: float, betas: tuple[float, float],
        clip: tuple[float, float], progress: Progress | None = None,
        progress_every: int = 100, monitor: Monitor | None = None) -> LatentResult:
    """Adam on z (B, Z) minimising sum_b objective(G(z))[b]; z clipped to ``clip`` after each
    step. ``objective(images) -> (total (B,), terms)``. Networks must already be frozen.
    ``monitor(images) -> {name: (B,)}`` is only recorded (no gradient flows through it)."""
    z = z0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr, betas=betas)
    history = torch.zeros(steps, dtype=torch.float32, device=z.device)
    term_history: dict[str, torch.Tensor] = {}
    monitor_history: dict[str, torch.Tensor] = {}

    def record(into: dict[str, torch.Tensor], values: dict[str, torch.Tensor], step: int) -> None:
        for name, v in values.items():
            into.setdefault(name, torch.zeros(steps, dtype=torch.float32, device=z.device))[step] = v.detach().mean()

    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        x = G(z)
        total, terms = objective(x)
        total.sum().backward()  # sum, not mean: each z's gradient is its own image's
        opt.step()
        with torch.no_grad():
            z.clamp_(*clip)
            history[step] = total.detach().mean()
            record(term_history, terms, step)
            if monitor is not None:
                record(monitor_history, monitor(x.detach()), step)
        if progress is not None and (step % progress_every == 0 or step == steps - 1):
            progress(step, float(history[step]))
    with torch.no_grad():
        images = G(z)
        final, terms = objective(images)
    return LatentResult(z=z.detach(), images=images.detach(), loss_history=history.cpu(),
                        final_loss=final.detach(),
                        final_terms={k: v.detach() for k, v in terms.items()},
                        term_history={k: v.cpu() for k, v in term_history.items()},
                        monitor_history={k: v.cpu() for k, v in monitor_history.items()})


def inpaint_yeh(G: Net, D: Net, target: torch.Tensor, hole: torch.Tensor, z0: torch.Tensor,
                settings: YehSettings = YehSettings(), *, progress: Progress | None = None,
                progress_every: int = 100, monitor: Monitor | None = None) -> LatentResult:
    """Yeh et al.'s semantic inpainting as paper 001 runs it (Eqs. 3-5, s3.2): target
    (B, 3, H, W) in [-1, 1], hole (B, 1, H, W) 1 = hole, z0 (B, 100) ~ U[-1, 1]."""
    _check_inputs(target, hole, z0)
    hole = hole.to(target.dtype)
    y = known_only(target, hole)
    weights = context_weights(hole, settings.window, denominator=settings.denominator)
    with frozen(G, D):
        return optimise_latents(
            G, z0.to(target.device), lambda x: yeh_objective(x, D, y, weights, settings),
            steps=settings.steps, lr=settings.lr, betas=settings.betas, clip=settings.clip,
            progress=progress, progress_every=progress_every, monitor=monitor)


def inpaint_vitoria(G: Net, critic: Net, target: torch.Tensor, hole: torch.Tensor,
                    z0: torch.Tensor, settings: VitoriaSettings = VitoriaSettings(), *,
                    progress: Progress | None = None, progress_every: int = 100,
                    monitor: Monitor | None = None) -> LatentResult:
    """Paper 002's semantic inpainting (Eqs. 4-8, s4): z0 (B, 128) ~ N(0, 1)."""
    _check_inputs(target, hole, z0)
    hole = hole.to(target.dtype)
    y = known_only(target, hole)
    weights = context_weights(hole, settings.window, denominator="window")
    with frozen(G, critic):
        return optimise_latents(
            G, z0.to(target.device),
            lambda x: vitoria_objective(x, critic, y, hole, weights, settings),
            steps=settings.steps, lr=settings.lr, betas=settings.betas, clip=settings.clip,
            progress=progress, progress_every=progress_every, monitor=monitor)


def refine_consensus(G: Net, D: Net, target: torch.Tensor, hole: torch.Tensor,
                     z0: torch.Tensor, blended: torch.Tensor, settings: RefinementSettings =
                     RefinementSettings(), *, mu: float, progress: Progress | None = None,
                     progress_every: int = 100, monitor: Monitor | None = None) -> LatentResult:
    """Paper 001's refinement pass (Eq. 9), from the first pass's z0 and its Poisson-blended
    image ``blended`` (B, 3, H, W) in [-1, 1]; mu from :data:`REFINEMENT_MU` for the pattern.
    Clean pixels are compared with ``target`` (= x_b there), hole pixels with ``blended``."""
    _check_inputs(target, hole, z0)
    if blended.shape != target.shape:
        raise ValueError(f"blended must have target's shape {tuple(target.shape)}, "
                         f"got {tuple(blended.shape)}")
    if mu < 0:
        raise ValueError(f"mu must be >= 0, got {mu}")
    hole = hole.to(target.dtype)
    reference = torch.where(hole > 0.5, blended.to(target), target)  # x_b
    with frozen(G, D):
        return optimise_latents(
            G, z0.to(target.device),
            lambda x: refinement_objective(x, D, reference, hole, mu, settings),
            steps=settings.steps, lr=settings.lr, betas=settings.betas, clip=settings.clip,
            progress=progress, progress_every=progress_every, monitor=monitor)

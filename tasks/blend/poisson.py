"""Poisson blending (Pérez, Gangnet & Blake 2003) of a generated image into a damaged image's hole.

Papers 001 (Malesevic et al., Eq. 6) and 002 (Vitoria et al., Eq. 9) end their latent-space
inpainting with this step: keep the damaged image ``y`` on the known pixels and, inside the
hole, find the image ``x`` whose derivatives are closest to those of the generated image
``x_g``::

    minimise ||D x - D x_g||^2   subject to   x_i = y_i on the known pixels     (001 Eq. 6)
    x_hat = argmin_x ||∇x - ∇G(z_hat)||^2  such that x(i) = y(i) if M(i) = 1    (002 Eq. 9)

(002's extracted text lost the ∇ of Eq. 9; its prose, "preserve the gradients of G(z)", and
Pérez et al. put it back. 002's M is 1 on *known* pixels; ours is 1 on the hole.)

The discrete problem solved here, for both operators: the unknowns are the hole pixels, and for
every hole pixel ``p``::

    (L x)_p = (L x_g)_p,   x = y on the known pixels (Dirichlet data on the hole's boundary)

where ``L`` is the operator below, restricted to in-image neighbours. With ``D`` the
forward-difference gradient, the normal equations of Eq. 6 / Eq. 9 are exactly this system with
the five-point ``L`` (Pérez et al. Eq. 7), so the five-point solution *is* the least-squares
minimiser. The system is assembled once per mask as a sparse matrix, factorised with SuperLU
(``scipy.sparse.linalg.splu``) and solved for the three channels at once; images sharing a mask
share the factorisation (:func:`blend_batch`, :func:`blend_dirs`).

Operators (``OPERATORS``)
    five-point    the standard Laplacian: 4-neighbours, centre -4. Constants are in its kernel,
                  so ``x_g = y + c`` gives back ``y`` exactly.
    paper001-3x3  paper 001, section 3.2: "the Laplacian of Gaussian is a 3 x 3 kernel with all
                  1 entries except the central element which is -9". The kernel sums to -1, so
                  it is not a Laplacian: it is the 8-neighbour Laplacian minus the identity,
                  ``L = L8 - I``. The equation ``(L8 - I)(x - x_g) = 0`` in the hole is a
                  *screened* Poisson equation (the Euler-Lagrange equation of
                  ``sum_edges (d(x - x_g))^2 + sum_p (x - x_g)_p^2``): the matrix stays
                  nonsingular and strictly diagonally dominant (|diagonal| = neighbours + 1),
                  even for a hole covering the whole image, but constants are not preserved:
                  the error ``x - x_g`` shrinks by a factor r = 0.566 per pixel away from
                  the seam (r + 1/r = 7/3 for a straight seam): half the seam's mismatch is
                  gone 1.2 pixels into the hole, 90 % after 4, and further in ``x`` is the
                  generated image itself, offset included. Only a thin band is blended. (With
                  -8 in the centre it would be the 8-neighbour Laplacian.) We keep the paper's -9.

Image border (natural / Neumann boundary condition)
    A hole pixel on the image border has fewer neighbours; those outside the image are dropped
    from both the matrix row and the guidance ``L x_g`` (the same restricted ``L`` is applied to
    both), and the diagonal counts only in-image neighbours: ``(L x)_p = sum_{q in N(p) inside}
    (x_q - x_p) - s * x_p``, with ``s = 0`` (five-point) or ``s = 1`` (paper001-3x3). This is the
    natural boundary condition of the least-squares energy over the in-image edges; for the
    3x3 operator the screening term ``-x_p`` belongs to the pixel, not to an edge, so it stays
    (diagonal ``-(k + 1)`` for ``k`` in-image 8-neighbours; in the interior, -9 as in the paper).
    ``cv2.seamlessClone`` cannot do this. Measured on OpenCV 5.0 (which does not raise there):
    it clears the mask on the image's outer ring of pixels, so hole pixels on the border keep
    ``dst``'s values (white, in a damaged image). Even for interior holes it solves another
    problem: its domain is the inside of the mask's bounding box, known pixels included (they
    move: up to 10 grey levels for a disk hole and a random ``src``), its Dirichlet data are
    ``dst``'s pixels on the box's outer ring (for a rectangular hole, the hole's own outer ring:
    a damaged image's fill colour), ``src``'s gradients are used only on pixels three or more
    inside the mask (its 3-iteration erosion; ``dst``'s elsewhere), it works in float32, and
    the result is truncated, not rounded. tests/test_poisson.py builds the one case where both
    problems share an exact solution and checks agreement to cv2's truncation step.

Degenerate holes
    empty hole          the damaged image is returned unchanged.
    whole-image hole    no Dirichlet data. five-point: ``L`` annihilates constants, the system
                        is singular and :class:`PoissonSolver` raises ``ValueError`` (we do not
                        pin a pixel: any constant would be an arbitrary choice). paper001-3x3:
                        nonsingular; the solution is ``x_g`` itself.
    (For the five-point operator these are the only singular cases: every 4-connected component
    of a hole that is not the whole image touches a known pixel.)

Paper 001 reads Eq. 6 literally as a least-squares problem over all pixels with ``D`` the 3x3
kernel, which gives the fourth-order normal equations ``(K^T K (x - x_g))_hole = 0``; the
issue fixes the Poisson form above (``L`` applied in the hole's rows), which for the five-point
operator is the same thing and for the 3x3 kernel is its direct analogue.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from inpaintflow.conventions import (ConventionError, as_hole_mask, read_image, read_mask,
                                     write_image)

OPERATORS = ("five-point", "paper001-3x3")

_FOUR_NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1))
_EIGHT_NEIGHBOURS = _FOUR_NEIGHBOURS + ((-1, -1), (-1, 1), (1, -1), (1, 1))
# operator -> (neighbour offsets (dy, dx), screening s): (L x)_p = sum_q (x_q - x_p) - s x_p
_STENCILS = {
    "five-point": (_FOUR_NEIGHBOURS, 0.0),
    # "a 3 x 3 kernel with all 1 entries except the central element which is -9" (paper 001,
    # section 3.2): eight neighbours at +1 and a centre of -(8 + 1); s = 1 is the "+ 1".
    "paper001-3x3": (_EIGHT_NEIGHBOURS, 1.0),
}
DEFAULT_CACHE_SIZE = 16  # factorisations kept by blend_dirs (256x256, half hole: 20-30 MB each)


class BlendError(ValueError):
    """Inputs of a blend that cannot be paired or read; the message names the file."""


def _stencil(operator: str) -> tuple[tuple[tuple[int, int], ...], float]:
    if operator not in _STENCILS:
        raise ValueError(f"unknown Poisson operator {operator!r}; expected one of {OPERATORS}")
    return _STENCILS[operator]


def _shift_slices(dy: int, dx: int, height: int, width: int):
    """Slices (target, neighbour) such that ``a[target]`` pairs each pixel p with p + (dy, dx),
    over the pixels whose neighbour lies inside the image."""
    target = (slice(max(0, -dy), height - max(0, dy)), slice(max(0, -dx), width - max(0, dx)))
    neighbour = (slice(max(0, dy), height - max(0, -dy)), slice(max(0, dx), width - max(0, -dx)))
    return target, neighbour


def in_image_neighbours(height: int, width: int, operator: str = "five-point") -> np.ndarray:
    """(H, W) count of each pixel's neighbours that lie inside the image (4 or 8 in the interior)."""
    offsets, _ = _stencil(operator)
    count = np.zeros((height, width))
    for dy, dx in offsets:
        target, _ = _shift_slices(dy, dx, height, width)
        count[target] += 1
    return count


def apply_operator(image: np.ndarray, operator: str = "five-point") -> np.ndarray:
    """``L image`` with the natural boundary: ``sum_{q in N(p) inside} (x_q - x_p) - s x_p``.

    image (H, W) or (H, W, C), any real dtype -> float64, same shape. In the interior this is the
    convolution with the five-point Laplacian or paper 001's 3x3 kernel (centre -9).
    """
    offsets, screening = _stencil(operator)
    x = np.asarray(image, dtype=np.float64)
    height, width = x.shape[:2]
    out = np.zeros_like(x)
    for dy, dx in offsets:
        target, neighbour = _shift_slices(dy, dx, height, width)
        out[target] += x[neighbour]
    count = in_image_neighbours(height, width, operator) + screening
    return out - (count if x.ndim == 2 else count[..., None]) * x


class _HoleStencil:
    """The stencil of every hole pixel: its flat index and its in-image neighbours' flat indices.

    ``neighbours`` (k, n) holds ``H * W`` (a sentinel for "outside the image") where a neighbour
    falls outside; ``diagonal`` (n,) is ``-(in-image neighbours + s)``.
    """

    def __init__(self, hole: np.ndarray, operator: str):
        offsets, screening = _stencil(operator)
        height, width = hole.shape
        ys, xs = np.nonzero(hole)  # row-major: unknown i is the i-th hole pixel
        self.size = height * width
        self.pixels = ys * width + xs
        self.neighbours = np.full((len(offsets), ys.size), self.size, dtype=np.int64)
        for k, (dy, dx) in enumerate(offsets):
            qy, qx = ys + dy, xs + dx
            inside = (qy >= 0) & (qy < height) & (qx >= 0) & (qx < width)
            self.neighbours[k, inside] = qy[inside] * width + qx[inside]
        self.diagonal = -((self.neighbours < self.size).sum(axis=0) + screening)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """``(L image)`` on the hole pixels: (H, W, C) -> (n, C), O(n k) not O(H W k)."""
        flat = image.reshape(self.size, -1)
        padded = np.concatenate([flat, np.zeros((1, flat.shape[1]))])  # the sentinel reads 0
        return padded[self.neighbours].sum(axis=0) + self.diagonal[:, None] * flat[self.pixels]


def operator_matrix(hole: np.ndarray, operator: str = "five-point") -> sp.csc_matrix:
    """The (n, n) matrix ``A = L[hole, hole]`` over the n hole pixels in row-major order.

    Row p: diagonal ``-(in-image neighbours + s)``, +1 for each neighbour that is a hole pixel;
    known neighbours move to the right-hand side (Dirichlet data).
    """
    hole = as_hole_mask(hole, name="hole").astype(bool)
    stencil = _HoleStencil(hole, operator)
    n = stencil.pixels.size
    unknown = np.full(stencil.size + 1, -1, dtype=np.int64)  # flat index -> unknown, -1 if known
    unknown[stencil.pixels] = np.arange(n)
    cols = unknown[stencil.neighbours]  # (k, n)
    rows = np.broadcast_to(np.arange(n), cols.shape)
    linked = cols >= 0
    return sp.csc_matrix((np.concatenate([stencil.diagonal.astype(np.float64), np.ones(linked.sum())]),
                          (np.concatenate([np.arange(n), rows[linked]]),
                           np.concatenate([np.arange(n), cols[linked]]))), shape=(n, n))


class PoissonSolver:
    """The blending system of one mask, assembled and factorised once (001 Eq. 6, 002 Eq. 9).

    ``hole`` (H, W), 1 = hole. Raises ``ValueError`` for a whole-image hole with the five-point
    operator (singular: no Dirichlet data, constants in the kernel).
    """

    def __init__(self, hole: np.ndarray, operator: str = "five-point"):
        _stencil(operator)
        self.operator = operator
        self.hole = as_hole_mask(hole, name="hole").astype(bool)
        self.n_unknowns = int(self.hole.sum())
        if self.n_unknowns == self.hole.size and operator == "five-point":
            raise ValueError("the hole covers the whole image: with no known pixel the five-point "
                             "Poisson system is singular (defined up to a constant); use "
                             "'paper001-3x3' or leave at least one pixel known")
        self._stencil = _HoleStencil(self.hole, operator)
        self._lu = None
        if self.n_unknowns:
            # A is symmetric; ordering on A^T + A fills in less than COLAMD on grid Laplacians
            self._lu = splu(operator_matrix(self.hole, operator), permc_spec="MMD_AT_PLUS_A")

    def _check(self, array: np.ndarray, name: str) -> np.ndarray:
        array = np.asarray(array, dtype=np.float64)
        if array.shape[:2] != self.hole.shape:
            raise ValueError(f"{name}: shape {array.shape} does not match the mask {self.hole.shape}")
        return array

    def rhs(self, generated: np.ndarray, known: np.ndarray) -> np.ndarray:
        """b = (L x_g)[hole] - (L y_known)[hole]: guidance minus the Dirichlet data. (n, C).

        L is linear, so this is ``L(x_g - y_known)`` on the hole, with ``y_known`` zero in it.
        """
        generated = self._check(generated, "generated")
        known = self._check(known, "known")
        hole = self.hole if known.ndim == 2 else self.hole[..., None]
        return self._stencil.apply(generated - np.where(hole, 0.0, known))

    def solve(self, generated: np.ndarray, known: np.ndarray) -> np.ndarray:
        """generated, known: float (H, W, C) or (H, W) -> float, same shape: ``known`` on the
        known pixels, the exact solution of ``L x = L x_g`` on the hole."""
        known = self._check(known, "known")
        out = known.copy()
        if self._lu is not None:
            b = self.rhs(generated, known)  # (n, C): every channel in one solve
            out[self.hole] = self._lu.solve(b).reshape(out[self.hole].shape)
        return out

    def residual(self, solution: np.ndarray, generated: np.ndarray) -> float:
        """max |A x - b| over the hole's rows, i.e. max |L x - L x_g| on the hole pixels.

        Computed with :func:`apply_operator` on the whole image, independently of the stencil
        gather that built ``A`` and ``b``.
        """
        if not self.n_unknowns:
            return 0.0
        diff = apply_operator(self._check(solution, "solution"), self.operator) \
            - apply_operator(self._check(generated, "generated"), self.operator)
        return float(np.abs(diff[self.hole]).max())


def _check_pair(generated: np.ndarray, damaged: np.ndarray, hole: np.ndarray) -> None:
    if generated.shape != damaged.shape or generated.dtype != np.uint8 or damaged.dtype != np.uint8:
        raise ValueError(f"generated {generated.shape} {generated.dtype} and damaged {damaged.shape} "
                         f"{damaged.dtype} must be uint8 images of one shape")
    if hole.shape != damaged.shape[-3:-1]:
        raise ValueError(f"hole {hole.shape} does not match the images {damaged.shape}")


def _blend_with(solver: PoissonSolver, generated: np.ndarray, damaged: np.ndarray) -> np.ndarray:
    """uint8 (H, W, C) x2 -> uint8 (H, W, C): the solution rounded to nearest and clipped on the
    hole; the known pixels copied from ``damaged`` bit for bit."""
    out = damaged.copy()
    if solver.n_unknowns:
        x = solver.solve(generated, damaged)
        out[solver.hole] = np.clip(np.rint(x[solver.hole]), 0, 255).astype(np.uint8)
    return out


def poisson_blend(generated: np.ndarray, damaged: np.ndarray, hole: np.ndarray,
                  operator: str = "five-point") -> np.ndarray:
    """Blend ``generated`` into ``damaged``'s hole (001 Eq. 6, 002 Eq. 9).

    generated, damaged: uint8 (H, W, 3); hole (H, W), 1 = hole -> uint8 (H, W, 3) whose known
    pixels are ``damaged``'s and whose hole pixels are the rounded, clipped solution.
    """
    hole = as_hole_mask(hole, name="hole")
    _check_pair(generated, damaged, hole)
    if not hole.any():
        return damaged.copy()
    return _blend_with(PoissonSolver(hole, operator), generated, damaged)


def _mask_key(hole: np.ndarray) -> tuple:
    """Identifies a mask by its bytes: shape and a digest of the packed bits (20 bytes a mask,
    so blend_dirs can remember one per file)."""
    return hole.shape, hashlib.sha1(np.packbits(hole.astype(bool)).tobytes()).digest()


def blend_batch(generated: np.ndarray, damaged: np.ndarray, holes: np.ndarray,
                operator: str = "five-point") -> np.ndarray:
    """:func:`poisson_blend` over a batch: (N, H, W, 3) uint8 x2, (N, H, W) -> (N, H, W, 3) uint8.

    One factorisation per distinct mask in the batch (keyed on the mask's bytes).
    """
    generated, damaged, holes = np.asarray(generated), np.asarray(damaged), np.asarray(holes)
    if generated.ndim != 4 or holes.ndim != 3 or len(generated) != len(damaged) or len(holes) != len(damaged):
        raise ValueError(f"expected (N, H, W, 3) images and (N, H, W) holes, got {generated.shape}, "
                         f"{damaged.shape}, {holes.shape}")
    _check_pair(generated, damaged, holes[0] if len(holes) else np.zeros(damaged.shape[1:3]))
    if holes.dtype != bool:
        bad = ~((holes == 0) | (holes == 1)).reshape(len(holes), -1).all(axis=1)
        if bad.any():
            raise ConventionError(f"holes[{int(np.argmax(bad))}]: in-memory mask must hold only 0 and 1 "
                                  f"(1 = hole)")
    groups: dict[tuple, list[int]] = {}
    for i, hole in enumerate(holes):
        groups.setdefault(_mask_key(hole), []).append(i)
    out = np.empty_like(damaged)
    for indices in groups.values():
        solver = PoissonSolver(holes[indices[0]].astype(np.uint8), operator)
        # one image (3 right-hand sides) per solve: stacking images side by side saves little,
        # and past ~20 columns SuperLU hands the solve to multithreaded BLAS, which ran 20x
        # slower on a busy 2-core machine
        for i in indices:
            out[i] = _blend_with(solver, generated[i], damaged[i])
    return out


class _SolverCache:
    """At most ``size`` factorisations, least recently used evicted first."""

    def __init__(self, operator: str, size: int):
        self.operator, self.size = operator, size
        self._solvers: OrderedDict[tuple, PoissonSolver] = OrderedDict()

    def get(self, hole: np.ndarray) -> PoissonSolver:
        key = _mask_key(hole)
        if key in self._solvers:
            self._solvers.move_to_end(key)
        else:
            self._solvers[key] = PoissonSolver(hole, self.operator)
            if len(self._solvers) > self.size:
                self._solvers.popitem(last=False)
        return self._solvers[key]


def _read(reader, path: Path) -> np.ndarray:
    try:
        return reader(path)
    except ConventionError as err:
        message = str(err)
        raise BlendError(message if str(path) in message else f"{path}: {message}") from None


def blend_dirs(generated_dir: str | Path, damaged_dir: str | Path, masks_dir: str | Path,
               out_dir: str | Path, *, operator: str = "five-point",
               cache_size: int = DEFAULT_CACHE_SIZE) -> list[Path]:
    """Blend every ``generated_dir/*.png`` with the same-named damaged image and mask.

    All pairs are validated (present, readable, binary mask, one size) before anything is
    written; a :class:`BlendError` names the file at fault. Known pixels come from the damaged
    image. Each output ``out_dir/<name>.png`` is written atomically. Images are processed
    grouped by mask, and at most ``cache_size`` factorisations are held. Returns the written
    paths, sorted.
    """
    _stencil(operator)
    generated_dir, damaged_dir, masks_dir, out_dir = map(Path, (generated_dir, damaged_dir,
                                                                masks_dir, out_dir))
    for folder in (generated_dir, damaged_dir, masks_dir):
        if not folder.is_dir():
            raise BlendError(f"{folder}: folder not found")
    names = sorted(p.name for p in generated_dir.glob("*.png"))
    for name in names:
        for folder, what in ((damaged_dir, "damaged image"), (masks_dir, "mask")):
            if not (folder / name).is_file():
                raise BlendError(f"{generated_dir / name}: no matching {what} {folder / name}")
    # validate everything before writing; keep only each mask's key, to group by mask below
    keys: dict[str, tuple] = {}
    for name in names:
        generated = _read(read_image, generated_dir / name)
        damaged = _read(read_image, damaged_dir / name)
        hole = _read(read_mask, masks_dir / name)
        if damaged.shape != generated.shape:
            raise BlendError(f"{damaged_dir / name}: size {damaged.shape[1]}x{damaged.shape[0]} differs "
                             f"from the generated image {generated_dir / name} "
                             f"({generated.shape[1]}x{generated.shape[0]})")
        if hole.shape != generated.shape[:2]:
            raise BlendError(f"{masks_dir / name}: mask size {hole.shape[1]}x{hole.shape[0]} differs "
                             f"from the image {generated_dir / name} "
                             f"({generated.shape[1]}x{generated.shape[0]})")
        if operator == "five-point" and hole.all():
            raise BlendError(f"{masks_dir / name}: the hole covers the whole image; the five-point "
                             f"system has no Dirichlet data and is singular")
        keys[name] = _mask_key(hole)
    cache = _SolverCache(operator, cache_size)
    written = []
    for name in sorted(names, key=lambda n: (keys[n], n)):
        hole = read_mask(masks_dir / name)
        blended = _blend_with(cache.get(hole), read_image(generated_dir / name),
                              read_image(damaged_dir / name))
        written.append(write_image(out_dir / name, blended))
    return sorted(written)


BLEND_RECORD = "blend.json"


def blend_experiment(experiment: str | Path, out_dir: str | Path) -> Path:
    """The blend step of an inpaint run (DVC stage ``blend``): every result the run marks for
    blending (``inpaint.json``: ``{"dir": "generated", "blend": "blended"}``) is solved into the
    damaged inputs with the run's operator, into ``out_dir/<blend>/``. ``blend.json`` is written
    last; feed-forward runs have nothing to blend (their output is the composite) and get only
    the record, which says so."""
    import json

    from inpaintflow.conventions import write_text_atomic

    experiment, out_dir = Path(experiment), Path(out_dir)
    record_path = experiment / "inpaint.json"
    if not record_path.is_file():
        raise BlendError(f"{record_path}: missing; the inpaint run did not finish (dvc repro inpaint@...)")
    record = json.loads(record_path.read_text())
    operator = record.get("settings", {}).get("blend_operator", "five-point")
    (out_dir / BLEND_RECORD).unlink(missing_ok=True)  # it marks a finished blend
    blended = []
    for result in record["results"]:
        if not result.get("blend"):
            continue
        written = blend_dirs(experiment / result["dir"], experiment / "masked", experiment / "masks",
                             out_dir / result["blend"], operator=operator)
        blended.append({"from": result["dir"], "to": result["blend"], "images": len(written)})
    summary = {"experiment": experiment.name, "method": record.get("method"), "operator": operator,
               "blended": blended,
               "note": None if blended else "nothing to blend: the method's output is the composite"}
    return write_text_atomic(out_dir / BLEND_RECORD, json.dumps(summary, indent=2, sort_keys=True) + "\n")

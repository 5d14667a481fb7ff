"""Hole-mask generators for the five papers: pure functions, seeded, 1 = hole.

Every generator takes the mask size and an ``np.random.Generator`` and returns a ``uint8``
(size, size) mask with 1 = hole (:mod:`inpaintflow.conventions`). Mask ``i`` of a set is drawn
from :func:`mask_rng` ``(seed, i)``, so it does not depend on how the set is sharded.

Families (``FAMILIES``)
    free-form                 DeepFill v2 brush strokes, the masks of paper 004 (GLA)
    regionwise-contiguous     paper 003, one random walk of thick strokes
    regionwise-discontiguous  paper 003, small lines, circles, rectangles and ellipses
    random-square .. random-pixels   the six hole patterns of paper 001, section 3.3
    center-square, three-squares     the two masks of paper 002, Fig. 5(c)

Hole-ratio bins are half-open, ``[lo, hi)``; a bin ending at 1.0 includes 1.0. Papers 003 and
004 report by bin, so every family accepts one, reached three ways:

* free-form redraws whole masks until one falls in the bin (rejection sampling, so a binned
  mask is a DeepFill mask conditioned on its ratio). DeepFill masks rarely cover 40-50 %
  (0.3 % of draws at 256 px), hence the default of 10,000 tries; 50-60 % is out of reach.
* the region-wise families add one stroke or shape at a time until the ratio reaches a target
  drawn uniformly in the bin (their public code sets the area with a stroke-count knob, whose
  values per bin are not published); an attempt that jumps past hi is redrawn.
* the fixed-ratio patterns lie in the bin or raise at once.

Pixel parameters of the public codes are written for 256 px masks; they are scaled by
size / 256 (at least 1 px), so a 64 px mask looks like a 256 px one shrunk, not like a 256 px
brush on a small canvas.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np

from inpaintflow.conventions import hole_ratio

RatioBin = tuple[float, float]  # [lo, hi) hole ratio; hi == 1.0 includes 1.0

MIN_SIZE = 8
REFERENCE_SIZE = 256  # the size the public codes' pixel parameters are written for


class MaskRatioError(ValueError):
    """A family cannot produce a mask whose hole ratio lies in the requested bin."""


@dataclass(frozen=True)
class MaskFamily:
    """A named mask generator.

    ``draw(size, rng)`` draws one mask without a ratio constraint. ``fixed_ratio`` is True when
    every mask of a given size has the same hole ratio (positions may still be random).
    ``grow(size, rng, bin)``, where given, makes one attempt to build a mask inside the bin and
    returns ``(mask or None, ratio reached)``; None means the attempt overshot the bin or
    stopped below it.
    """

    name: str
    draw: Callable[[int, np.random.Generator], np.ndarray]
    fixed_ratio: bool
    description: str
    grow: Callable[[int, np.random.Generator, RatioBin],
                   tuple[np.ndarray | None, float]] | None = None


# ---------------------------------------------------------------------------------------------
# ratio bins

_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_BIN_PATTERN = re.compile(rf"\s*{_NUMBER}\s*-\s*{_NUMBER}\s*")


def parse_ratio_bin(text: str) -> RatioBin:
    """``"0.2-0.3"`` -> ``(0.2, 0.3)``; a ValueError naming ``text`` for anything else."""
    match = _BIN_PATTERN.fullmatch(text)
    if match is None:
        raise ValueError(f"ratio bin {text!r}: expected 'lo-hi' with two numbers in [0, 1], "
                         f"e.g. '0.2-0.3'")
    return _checked_bin((float(match[1]), float(match[2])), name=repr(text))


def format_ratio_bin(bin: RatioBin) -> str:
    """``(0.2, 0.3)`` -> ``"0.2-0.3"``; :func:`parse_ratio_bin` reads it back exactly.

    A degenerate ``(r, r)`` is allowed: it labels the one ratio of a fixed pattern.
    """
    lo, hi = (float(v) for v in bin)
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"ratio bin {bin!r}: need 0 <= lo <= hi <= 1")
    return f"{lo!r}-{hi!r}"  # repr is the shortest text that round-trips a float


def in_bin(ratio: float, bin: RatioBin) -> bool:
    """``lo <= ratio < hi``; a bin ending at 1.0 also holds 1.0 (a mask that is all hole)."""
    lo, hi = bin
    return lo <= ratio < hi or ratio == hi == 1.0


def _checked_bin(bin: RatioBin, *, name: str) -> RatioBin:
    lo, hi = (float(v) for v in bin)
    if not 0.0 <= lo < hi <= 1.0:  # NaN fails here too
        raise ValueError(f"ratio bin {name}: need 0 <= lo < hi <= 1, got lo={lo}, hi={hi}")
    return lo, hi


# ---------------------------------------------------------------------------------------------
# helpers


def _px(value_at_256: float, size: int) -> int:
    """A pixel length of the public codes (written for 256 px) at ``size``, at least 1 px."""
    return max(1, round(value_at_256 * size / REFERENCE_SIZE))


def _clip_point(x: float, y: float, size: int) -> tuple[int, int]:
    # plain min/max: np.clip on scalars costs more than drawing the stroke
    return int(min(max(x, 0), size - 1)), int(min(max(y, 0), size - 1))


def _empty(size: int) -> np.ndarray:
    return np.zeros((size, size), np.uint8)


@dataclass(frozen=True)
class Stroke:
    """A polyline brush stroke: (x, y) pixel vertices and a brush width in pixels."""

    vertices: tuple[tuple[int, int], ...]
    width: int


def draw_strokes(size: int, strokes: list[Stroke]) -> np.ndarray:
    """Paint strokes as DeepFill does: lines of the brush width and a disk at every vertex."""
    mask = _empty(size)
    for stroke in strokes:
        for start, end in zip(stroke.vertices, stroke.vertices[1:]):
            cv2.line(mask, start, end, 1, thickness=stroke.width)
        for vertex in stroke.vertices:
            cv2.circle(mask, vertex, stroke.width // 2, 1, thickness=-1)
    return mask


def _grow(mask: np.ndarray, steps: Iterator[None], rng: np.random.Generator, bin: RatioBin,
          max_steps: int) -> tuple[np.ndarray | None, float]:
    """Advance ``steps`` (each paints one more element on ``mask``) up to a target ratio.

    The target is uniform in the bin, so the masks spread over it instead of piling up just
    above lo. Returns the mask if it then lies in the bin, else None (the last element jumped
    past hi, or ``max_steps`` elements stayed below lo), with the ratio it ended at.
    """
    target = rng.uniform(*bin)
    ratio = 0.0
    for _ in range(max_steps):
        next(steps)
        ratio = hole_ratio(mask)
        if ratio >= target:
            break
    return (mask if in_bin(ratio, bin) else None), ratio


# ---------------------------------------------------------------------------------------------
# free-form: DeepFill v2 (Yu et al. 2019), the masks of paper 004

FF_STROKES = (1, 3)                     # strokes per mask, inclusive
FF_VERTICES = (4, 11)                   # vertices per stroke after the start point, inclusive
FF_MEAN_ANGLE_RAD = 2 * math.pi / 5
FF_ANGLE_RANGE_RAD = 2 * math.pi / 15
FF_WIDTH_PX_AT_256 = (12, 39)           # inclusive: DeepFill's int(uniform(12, 40))


def free_form_strokes(size: int, rng: np.random.Generator) -> list[Stroke]:
    """The strokes of one DeepFill v2 free-form mask, before painting.

    As in DeepFill v2's ``brush_stroke_mask``: 1-3 strokes; each starts at a uniform pixel and
    has 4-11 further vertices. A stroke first narrows its turn interval to
    [mean - U(0, range), mean + U(0, range)] around mean 2π/5 with range 2π/15, then draws each
    turn angle inside it, even vertices turning the other way (2π - angle). Segment lengths are
    N(R, R/2) clipped to [0, 2R] with R = sqrt(H² + W²) / 8, vertices are clipped to the image.

    Choices where DeepFill is silent: the brush width, U{12..39} px at 256 px, is scaled by
    size / 256 (DeepFill draws 12-39 px whatever the size, which would cover a 64 px mask).
    DeepFill's random flips are left out: its code calls ``mask.transpose(...)`` and discards
    the result, so its masks were never flipped.
    """
    avg_radius = math.hypot(size, size) / 8
    strokes = []
    for _ in range(rng.integers(FF_STROKES[0], FF_STROKES[1] + 1)):
        n_vertices = int(rng.integers(FF_VERTICES[0], FF_VERTICES[1] + 1))
        angle_min_rad = FF_MEAN_ANGLE_RAD - rng.uniform(0, FF_ANGLE_RANGE_RAD)
        angle_max_rad = FF_MEAN_ANGLE_RAD + rng.uniform(0, FF_ANGLE_RANGE_RAD)
        angles_rad = rng.uniform(angle_min_rad, angle_max_rad, size=n_vertices)
        angles_rad[::2] = 2 * math.pi - angles_rad[::2]

        lengths = np.clip(rng.normal(avg_radius, avg_radius / 2, size=n_vertices),
                          0, 2 * avg_radius)

        vertices = [(int(rng.integers(0, size)), int(rng.integers(0, size)))]
        for angle_rad, length in zip(angles_rad.tolist(), lengths.tolist()):
            x, y = vertices[-1]
            vertices.append(_clip_point(x + length * math.cos(angle_rad),
                                        y + length * math.sin(angle_rad), size))
        width = _px(rng.integers(FF_WIDTH_PX_AT_256[0], FF_WIDTH_PX_AT_256[1] + 1), size)
        strokes.append(Stroke(tuple(vertices), width))
    return strokes


def _draw_free_form(size: int, rng: np.random.Generator) -> np.ndarray:
    return draw_strokes(size, free_form_strokes(size, rng))


# ---------------------------------------------------------------------------------------------
# region-wise (paper 003): public code mask_online.py, continuous_mask / discontinuous_mask

RW_MAX_STROKES = 60          # strokes when no bin is asked (the public code's num = 60)
RW_MAX_LENGTH_PX_AT_256 = 32
RW_MAX_WIDTH_PX_AT_256 = 50
RW_MAX_GROW_STEPS = 5000     # strokes or shapes; far more than any ratio below 0.9 needs


def _paint_walk(mask: np.ndarray, rng: np.random.Generator) -> Iterator[None]:
    """Paint one random walk of connected strokes on ``mask``, one stroke per step, endlessly.

    Each stroke starts where the last ended, heads in a uniform direction, is 1-32 px long and
    1-50 px wide (at 256 px) and ends in a disk, as in the public ``continuous_mask``. That code
    draws an integer angle in 0-360 *degrees* and feeds it to sin/cos as radians; the direction
    is drawn here in radians, uniform on [0, 2π), which is what it meant. Its alternating
    ``360 - angle`` is dropped: on a uniform full circle it changes nothing. Ends are clipped
    to the image (that code clips to 255 whatever the size).
    """
    size = mask.shape[0]
    x, y = int(rng.integers(0, size)), int(rng.integers(0, size))
    while True:
        angle_rad = rng.uniform(0, 2 * math.pi)
        length = _px(rng.integers(1, RW_MAX_LENGTH_PX_AT_256 + 1), size)
        width = _px(rng.integers(1, RW_MAX_WIDTH_PX_AT_256 + 1), size)
        end = _clip_point(x + round(length * math.cos(angle_rad)),
                          y + round(length * math.sin(angle_rad)), size)
        cv2.line(mask, (x, y), end, 1, thickness=width)
        cv2.circle(mask, end, width // 2, 1, thickness=-1)
        x, y = end
        yield


def _paint_n(size: int, painter, rng: np.random.Generator, n: int) -> np.ndarray:
    """A fresh mask with the first ``n`` marks of ``painter(mask, rng)`` drawn on it."""
    mask = _empty(size)
    marks = painter(mask, rng)
    for _ in range(n):
        next(marks)
    return mask


def _draw_contiguous(size: int, rng: np.random.Generator) -> np.ndarray:
    n_strokes = int(rng.integers(1, RW_MAX_STROKES + 1))
    return _paint_n(size, _paint_walk, rng, n_strokes)


def _grow_contiguous(size: int, rng: np.random.Generator,
                     bin: RatioBin) -> tuple[np.ndarray | None, float]:
    mask = _empty(size)
    return _grow(mask, _paint_walk(mask, rng), rng, bin, RW_MAX_GROW_STEPS)


# Small shapes at 256 px, inclusive ranges: our choice, the paper gives none and its training
# script passes the shape count on the command line. The public discontinuous_mask draws lines
# between any two pixels and rectangles between any two corners, so one shape can cover half
# the image and the mask is no longer discontiguous; here the shapes stay small and many.
DC_SHAPES_NO_BIN = (8, 64)           # shapes per mask when no bin is asked
DC_LINE_LENGTH_PX_AT_256 = (8, 48)
DC_LINE_WIDTH_PX_AT_256 = (3, 12)
DC_CIRCLE_RADIUS_PX_AT_256 = (3, 12)
DC_RECT_SIDE_PX_AT_256 = (4, 24)
DC_ELLIPSE_AXIS_PX_AT_256 = (3, 16)


def _paint_scattered_shapes(mask: np.ndarray, rng: np.random.Generator) -> Iterator[None]:
    """Paint small filled shapes at uniform positions on ``mask``, one per step, endlessly.

    Each shape is a line, circle, axis-aligned rectangle or rotated ellipse with equal chance.
    """
    size = mask.shape[0]

    def px(bounds: tuple[int, int]) -> int:
        return _px(rng.integers(bounds[0], bounds[1] + 1), size)

    while True:
        kind = rng.integers(4)
        x, y = int(rng.integers(0, size)), int(rng.integers(0, size))
        if kind == 0:
            angle_rad = rng.uniform(0, 2 * math.pi)
            length = px(DC_LINE_LENGTH_PX_AT_256)
            end = _clip_point(x + length * math.cos(angle_rad), y + length * math.sin(angle_rad),
                              size)
            cv2.line(mask, (x, y), end, 1, thickness=px(DC_LINE_WIDTH_PX_AT_256))
        elif kind == 1:
            cv2.circle(mask, (x, y), px(DC_CIRCLE_RADIUS_PX_AT_256), 1, thickness=-1)
        elif kind == 2:
            w, h = px(DC_RECT_SIDE_PX_AT_256), px(DC_RECT_SIDE_PX_AT_256)
            mask[y:y + h, x:x + w] = 1
        else:
            axes = (px(DC_ELLIPSE_AXIS_PX_AT_256), px(DC_ELLIPSE_AXIS_PX_AT_256))
            rotation_rad = rng.uniform(0, math.pi)
            cv2.ellipse(mask, (x, y), axes, math.degrees(rotation_rad), 0, 360, 1,
                        thickness=-1)  # cv2 takes the angles in degrees
        yield


def _draw_discontiguous(size: int, rng: np.random.Generator) -> np.ndarray:
    n_shapes = int(rng.integers(DC_SHAPES_NO_BIN[0], DC_SHAPES_NO_BIN[1] + 1))
    return _paint_n(size, _paint_scattered_shapes, rng, n_shapes)


def _grow_discontiguous(size: int, rng: np.random.Generator,
                        bin: RatioBin) -> tuple[np.ndarray | None, float]:
    mask = _empty(size)
    return _grow(mask, _paint_scattered_shapes(mask, rng), rng, bin, RW_MAX_GROW_STEPS)


# ---------------------------------------------------------------------------------------------
# fixed-ratio patterns: paper 001 section 3.3 (six patterns) and paper 002 Fig. 5(c)


def _square_at_random(size: int, side: int, rng: np.random.Generator) -> np.ndarray:
    top, left = (int(v) for v in rng.integers(0, size - side + 1, size=2))
    mask = _empty(size)
    mask[top:top + side, left:left + side] = 1
    return mask


def _draw_random_square(size: int, rng: np.random.Generator) -> np.ndarray:
    """Pattern 1: a square of side round(size/2) anywhere inside: 25 % hole (size even)."""
    return _square_at_random(size, round(size / 2), rng)


def _draw_big_random_square(size: int, rng: np.random.Generator) -> np.ndarray:
    """Pattern 2: a square of side round(size·√0.5) anywhere inside: about 50 % hole."""
    return _square_at_random(size, round(size * math.sqrt(0.5)), rng)


def _draw_stripes(size: int, rng: np.random.Generator) -> np.ndarray:
    """Pattern 3: a vertical and a horizontal stripe of width w = round(size/8).

    Paper 001 gives no width; size/8 is our choice. Ratio (2·w·N - w²) / N².
    """
    width = round(size / 8)
    column, row = (int(v) for v in rng.integers(0, size - width + 1, size=2))
    mask = _empty(size)
    mask[:, column:column + width] = 1
    mask[row:row + width, :] = 1
    return mask


def _draw_left_half(size: int, rng: np.random.Generator) -> np.ndarray:
    """Pattern 4: columns [0, size//2) are hole: 50 % (size even). Uses no randomness."""
    mask = _empty(size)
    mask[:, :size // 2] = 1
    return mask


def _draw_center_square(size: int, rng: np.random.Generator) -> np.ndarray:
    """Pattern 5 (and paper 002's central square): side size//2, centred: 25 % (size % 4 == 0)."""
    side = size // 2
    start = (size - side) // 2
    mask = _empty(size)
    mask[start:start + side, start:start + side] = 1
    return mask


def _draw_random_pixels(size: int, rng: np.random.Generator) -> np.ndarray:
    """Pattern 6: exactly round(0.7·size²) pixels drawn without replacement."""
    n_holes = round(0.7 * size * size)
    mask = _empty(size)
    mask.flat[rng.choice(size * size, size=n_holes, replace=False)] = 1
    return mask


# (top, left, height, width) in sixteenths of the size
THREE_SQUARES_BOXES_16THS = (
    (2, 2, 4, 5),    # upper left
    (3, 9, 5, 4),    # upper right
    (10, 5, 4, 6),   # lower centre
)


def _draw_three_squares(size: int, rng: np.random.Generator) -> np.ndarray:
    """Paper 002's three rectangular holes (Fig. 5(c), right). Uses no randomness.

    The paper shows the mask but gives no coordinates. Ours, in sixteenths of the size:
    upper left rows 2-6 x columns 2-7, upper right rows 3-8 x columns 9-13, lower centre
    rows 10-14 x columns 5-11 (sides size/4 to 3·size/8, disjoint). 64 of 256 sixteenth-cells
    are hole, so the ratio is exactly 0.25 when size is a multiple of 16.
    """
    mask = _empty(size)
    for top, left, height, width in THREE_SQUARES_BOXES_16THS:
        r0, c0 = round(top * size / 16), round(left * size / 16)
        r1, c1 = round((top + height) * size / 16), round((left + width) * size / 16)
        mask[r0:r1, c0:c1] = 1
    return mask


# ---------------------------------------------------------------------------------------------
# registry and entry points

FAMILIES: dict[str, MaskFamily] = {family.name: family for family in (
    MaskFamily("free-form", _draw_free_form, False,
               "DeepFill v2 free-form brush strokes (paper 004's masks)"),
    MaskFamily("regionwise-contiguous", _draw_contiguous, False,
               "paper 003 contiguous: one random walk of thick strokes",
               grow=_grow_contiguous),
    MaskFamily("regionwise-discontiguous", _draw_discontiguous, False,
               "paper 003 discontiguous: small scattered lines, circles, rectangles, ellipses",
               grow=_grow_discontiguous),
    MaskFamily("random-square", _draw_random_square, True,
               "paper 001 pattern 1: randomly placed square, 25 % hole"),
    MaskFamily("big-random-square", _draw_big_random_square, True,
               "paper 001 pattern 2: randomly placed square, about 50 % hole"),
    MaskFamily("stripes", _draw_stripes, True,
               "paper 001 pattern 3: one vertical and one horizontal stripe, width size/8"),
    MaskFamily("left-half", _draw_left_half, True,
               "paper 001 pattern 4: left half of the image"),
    MaskFamily("center-square", _draw_center_square, True,
               "paper 001 pattern 5 and paper 002 central square: centred, 25 % hole"),
    MaskFamily("random-pixels", _draw_random_pixels, True,
               "paper 001 pattern 6: 70 % of the pixels, chosen at random"),
    MaskFamily("three-squares", _draw_three_squares, True,
               "paper 002 Fig. 5(c): three fixed rectangles (our geometry)"),
)}


def mask_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of mask ``index`` of a set: independent of sharding and of other masks."""
    return np.random.default_rng([seed, index])


def generate_mask(family: str, size: int, rng: np.random.Generator,
                  ratio_bin: RatioBin | None = None, *, max_tries: int = 10_000) -> np.ndarray:
    """One ``uint8`` (size, size) mask of ``family``, 1 = hole, its ratio inside ``ratio_bin``.

    Raises :class:`MaskRatioError` when the family cannot reach the bin: at once for a
    fixed-ratio pattern whose ratio lies outside it, or when a stroke family stops below it,
    else after ``max_tries`` attempts that all missed.
    """
    spec = _family(family)
    if not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise ValueError(f"mask size must be an integer >= {MIN_SIZE}, got {size!r}")
    size = int(size)
    if ratio_bin is None:
        return spec.draw(size, rng)
    bin = _checked_bin(ratio_bin, name=repr(ratio_bin))
    if max_tries < 1:
        raise ValueError(f"max_tries must be >= 1, got {max_tries}")
    where = f"family {family!r} at size {size} cannot reach ratio bin {format_ratio_bin(bin)}"

    if spec.fixed_ratio:
        mask = spec.draw(size, rng)
        ratio = hole_ratio(mask)
        if not in_bin(ratio, bin):
            raise MaskRatioError(f"{where}: its ratio is fixed at {ratio:.6f}")
        return mask

    reached = []
    for _ in range(max_tries):
        if spec.grow is None:
            mask = spec.draw(size, rng)
            ratio = hole_ratio(mask)
            mask = mask if in_bin(ratio, bin) else None
        else:
            mask, ratio = spec.grow(size, rng, bin)
            if mask is None and ratio < bin[0]:
                raise MaskRatioError(f"{where}: {RW_MAX_GROW_STEPS} elements covered only "
                                     f"{ratio:.4f} of the image")
        if mask is not None:
            return mask
        reached.append(ratio)
    raise MaskRatioError(f"{where}: {max_tries} tries reached ratios from {min(reached):.4f} "
                         f"to {max(reached):.4f}, none inside the bin")


def make_mask(family: str, size: int, seed: int, index: int,
              ratio_bin: RatioBin | None = None) -> tuple[np.ndarray, float]:
    """Mask ``index`` of the set ``(family, size, seed, ratio_bin)`` and its hole ratio."""
    mask = generate_mask(family, size, mask_rng(seed, index), ratio_bin)
    return mask, hole_ratio(mask)


def training_masks(families: Sequence[str], size: int, rng: np.random.Generator,
                   ratio_bin: RatioBin | None = None) -> Iterator[np.ndarray]:
    """Endless on-the-fly training masks: a family drawn uniformly per mask, then the mask.

    Training masks are never written to disk (only evaluation sets are). The caller owns
    ``rng`` (seeded from the training params, saved in checkpoints), so a resumed run can
    continue the same stream.
    """
    if not families:
        raise ValueError("training_masks needs at least one family")
    for name in families:
        _family(name)
    while True:
        family = families[int(rng.integers(len(families)))]
        bin = ratio_bin if ratio_bin is not None and not FAMILIES[family].fixed_ratio else None
        yield generate_mask(family, size, rng, bin)


def _family(name: str) -> MaskFamily:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown mask family {name!r}; known: {', '.join(FAMILIES)}") from None

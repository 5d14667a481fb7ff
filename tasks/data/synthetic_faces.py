"""``synthetic-faces``: procedural face-like images, the embedded offline stand-in for CelebA.

Each image is drawn from a small set of recorded attributes (:class:`FaceAttributes`), so later
tables can check that an inpainted region agrees with the rest of the face (paper 001's failures:
a moustache on a feminine face, eyes of two colours). Attributes are sampled once, per image,
from ``np.random.default_rng([seed, index])``; :func:`render_face` is a pure function of the
attributes and the output size, so image ``i`` is independent of every other image (shardable).

Geometry
    Everything is placed in the *face frame*: fractions of the image side, origin at the face
    centre, y pointing down, scaled by ``face_scale``. The layout follows an aligned CelebA-HQ
    crop (eyes at about y = 0.47 and 0.26 of the side apart, mouth at about 0.69, chin at 0.85,
    hair, neck and shoulders visible). Yaw slides the inner features sideways; roll rotates
    the head about the top of the neck.

Resolution
    Shapes are drawn with cv2's anti-aliased primitives at sub-pixel precision on a canvas of at
    least :data:`MIN_CANVAS_PX` pixels (an integer multiple of ``size``), blurred a little
    (sigma proportional to the canvas) and reduced with ``INTER_AREA``. So the same attributes
    give the same face at 32, 64, 100, 256 or 512 pixels, and small sizes are anti-aliased.
"""

from __future__ import annotations

import colorsys
import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

__all__ = [
    "FaceAttributes", "sample_attributes", "render_face", "synthetic_face",
    "landmarks", "feature_boxes", "EYE_COLORS", "HAIR_COLORS",
    "FACE_SHAPES", "HAIR_STYLES", "FACIAL_HAIR", "MOUTHS", "BACKGROUNDS", "PRESENTATIONS",
]

RGB = tuple[int, int, int]

# ---------------------------------------------------------------------------------------------
# attribute value sets (the data behind sample_attributes)

PRESENTATIONS = ("feminine", "masculine")
FACE_SHAPES = ("oval", "round", "long", "square")
HAIR_STYLES = ("bald", "short", "long", "bun", "fringe")
FACIAL_HAIR = ("none", "moustache", "beard")
MOUTHS = ("neutral", "smile", "open")
BACKGROUNDS = ("flat", "gradient", "stripes", "blobs")

# iris colours, far enough apart that an iris pixel can be classified back to its name
EYE_COLORS: dict[str, RGB] = {
    "brown": (92, 52, 24),
    "blue": (58, 122, 206),
    "green": (52, 150, 72),
    "grey": (146, 154, 164),
    "hazel": (160, 120, 40),
}
HAIR_COLORS: dict[str, RGB] = {
    "black": (28, 22, 20),
    "dark_brown": (64, 42, 27),
    "brown": (110, 72, 42),
    "auburn": (140, 64, 34),
    "blonde": (214, 182, 116),
    "grey": (168, 165, 160),
}
_SKIN_TONES: tuple[RGB, ...] = (
    (255, 224, 199), (244, 205, 175), (234, 190, 152), (222, 170, 130),
    (196, 140, 100), (164, 112, 78), (126, 84, 58), (96, 64, 45),
)
_SKIN_TONE_P = (0.17, 0.17, 0.16, 0.14, 0.12, 0.10, 0.08, 0.06)
_GLASSES_COLORS: tuple[RGB, ...] = ((24, 24, 28), (92, 56, 32), (186, 156, 82), (168, 172, 178))
_LIPSTICKS: tuple[RGB, ...] = ((172, 34, 54), (194, 72, 92), (140, 40, 64))

# probabilities, in the order of the value tuples above
_HAIR_STYLE_P = {"feminine": (0.0, 0.15, 0.45, 0.18, 0.22), "masculine": (0.16, 0.50, 0.12, 0.04, 0.18)}
_FACIAL_HAIR_P = {"feminine": (1.0, 0.0, 0.0), "masculine": (0.4, 0.25, 0.35)}  # overall 30 %
_FACE_SHAPE_P = {"feminine": (0.40, 0.25, 0.20, 0.15), "masculine": (0.25, 0.20, 0.20, 0.35)}
_EYE_P = {"light": (0.30, 0.25, 0.15, 0.12, 0.18), "dark": (0.78, 0.03, 0.04, 0.03, 0.12)}
_HAIR_COLOR_P = {"light": (0.20, 0.24, 0.20, 0.10, 0.17, 0.09), "dark": (0.62, 0.26, 0.07, 0.0, 0.0, 0.05)}
_MOUTH_P = (0.45, 0.40, 0.15)
GLASSES_P = 0.25
_LIPSTICK_P = 0.35  # of feminine faces
MAX_ROLL_RAD = 0.2

# ---------------------------------------------------------------------------------------------
# layout, in face-frame units (fractions of the image side at face_scale 1)

FACE_CENTER_FRAC = (0.5, 0.52)  # image position of the face centre before face_offset_frac
# per shape: half-width, half-height, superellipse exponent, jaw taper (narrower chin)
_SHAPE_GEOMETRY = {
    "oval": (0.255, 0.330, 2.0, 0.16),
    "round": (0.275, 0.310, 2.0, 0.07),
    "long": (0.236, 0.350, 2.1, 0.12),
    "square": (0.262, 0.322, 3.0, 0.10),
}
EYE_DX, EYE_Y = 0.125, -0.05  # eye centres at (+-EYE_DX, EYE_Y)
EYE_HALF_W, EYE_HALF_H = 0.056, 0.025
IRIS_R, PUPIL_R = 0.023, 0.008
BROW_Y = -0.115
NOSE_TIP_Y = 0.085
MOUTH_Y, MOUTH_HALF_W = 0.178, 0.072
RIM_HALF_W, RIM_HALF_H = 0.082, 0.056  # glasses rims around each eye
CHEEK_DX, CHEEK_Y = 0.15, 0.07
YAW_SHIFT = 0.05  # inner features slide by yaw * YAW_SHIFT
ROLL_PIVOT_Y = 0.3  # the head rolls about (0, ROLL_PIVOT_Y): the top of the neck

# ---------------------------------------------------------------------------------------------
# rendering constants

MIN_CANVAS_PX = 256  # draw on at least this many pixels, then reduce with INTER_AREA
BLUR_SIGMA_FRAC = 0.003  # Gaussian blur sigma, fraction of the canvas side
NOISE_STD = 2.0  # seeded pixel noise, 8-bit levels, at the output size
_BACKGROUND_PX = 64  # backgrounds are soft fields computed at this size and resized
_LIGHT_STEP_PX = 4  # the skin light field is computed on a grid this coarse, then interpolated
_SHIFT = 4  # fractional bits of cv2 coordinates (1/16 pixel)


# ---------------------------------------------------------------------------------------------
# attributes


@dataclass(frozen=True)
class FaceAttributes:
    """Everything that decides one face. Plain JSON-ready data; colours are RGB 0..255."""

    face_shape: str  # FACE_SHAPES
    yaw: float  # head turn in [-1, 1], fraction of the largest turn; + turns features right
    roll_rad: float  # in-plane tilt, |roll_rad| <= MAX_ROLL_RAD, + is clockwise on screen
    skin_tone: RGB
    eye_color: str  # a key of EYE_COLORS, the same for both eyes
    hair_style: str  # HAIR_STYLES
    hair_color: RGB
    glasses: bool  # both rims, bridge and temples, or nothing
    facial_hair: str  # FACIAL_HAIR, drawn in hair_color; always "none" on feminine faces
    mouth: str  # MOUTHS
    background: str  # BACKGROUNDS
    background_colors: tuple[RGB, RGB]  # "flat" uses the first only
    presentation: str = "feminine"  # PRESENTATIONS; drives facial hair, hair style, brows, lips
    hair_color_name: str = "brown"  # the key of HAIR_COLORS that hair_color was jittered from
    face_scale: float = 1.0  # size of the whole figure, multiplier of the face-frame unit
    face_offset_frac: tuple[float, float] = (0.0, 0.0)  # face centre shift, fraction of the side
    eyebrow_thickness_frac: float = 0.014  # fraction of the side at face_scale 1
    lip_color: RGB = (190, 110, 110)
    glasses_color: RGB = (24, 24, 28)
    shirt_color: RGB = (60, 80, 120)
    background_angle_rad: float = 0.0  # direction of the gradient / stripes
    light_dx: float = 0.0  # light from the left (-1) .. right (+1) of the face
    noise_seed: int = 0  # seeds the pixel noise and the background blobs

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists); :meth:`from_dict` inverts it."""
        return _lists(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FaceAttributes":
        return cls(**{k: _tuples(v) for k, v in data.items()})


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_lists(v) for v in value]
    return value


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str], p: tuple[float, ...]) -> str:
    return str(options[int(rng.choice(len(options), p=np.asarray(p) / sum(p)))])


def _clip_rgb(values) -> RGB:
    r, g, b = (min(255, max(0, int(round(v)))) for v in values)
    return (r, g, b)


def _jitter(rng: np.random.Generator, color: RGB, std: float) -> RGB:
    return _clip_rgb(c + rng.normal(0.0, std) for c in color)


def _hsv_color(rng: np.random.Generator, sat: tuple[float, float], val: tuple[float, float]) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(*sat), rng.uniform(*val))
    return _clip_rgb((r * 255, g * 255, b * 255))


def _scaled(color: RGB, factor: float, add: RGB = (0, 0, 0)) -> RGB:
    return _clip_rgb(c * factor + a for c, a in zip(color, add))


def sample_attributes(rng: np.random.Generator) -> FaceAttributes:
    """Draw one face's attributes. Distributions: see the ``_*_P`` tables above."""
    presentation = _pick(rng, PRESENTATIONS, (0.5, 0.5))
    skin_tone = _jitter(rng, _SKIN_TONES[int(rng.choice(len(_SKIN_TONES), p=_SKIN_TONE_P))], 5.0)
    complexion = "light" if sum(skin_tone) / 3 > 150 else "dark"
    hair_color_name = _pick(rng, list(HAIR_COLORS), _HAIR_COLOR_P[complexion])
    if presentation == "feminine" and rng.uniform() < _LIPSTICK_P:
        lip_color = _jitter(rng, _LIPSTICKS[int(rng.integers(len(_LIPSTICKS)))], 6.0)
    else:
        lip_color = _scaled(skin_tone, 0.80, (10, -40, -30))
    brow_range = (0.009, 0.014) if presentation == "feminine" else (0.013, 0.021)
    bg_kind = _pick(rng, BACKGROUNDS, (1, 1, 1, 1))
    return FaceAttributes(
        face_shape=_pick(rng, FACE_SHAPES, _FACE_SHAPE_P[presentation]),
        yaw=float(np.clip(rng.normal(0.0, 0.4), -1.0, 1.0)),
        roll_rad=float(np.clip(rng.normal(0.0, 0.07), -MAX_ROLL_RAD, MAX_ROLL_RAD)),
        skin_tone=skin_tone,
        eye_color=_pick(rng, list(EYE_COLORS), _EYE_P[complexion]),
        hair_style=_pick(rng, HAIR_STYLES, _HAIR_STYLE_P[presentation]),
        hair_color=_jitter(rng, HAIR_COLORS[hair_color_name], 6.0),
        glasses=bool(rng.uniform() < GLASSES_P),
        facial_hair=_pick(rng, FACIAL_HAIR, _FACIAL_HAIR_P[presentation]),
        mouth=_pick(rng, MOUTHS, _MOUTH_P),
        background=bg_kind,
        background_colors=(_hsv_color(rng, (0.05, 0.6), (0.35, 0.95)),
                           _hsv_color(rng, (0.05, 0.6), (0.35, 0.95))),
        presentation=presentation,
        hair_color_name=hair_color_name,
        face_scale=float(rng.uniform(0.92, 1.06)),
        face_offset_frac=(float(rng.uniform(-0.02, 0.02)), float(rng.uniform(-0.015, 0.02))),
        eyebrow_thickness_frac=float(rng.uniform(*brow_range)),
        lip_color=lip_color,
        glasses_color=_GLASSES_COLORS[int(rng.integers(len(_GLASSES_COLORS)))],
        shirt_color=_hsv_color(rng, (0.1, 0.8), (0.2, 0.85)),
        background_angle_rad=float(rng.uniform(0.0, math.pi)),
        light_dx=float(rng.uniform(-1.0, 1.0)),
        noise_seed=int(rng.integers(0, 2**31 - 1)),
    )


# ---------------------------------------------------------------------------------------------
# face frame -> canvas pixels


@dataclass(frozen=True)
class _Frame:
    """Maps face-frame coordinates to canvas pixels, rolling about (0, ROLL_PIVOT_Y)."""

    canvas_px: int
    origin_px: tuple[float, float]  # the face centre in cv2 pixel coordinates
    unit_px: float  # canvas pixels per face-frame unit
    roll_rad: float

    def xy(self, pts: np.ndarray) -> np.ndarray:
        """(N, 2) face-frame points -> (N, 2) float cv2 pixel coordinates (pixel centres at ints)."""
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        c, s = math.cos(self.roll_rad), math.sin(self.roll_rad)
        x, y = pts[:, 0], pts[:, 1] - ROLL_PIVOT_Y
        rx, ry = c * x - s * y, s * x + c * y + ROLL_PIVOT_Y
        return np.stack([self.origin_px[0] + self.unit_px * rx, self.origin_px[1] + self.unit_px * ry], 1)

    def fixed(self, pts: np.ndarray) -> np.ndarray:
        return np.rint(self.xy(pts) * (1 << _SHIFT)).astype(np.int32)

    def point(self, x: float, y: float) -> tuple[int, int]:
        c, s = math.cos(self.roll_rad), math.sin(self.roll_rad)
        y -= ROLL_PIVOT_Y
        px = self.origin_px[0] + self.unit_px * (c * x - s * y)
        py = self.origin_px[1] + self.unit_px * (s * x + c * y + ROLL_PIVOT_Y)
        return int(round(px * (1 << _SHIFT))), int(round(py * (1 << _SHIFT)))

    def length(self, frac: float) -> int:
        return max(1, int(round(frac * self.unit_px * (1 << _SHIFT))))

    def thickness(self, frac: float) -> int:
        return max(1, int(round(frac * self.unit_px)))

    def upright(self) -> "_Frame":
        return dataclasses.replace(self, roll_rad=0.0)


def _frame(attrs: FaceAttributes, canvas_px: int) -> _Frame:
    cx = (FACE_CENTER_FRAC[0] + attrs.face_offset_frac[0]) * canvas_px - 0.5
    cy = (FACE_CENTER_FRAC[1] + attrs.face_offset_frac[1]) * canvas_px - 0.5
    return _Frame(canvas_px, (cx, cy), attrs.face_scale * canvas_px, attrs.roll_rad)


def _canvas_px(size: int) -> int:
    return size * max(1, math.ceil(MIN_CANVAS_PX / size))


# drawing helpers: colours are RGB tuples, the canvas is RGB (cv2 does not care about order)


def _fill(canvas: np.ndarray, f: _Frame, pts, color) -> None:
    cv2.fillPoly(canvas, [f.fixed(pts)], color, lineType=cv2.LINE_AA, shift=_SHIFT)


def _line(canvas: np.ndarray, f: _Frame, pts, color, thickness_frac: float, closed: bool = False) -> None:
    cv2.polylines(canvas, [f.fixed(pts)], closed, color, f.thickness(thickness_frac),
                  lineType=cv2.LINE_AA, shift=_SHIFT)


def _ellipse(canvas: np.ndarray, f: _Frame, center, axes, color, thickness_frac: float | None = None,
             start_deg: float = 0.0, end_deg: float = 360.0) -> None:
    """Filled (thickness None) or outlined ellipse or arc, axis-aligned in the face frame."""
    thickness = -1 if thickness_frac is None else f.thickness(thickness_frac)
    cv2.ellipse(canvas, f.point(*center), (f.length(axes[0]), f.length(axes[1])),
                math.degrees(f.roll_rad), start_deg, end_deg, color, thickness,
                lineType=cv2.LINE_AA, shift=_SHIFT)


def _arc(center, axes, start_deg: float, end_deg: float, n: int = 24) -> np.ndarray:
    t = np.radians(np.linspace(start_deg, end_deg, n))
    return np.stack([center[0] + axes[0] * np.cos(t), center[1] + axes[1] * np.sin(t)], 1)


# ---------------------------------------------------------------------------------------------
# geometry shared by the renderer, landmarks() and feature_boxes()


def _face_outline(attrs: FaceAttributes, n: int = 72, grow: float = 1.0) -> np.ndarray:
    """(n, 2) face contour: a superellipse whose lower half narrows towards the chin."""
    rx, ry, exponent, taper = _SHAPE_GEOMETRY[attrs.face_shape]
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    x = rx * np.sign(c) * np.abs(c) ** (2 / exponent)
    y = ry * np.sign(s) * np.abs(s) ** (2 / exponent)
    x = x * (1 - taper * np.clip(y / ry, 0, 1) ** 2)
    return np.stack([x, y], 1) * grow


def _eye_centers(attrs: FaceAttributes) -> list[tuple[float, float, float]]:
    """(x, y, width factor) of the image-left and image-right eye; the far eye is foreshortened."""
    shift = attrs.yaw * YAW_SHIFT
    return [(side * EYE_DX + shift, EYE_Y, 1.0 - 0.15 * attrs.yaw * side) for side in (-1, 1)]


def landmarks(attrs: FaceAttributes, size: int) -> dict[str, tuple[float, float]]:
    """Feature centres in output pixels (x, y), continuous coordinates (pixel i spans [i, i+1]).

    ``left_eye`` is the eye on the image's left; ``left_cheek``/``right_cheek`` are bare skin
    unless there is facial hair. Useful for attribute-consistency checks.
    """
    f = _frame(attrs, size)
    shift = attrs.yaw * YAW_SHIFT
    (lx, ly, _), (rx, ry, _) = _eye_centers(attrs)
    pts = {"left_eye": (lx, ly), "right_eye": (rx, ry), "nose_tip": (1.3 * shift, NOSE_TIP_Y),
           "mouth": (shift, MOUTH_Y), "chin": (0.0, _SHAPE_GEOMETRY[attrs.face_shape][1]),
           # bare skin on faces without facial hair (below the eyes, beside the nose and mouth)
           "left_cheek": (-CHEEK_DX + 0.5 * shift, CHEEK_Y),
           "right_cheek": (CHEEK_DX + 0.5 * shift, CHEEK_Y)}
    pixels = f.xy(np.array(list(pts.values()))) + 0.5  # cv2 pixel centres -> continuous coordinates
    return {name: (float(x), float(y)) for name, (x, y) in zip(pts, pixels)}


def feature_boxes(attrs: FaceAttributes, size: int) -> dict[str, tuple[int, int, int, int]]:
    """Axis-aligned boxes (x0, y0, x1, y1), exclusive ends, in output pixels, clipped to the image.

    ``eyes`` holds everything glasses may touch (rims, bridge, temples); ``mouth`` everything
    facial hair or the mouth may touch; ``face`` the face contour.
    """
    rx = _SHAPE_GEOMETRY[attrs.face_shape][0]
    (lx, _, _), (rxe, _, _) = _eye_centers(attrs)
    shift = attrs.yaw * YAW_SHIFT
    regions = {
        "left_eye": [(lx - RIM_HALF_W, EYE_Y - RIM_HALF_H), (lx + RIM_HALF_W, EYE_Y + RIM_HALF_H)],
        "right_eye": [(rxe - RIM_HALF_W, EYE_Y - RIM_HALF_H), (rxe + RIM_HALF_W, EYE_Y + RIM_HALF_H)],
        "eyes": [(-rx * 1.02, EYE_Y - RIM_HALF_H - 0.01), (rx * 1.02, EYE_Y + RIM_HALF_H + 0.01)],
        "mouth": [(shift - 0.11, MOUTH_Y - 0.06), (shift + 0.11, MOUTH_Y + 0.06)],
        "face": [tuple(_face_outline(attrs).min(0)), tuple(_face_outline(attrs).max(0))],
    }
    f = _frame(attrs, size)
    out = {}
    for name, ((x0, y0), (x1, y1)) in regions.items():
        corners = f.xy(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])) + 0.5
        lo = np.clip(np.floor(corners.min(0)), 0, size).astype(int)
        hi = np.clip(np.ceil(corners.max(0)), 0, size).astype(int)
        out[name] = (int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1]))
    return out


# ---------------------------------------------------------------------------------------------
# layers, back to front


@lru_cache(maxsize=8)
def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates of an n x n image as fractions of its side (read-only)."""
    c = (np.arange(n, dtype=np.float32) + 0.5) / n
    xs, ys = np.meshgrid(c, c)
    xs.setflags(write=False)
    ys.setflags(write=False)
    return xs, ys


def _background(attrs: FaceAttributes, canvas_px: int) -> np.ndarray:
    """A soft (out-of-focus) background, computed small and resized: (n, n, 3) uint8."""
    xs, ys = _grid(_BACKGROUND_PX)
    a = attrs.background_angle_rad
    along = (xs - 0.5) * math.cos(a) + (ys - 0.5) * math.sin(a)  # in [-0.71, 0.71]
    if attrs.background == "flat":
        weight = np.zeros_like(xs)
    elif attrs.background == "gradient":
        weight = np.clip(along / 1.42 + 0.5, 0, 1)
    elif attrs.background == "stripes":
        weight = np.clip(0.5 + 1.2 * np.sin(2 * math.pi * along / 0.16), 0, 1)
    elif attrs.background == "blobs":
        rng = np.random.default_rng([attrs.noise_seed, 1])
        weight = np.zeros_like(xs)
        for _ in range(6):
            bx, by = rng.uniform(0, 1, 2)
            r = rng.uniform(0.06, 0.16)
            weight = np.maximum(weight, np.exp(-((xs - bx) ** 2 + (ys - by) ** 2) / (2 * r * r)))
    else:
        raise ValueError(f"unknown background {attrs.background!r}; known: {BACKGROUNDS}")
    c0, c1 = (np.asarray(c, dtype=np.float32) for c in attrs.background_colors)
    small = c0 * (1 - weight[..., None]) + c1 * weight[..., None]
    small = np.clip(np.rint(small), 0, 255).astype(np.uint8)
    return cv2.resize(small, (canvas_px, canvas_px), interpolation=cv2.INTER_LINEAR)


def _draw_body(canvas: np.ndarray, f: _Frame, attrs: FaceAttributes) -> None:
    """Shoulders in shirt_color and the neck with a crew/V neckline; they do not roll."""
    body = f.upright()
    shoulders = [(-0.7, 0.9), (-0.62, 0.47), (-0.42, 0.39), (-0.16, 0.35), (0.16, 0.35),
                 (0.42, 0.39), (0.62, 0.47), (0.7, 0.9)]
    _fill(canvas, body, shoulders, attrs.shirt_color)
    neck = [(-0.105, 0.15), (0.105, 0.15), (0.11, 0.36), (0.0, 0.43), (-0.11, 0.36)]
    _fill(canvas, body, neck, _scaled(attrs.skin_tone, 0.78))
    _line(canvas, body, [(-0.15, 0.355), (0.0, 0.445), (0.15, 0.355)], _scaled(attrs.shirt_color, 0.7), 0.012)


def _hair_back(canvas: np.ndarray, f: _Frame, attrs: FaceAttributes) -> None:
    """Hair behind the head: long hair down to the shoulders, the bun on top."""
    rx, ry = _SHAPE_GEOMETRY[attrs.face_shape][:2]
    color = _scaled(attrs.hair_color, 0.85)
    if attrs.hair_style == "long":
        top = _arc((0.0, -0.03), (rx + 0.05, ry + 0.04), 180, 360)
        sides = [(rx + 0.09, 0.2), (rx + 0.1, 0.5), (-rx - 0.1, 0.5), (-rx - 0.09, 0.2)]
        _fill(canvas, f, np.concatenate([top, sides]), color)
    elif attrs.hair_style == "bun":
        _ellipse(canvas, f, (0.0, -ry - 0.045), (0.085, 0.075), color)


def _draw_head(canvas: np.ndarray, f: _Frame, attrs: FaceAttributes) -> None:
    """Ears and the face in skin_tone, lit by a soft radial light (only the skin is shaded)."""
    rx, ry = _SHAPE_GEOMETRY[attrs.face_shape][:2]
    ear_dx = -attrs.yaw * 0.015
    coverage = np.zeros(canvas.shape[:2], np.uint8)  # anti-aliased skin coverage, 0..255
    for side in (-1, 1):
        _ellipse(coverage, f, (side * (rx - 0.008) + ear_dx, 0.005), (0.036, 0.066), 255)
    _fill(coverage, f, _face_outline(attrs), 255)
    # light: brightest slightly above the centre, towards light_dx; darker towards the contour.
    # The field is smooth, so it is computed every _LIGHT_STEP_PX pixels and interpolated.
    x0, y0, w, h = cv2.boundingRect(coverage)
    step = _LIGHT_STEP_PX
    xs = (np.arange(x0, x0 + w + step, step, dtype=np.float32) - f.origin_px[0]) / f.unit_px
    ys = (np.arange(y0, y0 + h + step, step, dtype=np.float32) - f.origin_px[1]) / f.unit_px - ROLL_PIVOT_Y
    c, s = math.cos(f.roll_rad), math.sin(f.roll_rad)  # canvas -> face frame is the inverse roll
    u = c * xs[None, :] + s * ys[:, None]
    v = -s * xs[None, :] + c * ys[:, None] + ROLL_PIVOT_Y
    d2 = ((u - 0.1 * attrs.light_dx) / rx) ** 2 + ((v + 0.06) / ry) ** 2
    coarse = np.clip(1.07 - 0.3 * d2, 0.68, 1.1)
    to_coarse = np.float32([[1 / step, 0, 0], [0, 1 / step, 0]])
    light = cv2.warpAffine(coarse, to_coarse, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    lit_skin = cv2.merge([cv2.convertScaleAbs(light, alpha=float(ch)) for ch in attrs.skin_tone])
    alpha = coverage[y0:y0 + h, x0:x0 + w].astype(np.float32) * (1 / 255)
    region = canvas[y0:y0 + h, x0:x0 + w]
    canvas[y0:y0 + h, x0:x0 + w] = cv2.blendLinear(lit_skin, region, alpha, 1 - alpha)
    for side in (-1, 1):  # inner-ear shadow
        _ellipse(canvas, f, (side * rx + ear_dx, 0.01), (0.016, 0.04), _scaled(attrs.skin_tone, 0.7),
                 0.008, 300 if side > 0 else 120, 420 if side > 0 else 240)


def _draw_eyes(canvas: np.ndarray, f: _Frame, attrs: FaceAttributes) -> None:
    iris = EYE_COLORS[attrs.eye_color]
    lid = (48, 34, 30)
    lid_frac = 0.009 if attrs.presentation == "feminine" else 0.006
    brow = _scaled(attrs.hair_color, 0.8)
    for (x, y, w), side in zip(_eye_centers(attrs), (-1, 1)):
        half_w = EYE_HALF_W * w
        _ellipse(canvas, f, (x, y), (half_w + 0.006, EYE_HALF_H + 0.006), _scaled(attrs.skin_tone, 0.86))
        _ellipse(canvas, f, (x, y), (half_w, EYE_HALF_H), (236, 232, 226))
        _ellipse(canvas, f, (x, y), (IRIS_R * min(w, 1.0), IRIS_R), iris)
        _ellipse(canvas, f, (x, y), (PUPIL_R, PUPIL_R), (16, 12, 12))
        _ellipse(canvas, f, (x - 0.007, y - 0.008), (0.004, 0.004), (250, 250, 250))
        _ellipse(canvas, f, (x, y), (half_w, EYE_HALF_H), lid, lid_frac, 180, 360)
        bx = x + 0.004 * side
        brow_pts = [(bx - side * 0.065, BROW_Y + 0.01), (bx + side * 0.0, BROW_Y - 0.008),
                    (bx + side * 0.07, BROW_Y + 0.004)]
        _line(canvas, f, _smooth(brow_pts), brow, attrs.eyebrow_thickness_frac)


def _smooth(pts, n: int = 12) -> np.ndarray:
    """A quadratic Bezier through three control points (a gentle curve for brows and lips)."""
    p0, p1, p2 = (np.asarray(p, dtype=np.float64) for p in pts)
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def _draw_nose(canvas: np.ndarray, f: _Frame, attrs: FaceAttributes) -> None:
    x = 1.3 * attrs.yaw * YAW_SHIFT
    shade = _scaled(attrs.skin_tone, 0.84)
    side = -1 if attrs.light_dx > 0 else 1  # the shadow falls away from the light
    _line(canvas, f, [(x * 0.7 + side * 0.022, EYE_Y + 0.05), (x + side * 0.028, NOSE_TIP_Y - 0.012)],
          shade, 0.01)
    _ellipse(canvas, f, (x, NOSE_TIP_Y), (0.036, 0.018), _scaled(attrs.skin_tone, 0.74), 0.007, 20, 160)
    for s in (-1, 1):
        _ellipse(canvas, f, (x + s * 0.02, NOSE_TIP_Y + 0.011), (0.011, 0.006), _scaled(attrs.skin_tone, 0.5))


def _draw_facial_hair(canvas: np.ndarray, f: _Frame, attrs: FaceAttributes) -> None:
    if attrs.facial_hair == "none":
        return
    color = _scaled(attrs.hair_color, 0.9)
    x = attrs.yaw * YAW_SHIFT
    if attrs.facial_hair == "beard":
        rx = _SHAPE_GEOMETRY[attrs.face_shape][0]
        outline = _face_outline(attrs, n=96, grow=1.04)
        lower = outline[outline[:, 1] > 0.02]
        lower = lower[np.argsort(-lower[:, 0])]  # right to left along the jaw
        upper = [(-rx * 0.99, 0.02), (-0.15 + x, 0.12), (-0.08 + x, 0.14), (x, 0.135),
                 (0.08 + x, 0.14), (0.15 + x, 0.12), (rx * 0.99, 0.02)]
        _fill(canvas, f, np.concatenate([lower, upper]), color)
    # moustache (also part of every beard), from under the nose to over the upper lip
    moustache = [(-0.09, 0.012), (-0.06, -0.035), (-0.02, -0.058), (0.0, -0.055), (0.02, -0.058),
                 (0.06, -0.035), (0.09, 0.012), (0.075, 0.008), (0.045, -0.018), (0.0, -0.022),
                 (-0.045, -0.018), (-0.075, 0.008)]
    _fill(canvas, f, np.asarray(moustache) + (x, MOUTH_Y), color)


def _draw_mouth(canvas: np.ndarray, f: _Frame, attrs: FaceAttributes) -> None:
    x, y, w = attrs.yaw * YAW_SHIFT, MOUTH_Y, MOUTH_HALF_W
    lips, dark, teeth = attrs.lip_color, (74, 22, 28), (238, 232, 220)
    if attrs.mouth == "neutral":
        upper = np.concatenate([_smooth([(x - w, y), (x - w * 0.5, y - 0.03), (x, y - 0.012)]),
                                _smooth([(x, y - 0.012), (x + w * 0.5, y - 0.03), (x + w, y)])])
        _fill(canvas, f, upper, lips)
        _ellipse(canvas, f, (x, y), (w * 0.82, 0.024), lips, None, 0, 180)
        _line(canvas, f, _smooth([(x - w, y), (x, y + 0.006), (x + w, y)]), _scaled(lips, 0.55), 0.007)
    elif attrs.mouth == "smile":
        _ellipse(canvas, f, (x, y - 0.01), (w * 1.05, 0.045), dark, None, 0, 180)
        _ellipse(canvas, f, (x, y - 0.01), (w * 0.92, 0.02), teeth, None, 0, 180)
        _ellipse(canvas, f, (x, y - 0.01), (w * 1.05, 0.045), lips, 0.014, 0, 180)
        _line(canvas, f, [(x - w * 1.05, y - 0.012), (x + w * 1.05, y - 0.012)], lips, 0.01)
    elif attrs.mouth == "open":
        _ellipse(canvas, f, (x, y), (w * 0.62, 0.036), dark)
        _ellipse(canvas, f, (x, y - 0.022), (w * 0.5, 0.014), teeth, None, 0, 180)
        _ellipse(canvas, f, (x, y), (w * 0.62, 0.036), lips, 0.014)
    else:
        raise ValueError(f"unknown mouth {attrs.mouth!r}; known: {MOUTHS}")


def _draw_glasses(canvas: np.ndarray, f: _Frame, attrs: FaceAttributes) -> None:
    """Two identical rims, a bridge and temples reaching the ears."""
    if not attrs.glasses:
        return
    rx = _SHAPE_GEOMETRY[attrs.face_shape][0]
    t = np.linspace(0, 2 * math.pi, 40, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    rim = np.stack([np.sign(c) * np.abs(c) ** 0.6, np.sign(s) * np.abs(s) ** 0.6], 1)  # rounded box
    color, thick = attrs.glasses_color, 0.011
    inner = []
    for (x, y, w), side in zip(_eye_centers(attrs), (-1, 1)):
        half = np.array([RIM_HALF_W * w, RIM_HALF_H])
        _line(canvas, f, (x, y) + rim * half, color, thick, closed=True)
        inner.append((x - side * half[0], y - 0.012))
        _line(canvas, f, [(x + side * half[0], y - 0.02), (side * rx * 1.0, y - 0.012)], color, thick)
    _line(canvas, f, _smooth([inner[0], ((inner[0][0] + inner[1][0]) / 2, inner[0][1] - 0.012), inner[1]]),
          color, thick)


def _hair_front(canvas: np.ndarray, f: _Frame, attrs: FaceAttributes) -> None:
    """Hair over the head: a cap down to the hairline, fringe, or curtains over the ears."""
    rx, ry = _SHAPE_GEOMETRY[attrs.face_shape][:2]
    style, color = attrs.hair_style, attrs.hair_color
    if style == "bald":
        return
    cap_axes = (rx + 0.02, ry + 0.025) if style != "bun" else (rx + 0.01, ry + 0.012)
    top = _arc((0.0, -0.02), cap_axes, 170, 370, 40)
    if style == "short":
        hairline = [(rx * 0.96, -0.07), (rx * 0.78, -0.16), (0.1, -0.2), (-0.05, -0.215),
                    (-rx * 0.78, -0.16), (-rx * 0.96, -0.07)]
    elif style == "fringe":
        hairline = [(rx * 0.97, -0.05), (rx * 0.75, -0.13), (0.1, -0.14), (0.05, -0.132), (0.0, -0.145),
                    (-0.05, -0.132), (-0.1, -0.142), (-rx * 0.75, -0.13), (-rx * 0.97, -0.05)]
    elif style == "bun":
        hairline = [(rx * 0.95, -0.09), (rx * 0.6, -0.2), (0.0, -0.235), (-rx * 0.6, -0.2),
                    (-rx * 0.95, -0.09)]
    elif style == "long":  # side parting, curtains over the ears down to the jaw
        # outer edge: down the left side, over the crown, down the right side; then back inside
        top = np.concatenate([[(-rx - 0.07, 0.28)], _arc((0.0, -0.03), (rx + 0.05, ry + 0.04), 180, 360, 40)])
        hairline = [(rx + 0.07, 0.28), (rx - 0.035, 0.26), (rx * 0.86, 0.05), (rx * 0.8, -0.1),
                    (0.12, -0.19), (-0.04, -0.235), (-0.09, -0.18), (-rx * 0.8, -0.1), (-rx * 0.86, 0.05),
                    (-rx + 0.035, 0.26), (-rx - 0.07, 0.28)]
    else:
        raise ValueError(f"unknown hair style {style!r}; known: {HAIR_STYLES}")
    _fill(canvas, f, np.concatenate([top, hairline]), color)
    # sheen: a lighter arc on the lit side of the crown
    start = 215 if attrs.light_dx < 0 else 275
    _ellipse(canvas, f, (0.0, -0.02), (rx * 0.75, ry * 0.92), _scaled(color, 1.15, (18, 18, 18)), 0.012,
             start, start + 50)


def _check(attrs: FaceAttributes) -> None:
    """Reject unknown categorical values, naming the field (e.g. from a hand-edited JSON)."""
    allowed = {"face_shape": FACE_SHAPES, "eye_color": tuple(EYE_COLORS), "hair_style": HAIR_STYLES,
               "facial_hair": FACIAL_HAIR, "mouth": MOUTHS, "background": BACKGROUNDS,
               "presentation": PRESENTATIONS}
    for name, values in allowed.items():
        if getattr(attrs, name) not in values:
            raise ValueError(f"FaceAttributes.{name} = {getattr(attrs, name)!r}; known: {', '.join(values)}")


def _draw_face_layer(canvas: np.ndarray, attrs: FaceAttributes) -> None:
    f = _frame(attrs, canvas.shape[0])
    _hair_back(canvas, f, attrs)
    _draw_body(canvas, f, attrs)
    _draw_head(canvas, f, attrs)
    _draw_eyes(canvas, f, attrs)
    _draw_nose(canvas, f, attrs)
    _draw_facial_hair(canvas, f, attrs)
    _draw_mouth(canvas, f, attrs)
    _draw_glasses(canvas, f, attrs)
    _hair_front(canvas, f, attrs)


def render_face(attrs: FaceAttributes, size: int) -> np.ndarray:
    """Draw ``attrs`` as an RGB ``uint8`` (size, size, 3) image; a pure function of its arguments."""
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    _check(attrs)
    n = _canvas_px(size)
    canvas = _background(attrs, n)
    _draw_face_layer(canvas, attrs)
    canvas = cv2.GaussianBlur(canvas, (0, 0), BLUR_SIGMA_FRAC * n)
    if n != size:
        canvas = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    noise = np.random.default_rng([attrs.noise_seed, 0]).standard_normal((size, size, 3), np.float32)
    return np.clip(np.rint(canvas + NOISE_STD * noise), 0, 255).astype(np.uint8)


def synthetic_face(seed: int, index: int, size: int) -> tuple[np.ndarray, FaceAttributes]:
    """Image ``index`` of the stream ``seed``: independent of every other index (shardable)."""
    attrs = sample_attributes(np.random.default_rng([seed, index]))
    return render_face(attrs, size), attrs

"""synthetic-faces: shapes, determinism, attribute distributions and renderer consistency."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import fields, replace

import cv2
import numpy as np
import pytest

from inpaintflow.tasks.data.synthetic_faces import (BACKGROUNDS, EYE_COLORS, FACE_SHAPES, FACIAL_HAIR, HAIR_COLORS,
                                                    HAIR_STYLES, IRIS_R, MAX_ROLL_RAD, MOUTHS, PRESENTATIONS, PUPIL_R,
                                                    FaceAttributes, feature_boxes, landmarks, render_face,
                                                    sample_attributes, synthetic_face)

N_SAMPLES = 200


@pytest.fixture(scope="module")
def population() -> list[FaceAttributes]:
    return [sample_attributes(np.random.default_rng([7, i])) for i in range(N_SAMPLES)]


def _attrs(index: int = 0, **changes) -> FaceAttributes:
    return replace(sample_attributes(np.random.default_rng([123, index])), **changes)


def _patch_mean(image: np.ndarray, xy: tuple[float, float], radius_px: int = 2) -> np.ndarray:
    """Mean colour of the (2r+1)^2 patch around continuous coordinates ``xy``."""
    x, y = int(xy[0]), int(xy[1])
    patch = image[y - radius_px:y + radius_px + 1, x - radius_px:x + radius_px + 1]
    return patch.reshape(-1, 3).astype(np.float64).mean(0)


def _nearest_eye_color(rgb: np.ndarray) -> str:
    return min(EYE_COLORS, key=lambda name: float(np.abs(np.asarray(EYE_COLORS[name]) - rgb).sum()))


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2) > 0


def _outside(mask: np.ndarray, box: tuple[int, int, int, int], margin_px: int) -> np.ndarray:
    x0, y0, x1, y1 = box
    out = mask.copy()
    out[max(0, y0 - margin_px):y1 + margin_px, max(0, x0 - margin_px):x1 + margin_px] = False
    return out


# ---------------------------------------------------------------------------------------------
# shapes and determinism


@pytest.mark.parametrize("size", [32, 64, 100, 256])
def test_shape_and_dtype(size):
    image, attrs = synthetic_face(0, 3, size)
    assert image.shape == (size, size, 3)
    assert image.dtype == np.uint8
    assert isinstance(attrs, FaceAttributes)
    assert image.std() > 10  # a picture, not a flat fill


def test_same_seed_and_index_give_identical_bytes():
    a, attrs_a = synthetic_face(5, 11, 64)
    b, attrs_b = synthetic_face(5, 11, 64)
    assert a.tobytes() == b.tobytes()
    assert attrs_a == attrs_b


def test_different_index_or_seed_gives_a_different_face():
    a, attrs_a = synthetic_face(5, 11, 64)
    b, attrs_b = synthetic_face(5, 12, 64)
    c, attrs_c = synthetic_face(6, 11, 64)
    assert attrs_a != attrs_b and attrs_a != attrs_c
    assert not np.array_equal(a, b) and not np.array_equal(a, c)


def test_images_do_not_depend_on_call_order_or_global_rng():
    forward = [synthetic_face(1, i, 32)[0] for i in range(5)]
    np.random.seed(99)  # the global RNG must play no part
    backward = [synthetic_face(1, i, 32)[0] for i in reversed(range(5))][::-1]
    for x, y in zip(forward, backward):
        assert np.array_equal(x, y)


def test_render_face_is_a_pure_function_of_attrs_and_size():
    attrs = _attrs(4)
    assert np.array_equal(render_face(attrs, 64), render_face(attrs, 64))
    assert np.array_equal(render_face(attrs, 64), synthetic_face(123, 4, 64)[0])


def test_too_small_size_is_rejected():
    with pytest.raises(ValueError, match="size"):
        render_face(_attrs(), 4)


# ---------------------------------------------------------------------------------------------
# attributes


def test_attributes_json_round_trip():
    attrs = _attrs(2)
    text = json.dumps(attrs.to_dict())
    back = FaceAttributes.from_dict(json.loads(text))
    assert back == attrs
    assert np.array_equal(render_face(back, 32), render_face(attrs, 32))
    assert set(attrs.to_dict()) == {f.name for f in fields(FaceAttributes)}


def test_every_categorical_value_appears(population):
    expected = {
        "face_shape": FACE_SHAPES, "eye_color": tuple(EYE_COLORS), "hair_style": HAIR_STYLES,
        "facial_hair": FACIAL_HAIR, "mouth": MOUTHS, "background": BACKGROUNDS,
        "presentation": PRESENTATIONS, "hair_color_name": tuple(HAIR_COLORS),
    }
    for name, values in expected.items():
        seen = Counter(getattr(a, name) for a in population)
        assert set(seen) == set(values), f"{name}: saw {dict(seen)}"


def test_attribute_proportions_and_ranges(population):
    glasses = np.mean([a.glasses for a in population])
    facial_hair = np.mean([a.facial_hair != "none" for a in population])
    assert 0.15 <= glasses <= 0.35
    assert 0.2 <= facial_hair <= 0.4
    assert all(a.facial_hair == "none" for a in population if a.presentation == "feminine")
    assert all(-1.0 <= a.yaw <= 1.0 and abs(a.roll_rad) <= MAX_ROLL_RAD for a in population)
    assert np.std([a.yaw for a in population]) > 0.2 and np.std([a.roll_rad for a in population]) > 0.03
    assert len({a.skin_tone for a in population}) > 50
    assert len({a.noise_seed for a in population}) == N_SAMPLES
    for a in population:
        for color in (a.skin_tone, a.hair_color, a.lip_color, a.shirt_color, *a.background_colors):
            assert len(color) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in color)


# ---------------------------------------------------------------------------------------------
# renderer consistency


@pytest.mark.parametrize("eye_color", list(EYE_COLORS))
def test_both_irises_show_the_recorded_eye_color(eye_color):
    attrs = _attrs(1, eye_color=eye_color, yaw=0.0, roll_rad=0.0, glasses=False)
    size = 256
    image = render_face(attrs, size)
    ring_px = (PUPIL_R + IRIS_R) / 2 * attrs.face_scale * size  # between pupil and iris edge
    colors = []
    for eye in ("left_eye", "right_eye"):
        x, y = landmarks(attrs, size)[eye]
        # right, left and below the pupil (the catch-light sits up-left)
        samples = [_patch_mean(image, (x + dx, y + dy), 0) for dx, dy in
                   ((ring_px, 0), (-ring_px, 0), (0, ring_px))]
        colors.append(np.median(samples, axis=0))
    assert np.abs(colors[0] - colors[1]).max() < 12, colors
    assert _nearest_eye_color(colors[0]) == eye_color, colors[0]
    assert _nearest_eye_color(colors[1]) == eye_color, colors[1]


def test_landmarks_follow_yaw_and_roll():
    attrs = _attrs(1, eye_color="blue", yaw=0.7, roll_rad=0.15, glasses=False)
    size = 256
    image = render_face(attrs, size)
    marks = landmarks(attrs, size)
    below_pupil = (PUPIL_R + IRIS_R) / 2 * attrs.face_scale * size
    for eye in ("left_eye", "right_eye"):
        x, y = marks[eye]
        assert _nearest_eye_color(_patch_mean(image, (x, y + below_pupil), 0)) == "blue"
    straight = landmarks(replace(attrs, yaw=0.0, roll_rad=0.0), size)
    assert marks["nose_tip"][0] > straight["nose_tip"][0]  # + yaw slides features right
    assert marks["right_eye"][1] > marks["left_eye"][1]  # + roll turns clockwise on screen


def test_glasses_change_only_the_eye_region():
    for index in range(4):
        plain = _attrs(index, glasses=False)
        glasses = replace(plain, glasses=True)
        a, b = render_face(plain, 128), render_face(glasses, 128)
        changed = _changed(a, b)
        boxes = feature_boxes(glasses, 128)
        assert not _outside(changed, boxes["eyes"], margin_px=2).any()
        # both rims are drawn, equally
        for eye in ("left_eye", "right_eye"):
            x0, y0, x1, y1 = boxes[eye]
            assert changed[y0:y1, x0:x1].mean() > 0.1, (index, eye)
        left, right = (changed[boxes[e][1]:boxes[e][3], boxes[e][0]:boxes[e][2]].mean()
                       for e in ("left_eye", "right_eye"))
        assert abs(left - right) < 0.1


def test_moustache_changes_only_the_mouth_region():
    for index in range(3):
        plain = _attrs(index, facial_hair="none", presentation="masculine")
        moustache = replace(plain, facial_hair="moustache")
        changed = _changed(render_face(plain, 128), render_face(moustache, 128))
        assert changed.mean() > 0.005
        assert not _outside(changed, feature_boxes(moustache, 128)["mouth"], margin_px=2).any()


def test_cheeks_are_shaded_skin_tone(population):
    size = 256
    checked = 0
    for attrs in population[:60]:
        if attrs.facial_hair != "none":
            continue
        image = render_face(attrs, size)
        skin = np.asarray(attrs.skin_tone, dtype=np.float64)
        for cheek in ("left_cheek", "right_cheek"):
            ratio = _patch_mean(image, landmarks(attrs, size)[cheek], 3) / np.maximum(skin, 1)
            # shading is multiplicative grey light: same factor on every channel, in a sane range
            assert 0.62 <= ratio.min() and ratio.max() <= 1.12, (attrs, cheek, ratio)
            assert ratio.max() - ratio.min() < 0.08 + 10 / skin.min(), (attrs, cheek, ratio)
        checked += 1
    assert checked > 20


@pytest.mark.parametrize("big, small", [(256, 64), (512, 128), (256, 100)])
def test_same_face_at_every_resolution(big, small):
    diffs = []
    for index in range(4):
        attrs = _attrs(index)
        reduced = cv2.resize(render_face(attrs, big), (small, small), interpolation=cv2.INTER_AREA)
        direct = render_face(attrs, small)
        diffs.append(np.abs(reduced.astype(np.int16) - direct.astype(np.int16)).mean())
    assert max(diffs) < 6, diffs  # the seeded noise alone gives about 2


def test_features_land_inside_the_image_like_an_aligned_crop(population):
    for attrs in population[:50]:
        marks = landmarks(attrs, 64)
        assert 0.25 * 64 < marks["left_eye"][0] < marks["right_eye"][0] < 0.75 * 64
        assert 0.35 * 64 < marks["left_eye"][1] < 0.55 * 64
        assert marks["left_eye"][1] < marks["nose_tip"][1] < marks["mouth"][1] < marks["chin"][1] < 64


def test_unknown_categorical_value_is_named():
    with pytest.raises(ValueError, match="mouth"):
        render_face(_attrs(mouth="frown"), 32)

"""Mask generators: shapes, seeding, ratio bins, the closed-form ratios of the fixed patterns."""

import math

import cv2
import numpy as np
import pytest

from inpaintflow.conventions import hole_ratio, read_mask, write_mask
from inpaintflow.tasks.masks.generators import (FAMILIES, FF_ANGLE_RANGE_RAD, FF_MEAN_ANGLE_RAD, MaskRatioError, Stroke,
                                                draw_strokes, format_ratio_bin, free_form_strokes, generate_mask,
                                                in_bin, make_mask, mask_rng, parse_ratio_bin)

SIZES = (64, 256)
SEED = 1234
RANDOM_FAMILIES = [name for name in FAMILIES
                   if name not in ("left-half", "center-square", "three-squares")]


def closed_form_ratio(family: str, n: int) -> float:
    """The paper patterns' ratios written out by hand, for sizes divisible by 16."""
    w = round(n / 8)
    big = round(n * math.sqrt(0.5))
    return {
        "random-square": 0.25,
        "big-random-square": big * big / (n * n),
        "stripes": (2 * w * n - w * w) / (n * n),
        "left-half": 0.5,
        "center-square": 0.25,
        "random-pixels": round(0.7 * n * n) / (n * n),
        "three-squares": 64 / 256,  # 4x5 + 5x4 + 4x6 sixteenth-cells of 16x16
    }[family]


# ---------------------------------------------------------------------------------------------
# every family


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_mask_is_uint8_square_of_zeros_and_ones(family, size):
    for index in range(3):
        mask, ratio = make_mask(family, size, SEED, index)
        assert mask.shape == (size, size)
        assert mask.dtype == np.uint8
        assert set(np.unique(mask).tolist()) <= {0, 1}
        assert 0.0 < ratio < 1.0
        assert ratio == hole_ratio(mask)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_same_seed_and_index_give_the_same_mask(family):
    first, _ = make_mask(family, 64, SEED, 7)
    again, _ = make_mask(family, 64, SEED, 7)
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("family", RANDOM_FAMILIES)
def test_other_index_or_seed_gives_another_mask(family):
    first, _ = make_mask(family, 64, SEED, 7)
    assert not np.array_equal(first, make_mask(family, 64, SEED, 8)[0])
    assert not np.array_equal(first, make_mask(family, 64, SEED + 1, 7)[0])


def test_mask_i_does_not_depend_on_the_masks_drawn_before_it():
    alone = generate_mask("free-form", 64, mask_rng(SEED, 5), (0.1, 0.2))
    for index in range(5):
        make_mask("free-form", 64, SEED, index, (0.1, 0.2))
    np.testing.assert_array_equal(alone, make_mask("free-form", 64, SEED, 5, (0.1, 0.2))[0])


def test_fixed_ratio_flags():
    fixed = {name for name, family in FAMILIES.items() if family.fixed_ratio}
    assert fixed == {"random-square", "big-random-square", "stripes", "left-half",
                     "center-square", "random-pixels", "three-squares"}


# ---------------------------------------------------------------------------------------------
# ratio bins


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("family, bin", [
    ("free-form", (0.1, 0.2)),
    ("free-form", (0.3, 0.4)),
    ("regionwise-contiguous", (0.2, 0.3)),
    ("regionwise-contiguous", (0.4, 0.5)),
    ("regionwise-contiguous", (0.01, 0.6)),
    ("regionwise-discontiguous", (0.0, 0.1)),
    ("regionwise-discontiguous", (0.2, 0.3)),
    ("regionwise-discontiguous", (0.01, 0.6)),
    ("random-pixels", (0.6, 0.8)),
])
def test_every_mask_lies_in_the_requested_bin(family, bin, size):
    ratios = [make_mask(family, size, SEED, index, bin)[1] for index in range(20)]
    assert all(in_bin(r, bin) for r in ratios), (family, bin, ratios)


def test_free_form_reaches_the_40_50_bin_of_paper_004():
    ratios = [make_mask("free-form", 256, SEED, index, (0.4, 0.5))[1] for index in range(5)]
    assert all(0.4 <= r < 0.5 for r in ratios)


def test_grown_masks_spread_over_the_bin():
    ratios = [make_mask("regionwise-contiguous", 64, SEED, index, (0.01, 0.6))[1]
              for index in range(40)]
    assert min(ratios) < 0.2 and max(ratios) > 0.4


@pytest.mark.parametrize("family, bin, max_tries", [
    ("center-square", (0.5, 0.6), 1000),
    ("three-squares", (0.0, 0.2), 1000),
    ("free-form", (0.95, 1.0), 20),
    ("regionwise-discontiguous", (0.20001, 0.20002), 20),  # no k/4096 lies inside
])
def test_unreachable_bin_raises_naming_family_and_bin(family, bin, max_tries):
    with pytest.raises(MaskRatioError) as error:
        generate_mask(family, 64, mask_rng(SEED, 0), bin, max_tries=max_tries)
    assert family in str(error.value)
    assert format_ratio_bin(bin) in str(error.value)
    assert "64" in str(error.value)


def test_fixed_pattern_outside_bin_fails_without_retrying():
    rng = mask_rng(SEED, 0)
    with pytest.raises(MaskRatioError, match="fixed at 0.25"):
        generate_mask("random-square", 64, rng, (0.5, 0.6))
    assert rng.bit_generator.state == _rng_after_one_random_square()


def _rng_after_one_random_square():
    rng = mask_rng(SEED, 0)
    FAMILIES["random-square"].draw(64, rng)
    return rng.bit_generator.state


def test_fixed_pattern_inside_bin_is_returned():
    mask = generate_mask("center-square", 64, mask_rng(SEED, 0), (0.2, 0.3))
    assert hole_ratio(mask) == 0.25


@pytest.mark.parametrize("text, expected", [("0.2-0.3", (0.2, 0.3)), ("0-0.1", (0.0, 0.1)),
                                            (" 0.01 - 0.6 ", (0.01, 0.6)), ("0.5-1", (0.5, 1.0))])
def test_parse_ratio_bin(text, expected):
    assert parse_ratio_bin(text) == expected


@pytest.mark.parametrize("text", ["0.3-0.2", "0.2-0.2", "0.2-1.5", "a-b", "0.2", "-0.1-0.2",
                                  "0.1-0.2-0.3", ""])
def test_parse_ratio_bin_errors_name_the_text(text):
    with pytest.raises(ValueError) as error:
        parse_ratio_bin(text)
    assert repr(text) in str(error.value)


@pytest.mark.parametrize("bin", [(0.2, 0.3), (0.01, 0.1), (0.0, 1.0), (0.123456789, 0.5)])
def test_format_ratio_bin_round_trips(bin):
    assert parse_ratio_bin(format_ratio_bin(bin)) == bin
    assert format_ratio_bin((0.2, 0.3)) == "0.2-0.3"


def test_format_labels_a_fixed_ratio_and_refuses_bad_bins():
    assert format_ratio_bin((0.25, 0.25)) == "0.25-0.25"
    for bad in [(0.3, 0.2), (-0.1, 0.2), (0.5, 1.5)]:
        with pytest.raises(ValueError, match="ratio bin"):
            format_ratio_bin(bad)


def test_in_bin_is_half_open_except_at_one():
    assert in_bin(0.2, (0.2, 0.3))
    assert not in_bin(0.3, (0.2, 0.3))
    assert in_bin(1.0, (0.9, 1.0))
    assert not in_bin(0.1999, (0.2, 0.3))


def test_unknown_family_lists_the_known_ones():
    with pytest.raises(ValueError, match="free-form.*three-squares"):
        generate_mask("squiggles", 64, mask_rng(0, 0))


@pytest.mark.parametrize("size", [4, 7, 0, 64.0])
def test_bad_size_is_refused(size):
    with pytest.raises(ValueError, match="size"):
        generate_mask("center-square", size, mask_rng(0, 0))


# ---------------------------------------------------------------------------------------------
# the paper patterns' exact ratios


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("family", [name for name, f in FAMILIES.items() if f.fixed_ratio])
def test_fixed_patterns_have_their_closed_form_ratio(family, size):
    for index in range(5):
        _, ratio = make_mask(family, size, SEED, index)
        assert ratio == pytest.approx(closed_form_ratio(family, size), abs=1e-12)


def test_patterns_at_64_px():
    assert closed_form_ratio("stripes", 64) == (2 * 8 * 64 - 64) / 4096
    assert closed_form_ratio("big-random-square", 64) == 45 * 45 / 4096


def test_left_half_and_center_square_are_where_the_paper_puts_them():
    left, _ = make_mask("left-half", 64, SEED, 0)
    assert left[:, :32].all() and not left[:, 32:].any()
    center, _ = make_mask("center-square", 64, SEED, 0)
    assert center[16:48, 16:48].all() and center.sum() == 32 * 32


def test_stripes_are_one_vertical_and_one_horizontal():
    mask, _ = make_mask("stripes", 64, SEED, 3)
    full_columns = np.flatnonzero(mask.all(axis=0))
    full_rows = np.flatnonzero(mask.all(axis=1))
    assert len(full_columns) == 8 and np.ptp(full_columns) == 7
    assert len(full_rows) == 8 and np.ptp(full_rows) == 7


def test_three_squares_are_three_separate_rectangles():
    mask, _ = make_mask("three-squares", 256, SEED, 0)
    n_labels, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
    boxes = stats[1:]
    assert n_labels - 1 == 3
    # each component fills its bounding box: a rectangle, sides between size/4 and 3 size/8
    assert all(b[cv2.CC_STAT_AREA] == b[cv2.CC_STAT_WIDTH] * b[cv2.CC_STAT_HEIGHT] for b in boxes)
    assert all(64 <= side <= 96 for b in boxes
               for side in (b[cv2.CC_STAT_WIDTH], b[cv2.CC_STAT_HEIGHT]))


# ---------------------------------------------------------------------------------------------
# free-form parameters (DeepFill v2)


@pytest.mark.parametrize("size", SIZES)
def test_free_form_strokes_follow_deepfill_parameters(size):
    rng = np.random.default_rng(SEED)
    counts = set()
    for _ in range(300):
        strokes = free_form_strokes(size, rng)
        counts.add(len(strokes))
        for stroke in strokes:
            assert 5 <= len(stroke.vertices) <= 12  # start point + 4-11 vertices
            assert round(12 * size / 256) <= stroke.width <= round(39 * size / 256)
            assert all(0 <= v < size for vertex in stroke.vertices for v in vertex)
    assert counts == {1, 2, 3}


def test_free_form_turns_alternate_around_the_mean_angle():
    # a large canvas keeps most segments long and unclipped, so their direction is measurable
    size = 2048
    rng = np.random.default_rng(SEED)
    checked = 0
    for _ in range(50):
        for stroke in free_form_strokes(size, rng):
            for i, ((x0, y0), (x1, y1)) in enumerate(zip(stroke.vertices, stroke.vertices[1:])):
                if math.hypot(x1 - x0, y1 - y0) < 100 or 0 in (x1, y1) or size - 1 in (x1, y1):
                    continue  # short or clipped: truncation or the border bends its direction
                angle_rad = math.atan2(y1 - y0, x1 - x0) % (2 * math.pi)
                if i % 2 == 0:
                    angle_rad = 2 * math.pi - angle_rad
                assert abs(angle_rad - FF_MEAN_ANGLE_RAD) <= FF_ANGLE_RANGE_RAD + 0.02
                checked += 1
    assert checked > 100


def test_free_form_vertices_get_disks():
    mask = draw_strokes(64, [Stroke(((32, 32),), width=10)])
    assert mask[32, 27:38].all() and mask[27:38, 32].all() and not mask[32, 40]


# ---------------------------------------------------------------------------------------------
# on disk


@pytest.mark.parametrize("family", ["free-form", "regionwise-discontiguous", "left-half"])
def test_write_read_round_trip_keeps_polarity(family, tmp_path):
    mask, _ = make_mask(family, 64, SEED, 0)
    path = write_mask(tmp_path / "mask.png", mask)
    np.testing.assert_array_equal(read_mask(path), mask)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    hole = tuple(np.argwhere(mask == 1)[0])
    known = tuple(np.argwhere(mask == 0)[0])
    assert raw[hole] == 255 and raw[known] == 0


def test_training_masks_are_an_endless_seeded_stream_inside_the_bin():
    from itertools import islice

    from inpaintflow.tasks.masks.generators import training_masks

    def take(seed):
        stream = training_masks(["free-form", "regionwise-contiguous"], 64, np.random.default_rng(seed), (0.1, 0.3))
        return list(islice(stream, 12))

    first, again, other = take(5), take(5), take(6)
    assert all((a == b).all() for a, b in zip(first, again))
    assert any((a != b).any() for a, b in zip(first, other))
    assert all(0.1 <= m.mean() < 0.3 for m in first)
    with pytest.raises(ValueError, match="unknown mask family"):
        next(training_masks(["nope"], 64, np.random.default_rng(0)))

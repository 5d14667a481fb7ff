import cv2
import numpy as np
import pytest

from inpaintflow.conventions import (ConventionError, binarize, model_to_uint8, read_image, read_mask,
                                     to_known_is_one, uint8_to_model, write_image, write_mask)


def test_mask_file_is_255_for_hole_and_reads_back_as_one(tmp_path):
    mask = np.zeros((8, 8), np.uint8)
    mask[2:4, 3:6] = 1
    path = write_mask(tmp_path / "m.png", mask)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw.ndim == 2 and raw.dtype == np.uint8
    assert raw[2, 3] == 255 and raw[0, 0] == 0
    np.testing.assert_array_equal(read_mask(path), mask)


def test_read_mask_rejects_grey_values_naming_the_file(tmp_path):
    path = tmp_path / "soft.png"
    cv2.imwrite(str(path), np.full((4, 4), 128, np.uint8))
    with pytest.raises(ConventionError, match="soft.png.*only 0.*255"):
        read_mask(path)


def test_read_mask_rejects_colour_file(tmp_path):
    path = tmp_path / "rgb.png"
    cv2.imwrite(str(path), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ConventionError, match="rgb.png.*single-channel"):
        read_mask(path)


def test_image_files_are_rgb_in_rgb_order(tmp_path):
    image = np.zeros((4, 5, 3), np.uint8)
    image[..., 0] = 200  # red
    path = write_image(tmp_path / "red.png", image)
    bgr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert tuple(bgr[0, 0]) == (0, 0, 200)  # cv2 sees BGR on disk: the file really is red
    np.testing.assert_array_equal(read_image(path), image)


def test_quickdraw_polarity_black_is_hole():
    gray = np.array([[0, 255], [10, 250]], np.uint8)
    np.testing.assert_array_equal(binarize(gray, hole_is_dark=True), [[1, 0], [1, 0]])
    np.testing.assert_array_equal(binarize(gray, hole_is_dark=False), [[0, 1], [0, 1]])


def test_paper_polarity_converts_at_the_edge():
    hole = np.array([[1, 0]], np.uint8)
    np.testing.assert_array_equal(to_known_is_one(hole), [[0, 1]])


def test_model_range_round_trip_is_exact_and_rounds():
    x = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(model_to_uint8(uint8_to_model(x.astype(np.float64))), x)
    # 0.6 of a level rounds up, 0.4 rounds down (never truncates)
    level = lambda v: v / 127.5 - 1.0  # noqa: E731
    assert model_to_uint8(np.array([level(10.6), level(10.4)])).tolist() == [11, 10]
    assert model_to_uint8(np.array([-1.5, 1.5])).tolist() == [0, 255]


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    from inpaintflow.conventions import atomic_path

    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []

"""Importers of published mask sets, checked on the real NVIDIA sample and on synthetic files."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from inpaintflow.conventions import ConventionError
from inpaintflow.tasks.masks.generators import in_bin, parse_ratio_bin
from inpaintflow.tasks.masks.importers import (import_nvidia_mask, import_quickdraw_mask, iter_mask_files,
                                               nvidia_bin_from_index)

SHARED = Path(__file__).resolve().parents[2] / "shared"  # ../shared beside the repository
NVIDIA_SAMPLE = SHARED / "data" / "nvidia-irregular-test-sample"


@pytest.fixture(scope="module")
def nvidia_files() -> list[Path]:
    if not NVIDIA_SAMPLE.is_dir():
        pytest.skip(f"NVIDIA mask sample not found at {NVIDIA_SAMPLE}")
    files = iter_mask_files(NVIDIA_SAMPLE)
    assert len(files) == 120
    return files


def on_border(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


# ---------------------------------------------------------------------------------------------
# NVIDIA irregular masks


@pytest.mark.parametrize("index, expected", [
    (0, ((0.01, 0.1), False)),
    (999, ((0.01, 0.1), False)),
    (1000, ((0.01, 0.1), True)),
    (1999, ((0.01, 0.1), True)),
    (2000, ((0.1, 0.2), False)),
    (5500, ((0.2, 0.3), True)),
    (10000, ((0.5, 0.6), False)),
    (11999, ((0.5, 0.6), True)),
])
def test_nvidia_bin_from_index(index, expected):
    assert nvidia_bin_from_index(index) == expected


@pytest.mark.parametrize("index", [-1, 12000, 20000])
def test_nvidia_index_out_of_range(index):
    with pytest.raises(ValueError, match=str(index)):
        nvidia_bin_from_index(index)


def test_nvidia_sample_ratios_lie_in_their_published_bins(nvidia_files):
    # measured: all 120 lie strictly inside at 512 px, so no tolerance is needed
    for path in nvidia_files:
        imported = import_nvidia_mask(path, 512)
        assert imported.mask.shape == (512, 512) and imported.mask.dtype == np.uint8
        assert in_bin(imported.ratio, parse_ratio_bin(imported.bin)), (path.name, imported.ratio)


def test_nvidia_border_flag_matches_the_files(nvidia_files):
    # the first 1000 of each group keep a 50 px margin (Liu et al.'s border constraint)
    for path in nvidia_files:
        imported = import_nvidia_mask(path, 512)
        assert imported.touches_border == on_border(imported.mask), path.name
        if not imported.touches_border:
            rows, cols = np.nonzero(imported.mask)
            assert min(rows.min(), cols.min(), 511 - rows.max(), 511 - cols.max()) >= 50


def test_nvidia_ratios_stay_close_at_256(nvidia_files):
    for path in nvidia_files:
        full = import_nvidia_mask(path, 512)
        small = import_nvidia_mask(path, 256)
        assert small.mask.shape == (256, 256)
        assert set(np.unique(small.mask).tolist()) <= {0, 1}
        # INTER_AREA + threshold at 128 keeps half-covered edge pixels: measured drift <= 0.013
        assert abs(small.ratio - full.ratio) <= 0.02, path.name
        assert small.bin == full.bin and small.touches_border == full.touches_border


def test_nvidia_name_must_be_an_index(tmp_path):
    path = tmp_path / "mask_a.png"
    cv2.imwrite(str(path), np.zeros((512, 512), np.uint8))
    with pytest.raises(ConventionError, match="mask_a.png"):
        import_nvidia_mask(path, 256)


# ---------------------------------------------------------------------------------------------
# Quick Draw masks (holes black) and bad files


def quickdraw_file(path: Path) -> tuple[Path, np.ndarray]:
    """A 512x512 mask with black strokes on white, as Quick Draw ships them; returns the gray."""
    gray = np.full((512, 512), 255, np.uint8)
    cv2.line(gray, (40, 60), (470, 300), 0, thickness=37)
    cv2.circle(gray, (150, 400), 61, 0, thickness=-1)
    cv2.rectangle(gray, (301, 11), (399, 97), 0, thickness=-1)
    cv2.imwrite(str(path), gray)
    return path, gray


def test_quickdraw_black_becomes_hole(tmp_path):
    path, gray = quickdraw_file(tmp_path / "qd.png")
    imported = import_quickdraw_mask(path, 512)
    np.testing.assert_array_equal(imported.mask, (gray == 0).astype(np.uint8))
    assert imported.ratio == pytest.approx(np.mean(gray == 0), abs=1e-12)
    assert imported.bin == "" and imported.touches_border is None


@pytest.mark.parametrize("size", [256, 64])
def test_quickdraw_resize_is_inter_area_then_threshold(tmp_path, size):
    path, gray = quickdraw_file(tmp_path / "qd.png")
    imported = import_quickdraw_mask(path, size)
    expected = cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA) < 128
    np.testing.assert_array_equal(imported.mask, expected.astype(np.uint8))
    assert imported.ratio == pytest.approx(np.mean(gray == 0), abs=0.01)


def test_rgb_saved_mask_is_read_as_gray(tmp_path):
    path, gray = quickdraw_file(tmp_path / "gray.png")
    rgb_path = tmp_path / "rgb.png"
    cv2.imwrite(str(rgb_path), cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    np.testing.assert_array_equal(import_quickdraw_mask(rgb_path, 256).mask,
                                  import_quickdraw_mask(path, 256).mask)


@pytest.mark.parametrize("importer", [import_quickdraw_mask, import_nvidia_mask])
def test_non_image_raises_convention_error_naming_the_file(tmp_path, importer):
    path = tmp_path / "00042.png"
    path.write_text("not a png")
    with pytest.raises(ConventionError, match="00042.png"):
        importer(path, 256)


def test_non_square_mask_is_refused(tmp_path):
    path = tmp_path / "wide.png"
    cv2.imwrite(str(path), np.zeros((100, 200), np.uint8))
    with pytest.raises(ConventionError, match="wide.png"):
        import_quickdraw_mask(path, 64)


def test_iter_mask_files_is_sorted_recursive_and_filtered(tmp_path):
    for name in ["b/2.png", "a.jpg", "b/1.PNG", "c/d/0.png", "notes.txt", "x.jpeg"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_mask_files(tmp_path)]
    assert found == ["a.jpg", "b/1.PNG", "b/2.png", "c/d/0.png", "x.jpeg"]

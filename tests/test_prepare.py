import csv
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from inpaintflow.tasks.data.datasets import DATASETS, get_spec, split_by_folder, split_last
from inpaintflow.tasks.data.prepare import (BadImageError, EmptySourceError, center_crop, crop_image, decode_to_rgb8,
                                            folder_items, prepare_items, read_manifest, resize_image, write_manifest)


def _png(array, mode=None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format="PNG") if mode else Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (12, 10, 3), dtype=np.uint8)


def test_rgb_png_decodes_unchanged():
    np.testing.assert_array_equal(decode_to_rgb8(_png(RGB), "x.png"), RGB)


def test_grayscale_becomes_three_equal_channels():
    gray = RGB[..., 0]
    out = decode_to_rgb8(_png(gray), "g.png")
    assert out.shape == (12, 10, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_rgba_drops_alpha():
    rgba = np.dstack([RGB, np.full(RGB.shape[:2], 7, np.uint8)])
    np.testing.assert_array_equal(decode_to_rgb8(_png(rgba), "a.png"), RGB)


def test_palette_is_expanded():
    im = Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    expected = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(decode_to_rgb8(buf.getvalue(), "p.png"), expected)


def test_sixteen_bit_rgb_and_gray_scale_with_rounding():
    deep = (RGB.astype(np.uint16) * 257 + 100).astype(np.uint16)  # +100 so truncation != rounding
    ok, buf = cv2.imencode(".png", cv2.cvtColor(deep, cv2.COLOR_RGB2BGR))
    expected = np.rint(deep / 257.0).astype(np.uint8)
    np.testing.assert_array_equal(decode_to_rgb8(buf.tobytes(), "d.png"), expected)
    ok, buf = cv2.imencode(".png", deep[..., 0])
    out = decode_to_rgb8(buf.tobytes(), "dg.png")
    np.testing.assert_array_equal(out[..., 1], expected[..., 0])


@pytest.mark.parametrize("data, what", [
    (b"", "empty"),
    (b"this is a text file, not a picture", "not a readable image"),
])
def test_non_images_raise_naming_the_file(data, what):
    with pytest.raises(BadImageError, match=f"bad.png: {what}"):
        decode_to_rgb8(data, "bad.png")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files_are_rejected(fmt):
    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, format=fmt)
    data = buf.getvalue()
    with pytest.raises(BadImageError, match="cut.img"):
        decode_to_rgb8(data[: len(data) // 2], "cut.img")


def test_resize_equals_cv2_inter_area():
    big = RNG.integers(0, 256, (218, 178, 3), dtype=np.uint8)
    crop = center_crop(big, 108)
    np.testing.assert_array_equal(resize_image(crop, 64), cv2.resize(crop, (64, 64), interpolation=cv2.INTER_AREA))


def test_dcgan_crop_is_the_centred_108_box_of_aligned_celeba():
    img = np.arange(218 * 178).reshape(218, 178)[..., None].repeat(3, axis=2)
    out = crop_image(img, "dcgan-108")
    assert out.shape[:2] == (108, 108)
    assert out[0, 0, 0] == img[55, 35, 0]  # round((218-108)/2) = 55, round((178-108)/2) = 35


def test_upscaling_uses_linear_not_nearest():
    small = RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resize_image(small, 64), cv2.resize(small, (64, 64), interpolation=cv2.INTER_LINEAR))


def test_celeba_splits_follow_the_papers():
    names = [f"{i:06d}.jpg" for i in range(10_000)]
    spec = get_spec("celeba")
    yeh = spec.splits["yeh2017"](names)
    assert yeh.count("val") == 2000 and yeh.count("test") == 2000 and yeh.count("train") == 6000
    assert yeh[-1] == "test" and yeh[-2001] == "val"
    vitoria = spec.splits["vitoria2018"](names)
    assert vitoria.count("test") == 1000 and vitoria.count("train") == 9000
    assert get_spec("celeba-hq").splits["last3000"]([f"{i}" for i in range(30_000)]).count("test") == 3000


def test_split_rules_fail_or_report_clearly():
    with pytest.raises(ValueError, match="needs more than 3"):
        split_last(test=2, val=1)(["a", "b", "c"])
    assert split_by_folder({"val_256": "test"})(["val_256/a.jpg", "README.txt"]) == ["test", ""]


def test_registry_has_every_dataset_with_checksums_for_downloads():
    expected = {"synthetic-faces", "celeba", "celeba-hq", "svhn", "places2", "places365",
                "paris-streetview", "imagenet", "folder"}
    assert expected <= set(DATASETS)
    for spec in DATASETS.values():
        if spec.kind == "download":
            assert spec.files and all(f.checksum.hexdigest for f in spec.files), spec.name
        if spec.kind in ("manual", "local"):
            assert spec.obtain, spec.name


def _folder(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        (src / f"img{i}.png").write_bytes(_png(RNG.integers(0, 256, (40, 50, 3), dtype=np.uint8)))
    (src / "img2.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")  # corrupt
    (src / "notes.txt").write_text("not an image")
    return src


def test_corrupt_and_non_image_files_are_skipped_and_reported(tmp_path):
    src = _folder(tmp_path)
    out = tmp_path / "out"
    items, skipped = folder_items(src, get_spec("folder"), "all-train", None)
    rows = prepare_items(items, crop="center-square", size=16, seed=0, out_dir=out)
    manifest = write_manifest(out, rows, skipped, {"dataset": "folder"})
    ok = read_manifest(out)
    assert len(ok) == 4 and all(r["size"] == "16" for r in ok)
    with open(out / "report.csv") as f:
        report = {r["source"]: r["reason"] for r in csv.DictReader(f)}
    assert set(report) == {"img2.png", "notes.txt"}
    assert "not a readable image" in report["img2.png"]
    assert manifest.name == "manifest.csv"
    assert cv2.imread(str(out / ok[0]["file"])).shape == (16, 16, 3)


def test_empty_source_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptySourceError, match="empty: the source holds no files"):
        folder_items(tmp_path / "empty", get_spec("folder"), "all-train", None)


def test_all_files_bad_is_an_error_not_an_empty_dataset(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jpg").write_bytes(b"nope")
    items, skipped = folder_items(src, get_spec("folder"), "all-train", None)
    rows = prepare_items(items, crop="none", size=8, seed=0, out_dir=tmp_path / "out")
    with pytest.raises(EmptySourceError, match="no usable image"):
        write_manifest(tmp_path / "out", rows, skipped, {"dataset": "folder"})
    assert not (tmp_path / "out" / "manifest.csv").exists()


def test_count_caps_each_split_and_stale_files_are_removed(tmp_path):
    src = _folder(tmp_path)
    out = tmp_path / "out"
    items, skipped = folder_items(src, get_spec("folder"), "all-train", None)
    write_manifest(out, prepare_items(items, crop="none", size=8, seed=0, out_dir=out), skipped, {"dataset": "f"})
    items, skipped = folder_items(src, get_spec("folder"), "all-train", 2)
    assert len(items) == 2
    write_manifest(out, prepare_items(items, crop="none", size=8, seed=0, out_dir=out), skipped, {"dataset": "f"})
    assert sorted(p.name for p in (out / "train").iterdir()) == ["000000.png", "000001.png"]


def test_sixteen_bit_tiff_is_not_truncated():
    deep = (RGB.astype(np.uint16) * 257 + 200).astype(np.uint16)
    ok, buf = cv2.imencode(".tiff", cv2.cvtColor(deep, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(decode_to_rgb8(buf.tobytes(), "d.tiff"), np.rint(deep / 257.0).astype(np.uint8))

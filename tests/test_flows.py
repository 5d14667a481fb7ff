"""The data and mask flows end to end on tiny inputs, under Prefect's test harness."""

import hashlib
import io
import zipfile

import numpy as np
import pytest
from PIL import Image

import inpaintflow.tasks.data.prepare
import inpaintflow.tasks.masks.sets
from http_server import serve_directory
from inpaintflow.conventions import read_mask
from inpaintflow.flows.data import prepare_dataset
from inpaintflow.flows.masks import import_mask_set, make_mask_set
from inpaintflow.params import DatasetParams
from inpaintflow.tasks.data.download import ChecksumError
from inpaintflow.tasks.data.prepare import read_manifest

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _count_calls(monkeypatch, module, name, fail_when=None):
    calls = []
    real = getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(args)
        if fail_when and fail_when(*args, **kwargs):
            raise RuntimeError("simulated crash in the middle of a run")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


FACES = DatasetParams(dataset="synthetic-faces", size=32, count={"train": 30, "test": 6}, seed=3)


def test_second_run_completes_from_cache(tmp_path, monkeypatch):
    out = tmp_path / "faces"
    manifest = prepare_dataset(params=FACES, out_dir=out, shard_size=10)
    first = manifest.read_bytes()
    assert len(read_manifest(out)) == 36
    assert (out / "train" / "000000.json").is_file()  # attributes beside each image

    calls = _count_calls(monkeypatch, inpaintflow.tasks.data.prepare, "prepare_items")
    manifest = prepare_dataset(params=FACES, out_dir=out, shard_size=10)
    assert calls == []  # every shard came from the cache
    assert manifest.read_bytes() == first


def test_interrupted_run_resumes_without_redoing_finished_shards(tmp_path, monkeypatch):
    out = tmp_path / "faces"
    params = FACES.model_copy(update={"seed": 4})
    victim = ("train", "000015")
    crash = lambda items, **kw: victim in {(i.split, i.id) for i in items}  # noqa: E731
    _count_calls(monkeypatch, inpaintflow.tasks.data.prepare, "prepare_items", fail_when=crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        prepare_dataset(params=params, out_dir=out, shard_size=10)
    assert not (out / "manifest.csv").exists()  # an unfinished dataset has no manifest

    monkeypatch.undo()
    calls = _count_calls(monkeypatch, inpaintflow.tasks.data.prepare, "prepare_items")
    prepare_dataset(params=params, out_dir=out, shard_size=10)
    assert len(calls) == 1  # only the shard that crashed ran again
    assert victim in {(i.split, i.id) for i in calls[0][0]}
    assert len(read_manifest(out)) == 36


def test_deleted_outputs_are_rebuilt_despite_the_cache(tmp_path):
    out = tmp_path / "faces"
    params = FACES.model_copy(update={"seed": 5})
    prepare_dataset(params=params, out_dir=out, shard_size=10)
    victim = out / "train" / "000003.png"
    original = victim.read_bytes()
    victim.unlink()  # what DVC does to a stage's outputs before it reruns the stage
    prepare_dataset(params=params, out_dir=out, shard_size=10)
    assert victim.read_bytes() == original


def test_mask_set_is_deterministic_cached_and_in_bin(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    make_mask_set(family="free-form", size=64, count=5, bins=["0.1-0.2", "0.3-0.4"], seed=9, out_dir=a, shard_size=4)
    rows = list(inpaintflow.tasks.data.prepare.read_manifest.__globals__["csv"].DictReader(open(a / "manifest.csv")))
    assert len(rows) == 10 and {r["bin"] for r in rows} == {"0.1-0.2", "0.3-0.4"}
    for r in rows:
        lo, hi = map(float, r["bin"].split("-"))
        ratio = read_mask(a / r["file"]).mean()
        assert lo <= ratio < hi and abs(ratio - float(r["ratio"])) < 1e-6
    calls = _count_calls(monkeypatch, inpaintflow.tasks.masks.sets, "make_masks")
    make_mask_set(family="free-form", size=64, count=5, bins=["0.1-0.2", "0.3-0.4"], seed=9, out_dir=a, shard_size=4)
    assert calls == []
    monkeypatch.undo()
    make_mask_set(family="free-form", size=64, count=5, bins=["0.1-0.2", "0.3-0.4"], seed=9, out_dir=b, shard_size=7)
    for name in ["manifest.csv", "00000.png", "00009.png"]:  # other sharding, same bytes
        assert (a / name).read_bytes() == (b / name).read_bytes()


def _zip_of_images(path, n=6):
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(n):
            buf = io.BytesIO()
            Image.fromarray(np.full((20, 30, 3), 10 * i, np.uint8)).save(buf, format="PNG")
            zf.writestr(f"photos/{i:02d}.png", buf.getvalue())
        zf.writestr("photos/broken.png", b"garbage")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_folder_dataset_from_an_http_archive(tmp_path, monkeypatch):
    monkeypatch.setenv("INPAINTFLOW_DOWNLOAD_DIR", str(tmp_path / "downloads"))
    root = tmp_path / "www"
    root.mkdir()
    digest = _zip_of_images(root / "photos.zip")
    with serve_directory(root) as server:
        url = f"http://127.0.0.1:{server.port}/photos.zip"
        params = DatasetParams(dataset="folder", size=16, source=url, sha256=digest, split="all-test")
        prepare_dataset(params=params, out_dir=tmp_path / "out")
        rows = read_manifest(tmp_path / "out")
        assert len(rows) == 6 and {r["split"] for r in rows} == {"test"}
        assert "photos/broken.png" in (tmp_path / "out" / "report.csv").read_text()

        bad = params.model_copy(update={"sha256": "0" * 64, "source": url + "?v=2"})
        (tmp_path / "downloads" / "photos.zip").unlink()
        with pytest.raises(ChecksumError, match="photos.zip"):
            prepare_dataset(params=bad, out_dir=tmp_path / "out2")
        assert not (tmp_path / "out2" / "manifest.csv").exists()
        assert not (tmp_path / "downloads" / "photos.zip").exists()


def test_nvidia_import_flow_on_the_real_sample(tmp_path, shared_dir):
    source = shared_dir / "data" / "nvidia-irregular-test-sample"
    manifest = import_mask_set(family="nvidia", source=str(source), size=128, out_dir=tmp_path / "nv",
                               bins=["0.1-0.2", "0.5-0.6"], count=5)
    text = manifest.read_text().splitlines()
    assert len(text) == 1 + 10
    assert (tmp_path / "nv" / "report.csv").is_file()


def test_a_task_shipped_by_value_to_another_process_keeps_its_cache_key(tmp_path):
    """A Dask worker gets the task pickled by value, its code with no source file behind it; the
    cache key computed there must still cover the task's source, and equal the one computed here."""
    import subprocess
    import sys
    from types import SimpleNamespace

    import cloudpickle

    from inpaintflow.flows.data import prepare_shard

    arguments = {"items": [], "crop": "center", "size": 8, "seed": 1, "out_dir": tmp_path}
    here = prepare_shard.cache_key_fn(SimpleNamespace(task=prepare_shard), arguments)
    shipped = tmp_path / "shipped.pkl"
    shipped.write_bytes(cloudpickle.dumps((prepare_shard, arguments)))
    unpickle_and_key = ("import pickle, sys; from types import SimpleNamespace\n"
                        "task, arguments = pickle.load(open(sys.argv[1], 'rb'))\n"
                        "print(task.cache_key_fn(SimpleNamespace(task=task), arguments))")
    there = subprocess.run([sys.executable, "-c", unpickle_and_key, str(shipped)],
                           check=True, capture_output=True, text=True, cwd=tmp_path)
    assert there.stdout.strip() == here

"""Data-parallel flows on a Dask cluster (``INPAINTFLOW_DASK_ADDRESS``): the same bytes as the
runs in this process, and the tasks demonstrably ran on the cluster's worker processes."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from inpaintflow.conventions import read_image, read_mask, write_image, write_mask
from inpaintflow.params import DatasetParams
from inpaintflow.runtime import DASK_ADDRESS_ENV, task_runner, with_task_runner

HAVE_DASK = all(importlib.util.find_spec(m) is not None for m in ("distributed", "prefect_dask"))
needs_dask = pytest.mark.skipif(not HAVE_DASK, reason="distributed/prefect-dask not installed: "
                                                      "pip install -e '.[dask]'")

FACES = DatasetParams(dataset="synthetic-faces", size=32, count={"train": 8, "test": 6}, seed=11)
MASKS = dict(family="random-square", size=32, count=6, bins=None, seed=5)


def test_without_an_address_the_flows_keep_the_default_thread_runner(monkeypatch):
    from prefect.task_runners import ThreadPoolTaskRunner

    monkeypatch.delenv(DASK_ADDRESS_ENV, raising=False)
    assert type(task_runner()) is ThreadPoolTaskRunner
    monkeypatch.setenv(DASK_ADDRESS_ENV, "  ")
    assert type(task_runner()) is ThreadPoolTaskRunner


@needs_dask
def test_the_address_is_read_when_the_flow_is_called(monkeypatch):
    from prefect_dask import DaskTaskRunner

    from inpaintflow.flows.masks import make_mask_set

    monkeypatch.setenv(DASK_ADDRESS_ENV, "tcp://127.0.0.1:8786")
    runner = with_task_runner(make_mask_set).task_runner
    assert isinstance(runner, DaskTaskRunner) and runner.address == "tcp://127.0.0.1:8786"
    assert not isinstance(make_mask_set.task_runner, DaskTaskRunner)  # the module's flow is untouched


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _experiment(dataset: Path, masks: Path, out: Path) -> Path:
    """An inpaint run's folder as tasks/inpaint/batch.py lays it out: test image i with mask i, two bins,
    a perturbed "model" output and a mean-fill baseline."""
    rows = list(csv.DictReader(open(masks / "manifest.csv")))
    for sub in ("target", "masks", "output", "baselines/mean-fill"):
        (out / sub).mkdir(parents=True)
    pairs = []
    for i, row in enumerate(rows):
        name = f"{i:06d}-{Path(row['file']).stem}.png"
        target, hole = read_image(dataset / "test" / f"{i:06d}.png"), read_mask(masks / row["file"])
        noise = np.random.default_rng(i).integers(-20, 21, target.shape)
        write_image(out / "target" / name, target)
        write_mask(out / "masks" / name, hole)
        write_image(out / "output" / name, np.clip(target + noise * hole[..., None], 0, 255).astype(np.uint8))
        fill = np.where(hole[..., None] > 0, target[hole == 0].mean(axis=0).round(), target).astype(np.uint8)
        write_image(out / "baselines" / "mean-fill" / name, fill)
        pairs.append({"file": name, "bin": "small" if i % 2 else "large"})
    with open(out / "masks" / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["file", "bin"])
        writer.writeheader()
        writer.writerows(pairs)
    record = {"method": "feed-forward", "pairs": len(pairs), "results": [
        {"method": "Model", "stage": None, "dir": "output"},
        {"method": "Mean fill", "stage": None, "dir": "baselines/mean-fill"}]}
    (out / "inpaint.json").write_text(json.dumps(record))
    return out


def _run_all(root: Path, shard: int) -> dict[str, Path]:
    """The data, masks and evaluate flows through ``with_task_runner``, as the CLI calls them."""
    from inpaintflow.flows.data import prepare_dataset
    from inpaintflow.flows.evaluate import evaluate_experiment_flow
    from inpaintflow.flows.masks import make_mask_set

    with_task_runner(prepare_dataset)(params=FACES, out_dir=root / "faces", shard_size=shard)
    with_task_runner(make_mask_set)(**MASKS, out_dir=root / "masks", shard_size=shard)
    experiment = _experiment(root / "faces", root / "masks", root / "experiment")
    with_task_runner(evaluate_experiment_flow)(experiment=experiment, out=root / "scores",
                                               metrics=root / "metrics.json", batch_size=2, chunk_size=shard)
    return {"faces": root / "faces", "masks": root / "masks", "scores": root / "scores"}


@pytest.mark.slow
@needs_dask
@pytest.mark.usefixtures("prefect_harness")
def test_flows_on_a_dask_cluster_give_the_same_bytes(tmp_path, monkeypatch):
    from distributed import Client, LocalCluster, get_task_stream

    from inpaintflow.flows.data import prepare_dataset

    monkeypatch.delenv(DASK_ADDRESS_ENV, raising=False)
    here = _run_all(tmp_path / "here", shard=100)  # one task per step, in this process's threads

    # workers are separate processes started from this one: they inherit the Prefect home and
    # import the project from the same venv, as a real cluster's image must
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        monkeypatch.setenv(DASK_ADDRESS_ENV, cluster.scheduler_address)
        with get_task_stream(client) as stream:
            there = _run_all(tmp_path / "dask", shard=3)
        workers = set(client.scheduler_info()["workers"])

        # a rerun finds the workers' cache entries, and the one shard whose image was deleted
        # is recomputed on the cluster too
        victim = there["faces"] / "test" / "000002.png"
        original = victim.read_bytes()
        victim.unlink()
        with get_task_stream(client) as rerun:
            with_task_runner(prepare_dataset)(params=FACES, out_dir=there["faces"], shard_size=3)
        assert victim.read_bytes() == original

    for name in here:
        assert _files(here[name]) == _files(there[name]), f"{name}: bytes differ between runners"
    assert (tmp_path / "here" / "metrics.json").read_bytes() == (tmp_path / "dask" / "metrics.json").read_bytes()
    assert len(_files(here["faces"])) == 2 * 14 + 3 and len(_files(here["scores"])) == 2 * 3

    # every chunk ran on a worker process (a silent fallback to threads here leaves this empty):
    # 14 images in shards of 3, 6 masks, 2 result folders of 6 images in chunks of 3 + FID each
    ran = _ran_on_cluster(stream)
    assert _count(ran) == {"prepare_shard": 5, "make_mask_shard": 2, "score_chunk": 2 * 2, "fid_directory": 2}, ran
    assert {worker for _, worker in ran} <= workers and len(workers) == 2
    assert _count(_ran_on_cluster(rerun))["prepare_shard"] == 5 + 1  # 5 from the cache, 1 recomputed


def _ran_on_cluster(stream) -> list[tuple[str, str]]:
    """(task key, worker address) of every task the cluster ran while ``stream`` recorded."""
    return [(t["key"][0] if isinstance(t["key"], tuple) else t["key"], t["worker"]) for t in stream.data]


def _count(ran: list[tuple[str, str]]) -> dict[str, int]:
    return {prefix: sum(key.startswith(prefix) for key, _ in ran)
            for prefix in ("prepare_shard", "make_mask_shard", "score_chunk", "fid_directory")}


@needs_dask
@pytest.mark.usefixtures("prefect_harness")
def test_an_unreachable_scheduler_fails_the_flow_instead_of_running_here(tmp_path, monkeypatch):
    import socket

    import dask

    from inpaintflow.flows.masks import make_mask_set

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv(DASK_ADDRESS_ENV, address)
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}), pytest.raises(OSError, match=address):
        with_task_runner(make_mask_set)(**MASKS, out_dir=tmp_path / "masks")
    assert not (tmp_path / "masks" / "manifest.csv").exists()

"""FID: the Fréchet distance against closed forms and scipy, streaming statistics against numpy,
the Inception-v3 layout (keys, shapes, parameter count, TF-style pool branches, preprocessing
against OpenCV's resize), weight loading and resolution, and the folder-level entry point."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.linalg
import torch

import inpaintflow.tasks.evaluate.fid as fid_module
from inpaintflow.conventions import write_image
from inpaintflow.models.inception import (BN_EPS, ENV_VAR, INCEPTION_WEIGHTS, NUM_STATE_KEYS, FIDInceptionV3,
                                          InceptionWeightsError, expected_state_shapes, load_fid_inception,
                                          optional_state_keys, resolve_inception_weights)
from inpaintflow.tasks.data.download import ChecksumError
from inpaintflow.tasks.evaluate.fid import (FeatureStats, FIDError, activation_stats, download_inception_weights,
                                            fid_between_dirs, frechet_distance)

# torchvision documents 27,161,264 parameters for inception_v3 (1000 classes, with AuxLogits).
# AuxLogits holds 3,326,696 of them (conv 768->128 1x1 + BN: 98,304 + 256; conv 128->768 5x5 +
# BN: 2,457,600 + 1,536; fc 768->1000: 769,000); the FID file's fc has 1008 classes, 8 x 2049
# more. BN running statistics are buffers, not parameters.
FID_INCEPTION_PARAMETERS = 27_161_264 - 3_326_696 + 8 * 2049


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(autouse=True)
def no_weights_in_env(monkeypatch, tmp_path_factory):
    """No test sees the machine's own weights unless it asks (TORCH_HOME -> an empty folder)."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))


@pytest.fixture(scope="module")
def random_state() -> dict[str, torch.Tensor]:
    """A randomly initialised net's state, with non-trivial batch-norm statistics."""
    torch.manual_seed(0)
    state = FIDInceptionV3().state_dict()
    for key, tensor in state.items():
        if key.endswith(("bn.weight", "running_var")):
            tensor.uniform_(0.5, 2.0)
        elif key.endswith(("bn.bias", "running_mean")):
            tensor.normal_(0.0, 0.1)
    return state


@pytest.fixture(scope="module")
def weights_file(random_state, tmp_path_factory) -> Path:
    """``random_state`` saved as ``inception-<first 8 hex of its sha256>.pth``, so the loader's
    name-prefix checksum check runs and passes."""
    raw = tmp_path_factory.mktemp("weights") / "inception.pth"
    torch.save(random_state, raw)
    named = raw.with_name(f"inception-{_sha256(raw)[:8]}.pth")
    raw.rename(named)
    return named


@pytest.fixture(scope="module")
def model() -> FIDInceptionV3:
    """A randomly initialised net, shared by the tests that do not change it."""
    torch.manual_seed(0)
    return FIDInceptionV3()


@pytest.fixture(scope="module")
def loaded(weights_file) -> FIDInceptionV3:
    return load_fid_inception(weights_file)


def _save(state: dict, path: Path) -> Path:
    torch.save(state, path)
    return path


# ---------------------------------------------------------------------------------------------
# frechet_distance


def test_frechet_distance_diagonal_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    s1, s2 = rng.uniform(0.1, 3.0, size=5), rng.uniform(0.1, 3.0, size=5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_commuting_covariances_closed_form():
    """Sigma_i = Q diag(s_i) Q^T share eigenvectors: d^2 = |dmu|^2 + sum (sqrt s1 - sqrt s2)^2."""
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    s1, s2 = rng.uniform(0.1, 3.0, size=6), rng.uniform(0.1, 3.0, size=6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    got = frechet_distance(mu1, q @ np.diag(s1) @ q.T, mu2, q @ np.diag(s2) @ q.T)
    assert got == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_random_spd_against_symmetric_scipy_form():
    """Tr sqrt(S1 S2) = Tr sqrt(S1^1/2 S2 S1^1/2): the reference takes the symmetric route."""
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(8, 8)), rng.normal(size=(8, 8))
    s1, s2 = a @ a.T + 0.1 * np.eye(8), b @ b.T + 0.1 * np.eye(8)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    root1 = scipy.linalg.sqrtm(s1).real
    cross = scipy.linalg.sqrtm(root1 @ s2 @ root1).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(cross)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(expected, rel=1e-9)  # symmetric


def test_frechet_distance_zero_for_identical_stats_even_singular():
    rng = np.random.default_rng(3)
    full = rng.normal(size=(200, 10))
    few = rng.normal(size=(4, 30))  # 4 samples in 30 dimensions: a rank-3 covariance
    for x in (full, few):
        mu, sigma = x.mean(axis=0), np.cov(x, rowvar=False)
        assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6 * np.trace(sigma)


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(FIDError, match="same length"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(FIDError, match=r"\(3, 3\)"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(2))


# ---------------------------------------------------------------------------------------------
# FeatureStats


@pytest.mark.parametrize("splits", [(20,), (1,) * 20, (3, 7, 10), (2, 18), (19, 1)])
def test_feature_stats_streaming_equals_numpy(splits):
    rng = np.random.default_rng(4)
    x = rng.normal(loc=5.0, scale=0.5, size=(20, 6))  # an offset mean tests the cancellation
    stats = FeatureStats()
    for chunk in np.split(x, np.cumsum(splits)[:-1]):
        stats.update(chunk)
    assert stats.n == 20 and stats.dim == 6
    np.testing.assert_allclose(stats.mean(), np.mean(x, axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.cov(), np.cov(x, rowvar=False), rtol=1e-9, atol=1e-12)


def test_feature_stats_torch_input_and_errors():
    stats = FeatureStats().update(torch.ones(1, 3))
    np.testing.assert_array_equal(stats.mean(), np.ones(3))
    with pytest.raises(FIDError, match="at least 2"):
        stats.cov()
    with pytest.raises(FIDError, match="4 dimensions"):
        stats.update(np.ones((2, 4)))
    with pytest.raises(FIDError, match="empty"):
        FeatureStats().mean()


# ---------------------------------------------------------------------------------------------
# the network


def test_state_dict_keys_and_shapes(model):
    state = model.state_dict()
    assert len(state) == NUM_STATE_KEYS == 472  # 94 BasicConv2d x 5 tensors + fc weight, bias
    assert {k: tuple(v.shape) for k, v in state.items()} == expected_state_shapes()
    assert model.num_parameters() == FID_INCEPTION_PARAMETERS == 23_850_960
    spot = {
        "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
        "Conv2d_1a_3x3.bn.running_var": (32,),
        "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
        "Mixed_5b.branch5x5_2.conv.weight": (64, 48, 5, 5),
        "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
        "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
        "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
        "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
        "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
        "Mixed_7b.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
        "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
        "fc.weight": (1008, 2048),
        "fc.bias": (1008,),
    }
    for key, shape in spot.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(k.endswith("num_batches_tracked") for k in state)
    assert len(optional_state_keys()) == 94
    assert not any(p.requires_grad for p in model.parameters())
    assert not model.train().training  # frozen in eval mode


def test_forward_shapes_preprocessing_and_pool(model, one_torch_thread):
    seen: dict[str, torch.Tensor] = {}
    hooks = [model.Conv2d_1a_3x3.register_forward_pre_hook(
        lambda _, args: seen.__setitem__("input", args[0]))]
    for name in ("Conv2d_4a_3x3", "Mixed_5d", "Mixed_6e", "Mixed_7a", "Mixed_7c"):
        hooks.append(getattr(model, name).register_forward_hook(
            lambda _, __, out, name=name: seen.__setitem__(name, out)))
    x = torch.rand(2, 3, 64, 64)
    features = model(x)
    for hook in hooks:
        hook.remove()

    assert features.shape == (2, 2048) and features.dtype == torch.float32
    assert torch.isfinite(features).all() and (features >= 0).all()  # mean of ReLU outputs
    expected_shapes = {"input": (2, 3, 299, 299), "Conv2d_4a_3x3": (2, 192, 71, 71),
                       "Mixed_5d": (2, 288, 35, 35), "Mixed_6e": (2, 768, 17, 17),
                       "Mixed_7a": (2, 1280, 8, 8), "Mixed_7c": (2, 2048, 8, 8)}
    assert {k: tuple(v.shape) for k, v in seen.items()} == expected_shapes
    torch.testing.assert_close(features, seen["Mixed_7c"].mean(dim=(2, 3)))
    # the net's input: OpenCV's bilinear resize (half-pixel centres = align_corners=False),
    # then 2x - 1
    image = x[0].permute(1, 2, 0).numpy()
    reference = cv2.resize(image, (299, 299), interpolation=cv2.INTER_LINEAR) * 2 - 1
    np.testing.assert_allclose(seen["input"][0].permute(1, 2, 0).numpy(), reference, atol=1e-5)


def test_forward_rejects_inputs_outside_unit_range(model):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model(torch.full((1, 3, 8, 8), -0.5))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(3, 8, 8))


def _np_pool3x3_same(x: np.ndarray, reduce) -> np.ndarray:
    """x (C, H, W): 3x3 stride-1 pool over the pixels inside the image (NaN padding ignored)."""
    c, h, w = x.shape
    padded = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1)), constant_values=np.nan)
    windows = np.stack([padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)])
    return reduce(windows, axis=0)


def _np_max_pool3x3_stride2(x: np.ndarray) -> np.ndarray:
    c, h, w = x.shape
    ho, wo = (h - 3) // 2 + 1, (w - 3) // 2 + 1
    return np.stack([x[:, i:i + 2 * ho - 1:2, j:j + 2 * wo - 1:2]
                     for i in range(3) for j in range(3)]).max(axis=0)


def _isolate_pool_branch(block) -> None:
    """branch_pool -> picks input channel 0 through an identity batch norm."""
    conv, bn = block.branch_pool.conv, block.branch_pool.bn
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0, 0] = 1.0
        bn.weight.fill_(1.0)
        bn.bias.zero_()
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0 - BN_EPS)  # sqrt(var + eps) = 1


@pytest.mark.parametrize("name, in_ch, channel, reduce", [
    ("Mixed_5b", 192, 64 + 64 + 96, np.nanmean),              # TF average (count_include_pad=False)
    ("Mixed_6e", 768, 192 * 3, np.nanmean),
    ("Mixed_7b", 1280, 320 + 768 + 768, np.nanmean),
    ("Mixed_7c", 2048, 320 + 768 + 768, np.nanmax),            # the FID graph's max pool
])
def test_pool_branches_follow_the_tf_graph(model, one_torch_thread, name, in_ch, channel, reduce):
    block = copy.deepcopy(getattr(model, name))
    _isolate_pool_branch(block)
    x = torch.rand(1, in_ch, 5, 6) + 0.1  # positive: the ReLU after the branch is a no-op
    out = block(x)[0, channel].numpy()
    np.testing.assert_allclose(out, _np_pool3x3_same(x[0, :1].numpy(), reduce)[0], rtol=1e-5)


@pytest.mark.parametrize("name, in_ch, first", [("Mixed_6a", 288, 384 + 96),
                                                 ("Mixed_7a", 768, 320 + 192)])
def test_grid_reductions_pass_the_input_through_a_max_pool(model, one_torch_thread, name, in_ch,
                                                          first):
    torch.manual_seed(2)
    block = getattr(model, name)
    x = torch.randn(1, in_ch, 7, 9)
    out = block(x)[0, first:].numpy()
    assert out.shape[0] == in_ch
    np.testing.assert_array_equal(out, _np_max_pool3x3_stride2(x[0].numpy()))


# ---------------------------------------------------------------------------------------------
# loading


def test_load_round_trips_a_saved_state(random_state, weights_file, loaded):
    state = loaded.state_dict()
    assert set(state) == set(random_state)
    assert all(torch.equal(state[key], tensor) for key, tensor in random_state.items())
    assert loaded.weights_sha256 == _sha256(weights_file)
    assert loaded.weights_source == str(weights_file)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())


def test_load_accepts_num_batches_tracked(random_state, tmp_path):
    state = {**random_state, **{k: torch.tensor(0) for k in optional_state_keys()}}
    model = load_fid_inception(_save(state, tmp_path / "with_counters.pth"))
    torch.testing.assert_close(model.state_dict()["fc.bias"], random_state["fc.bias"])


def test_load_rejects_missing_key(random_state, tmp_path):
    state = dict(random_state)
    del state["Mixed_6c.branch7x7_3.bn.running_var"]
    path = _save(state, tmp_path / "missing.pth")
    with pytest.raises(InceptionWeightsError, match="1 missing keys") as err:
        load_fid_inception(path)
    assert str(path) in str(err.value) and "Mixed_6c.branch7x7_3.bn.running_var" in str(err.value)


def test_load_rejects_wrong_shape(random_state, tmp_path):
    state = {**random_state, "fc.weight": torch.zeros(1000, 2048)}
    path = _save(state, tmp_path / "wrong_shape.pth")
    with pytest.raises(InceptionWeightsError, match=r"fc.weight \(1000, 2048\)") as err:
        load_fid_inception(path)
    assert str(path) in str(err.value)


def test_load_rejects_a_name_whose_sha256_prefix_does_not_match(weights_file, tmp_path):
    wrong = tmp_path / INCEPTION_WEIGHTS.file_name  # promises 6726825d
    wrong.write_bytes(weights_file.read_bytes())
    with pytest.raises(InceptionWeightsError, match="6726825d") as err:
        load_fid_inception(wrong)
    assert str(wrong) in str(err.value)
    with pytest.raises(InceptionWeightsError, match="not found"):
        load_fid_inception(tmp_path / "absent.pth")


# ---------------------------------------------------------------------------------------------
# resolving and downloading


def test_resolve_order_and_reasons(tmp_path, monkeypatch):
    path, reason = resolve_inception_weights(None)
    assert path is None
    assert INCEPTION_WEIGHTS.file_name in reason and INCEPTION_WEIGHTS.url in reason
    assert ENV_VAR in reason and "evaluate.inception_weights" in reason

    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS.file_name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert resolve_inception_weights(None) == (cached, "")

    from_env = tmp_path / "env.pth"
    from_env.write_bytes(b"x")
    monkeypatch.setenv(ENV_VAR, str(from_env))
    assert resolve_inception_weights(None) == (from_env, "")

    given = tmp_path / "given.pth"
    given.write_bytes(b"x")
    assert resolve_inception_weights(str(given)) == (given, "")

    path, reason = resolve_inception_weights(str(tmp_path / "typo.pth"))  # never falls through
    assert path is None and "typo.pth" in reason and INCEPTION_WEIGHTS.file_name in reason


def test_download_rejects_bytes_without_the_sha256_prefix(tmp_path):
    source = tmp_path / "not_inception.pth"
    source.write_bytes(b"not the weights")
    dest_dir = tmp_path / "dest"
    with pytest.raises(ChecksumError, match="6726825d"):
        download_inception_weights(dest_dir, url=source.as_uri())
    assert not (dest_dir / INCEPTION_WEIGHTS.file_name).exists()


def test_real_weights_if_present(monkeypatch, one_torch_thread):
    """Only where a real copy is configured (never on CI): its checksum and basic properties."""
    monkeypatch.undo()  # the machine's own environment and hub cache
    path, reason = resolve_inception_weights(None)
    if path is None:
        pytest.skip(reason)
    model = load_fid_inception(path)
    assert model.weights_sha256.startswith(INCEPTION_WEIGHTS.sha256_prefix)
    state = model.state_dict()
    assert all((state[k] > 0).all() for k in state if k.endswith("running_var"))
    features = model(torch.linspace(0, 1, 2 * 3 * 32 * 32).reshape(2, 3, 32, 32))
    assert torch.isfinite(features).all() and (features >= 0).all()
    assert not torch.allclose(features[0], features[1])


# ---------------------------------------------------------------------------------------------
# activation_stats and fid_between_dirs


class _ChannelMeans(torch.nn.Module):
    """A stand-in feature net: per-channel means (B, 3); records each batch's shape."""

    def __init__(self):
        super().__init__()
        self.batches: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
        self.batches.append(tuple(x.shape))
        return x.mean(dim=(2, 3))


def _write_images(folder: Path, sizes: list[tuple[int, int]], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in sizes]
    for i, image in enumerate(images):
        write_image(folder / f"{i:03d}.png", image)
    return images


def test_activation_stats_streams_in_batches_of_one_size(tmp_path):
    images = _write_images(tmp_path, [(8, 8), (8, 8), (8, 8), (6, 10), (6, 10)], seed=5)
    net = _ChannelMeans()
    stats = activation_stats(net, sorted(tmp_path.glob("*.png")), batch_size=2, device="cpu")
    assert net.batches == [(2, 3, 8, 8), (1, 3, 8, 8), (2, 3, 6, 10)]
    reference = np.stack([im.reshape(-1, 3).mean(axis=0) / 255.0 for im in images])  # RGB order
    np.testing.assert_allclose(stats.mean(), reference.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(stats.cov(), np.cov(reference, rowvar=False), atol=1e-6)


def test_fid_between_dirs_without_weights(tmp_path):
    for name in ("pred", "gt"):
        (tmp_path / name).mkdir()
        _write_images(tmp_path / name, [(8, 8)] * 3, seed=6)
    result = fid_between_dirs(tmp_path / "pred", tmp_path / "gt", None)
    assert result["fid"] is None and result["weights"] == ""
    assert INCEPTION_WEIGHTS.file_name in result["reason"]
    assert result["count"] == 3 and result["count_gt"] == 3


def test_fid_between_dirs_wiring(weights_file, loaded, tmp_path, monkeypatch, one_torch_thread):
    """Same images in both folders: identical statistics reach the distance, and they are the
    net's own features. (frechet_distance itself is tested above; a 2048-d sqrtm takes ~15 s.)"""
    for name in ("pred", "gt"):
        (tmp_path / name).mkdir()
        images = _write_images(tmp_path / name, [(16, 16)] * 2, seed=7)
    calls = []
    monkeypatch.setattr(fid_module, "frechet_distance",
                        lambda *stats: calls.append(stats) or 12.5)
    result = fid_between_dirs(tmp_path / "pred", tmp_path / "gt", str(weights_file), batch_size=2)
    assert result["fid"] == 12.5 and result["reason"] == "" and result["count"] == 2
    assert result["weights"] == f"{weights_file} (sha256 {_sha256(weights_file)[:16]})"
    (mu1, sigma1, mu2, sigma2), = calls
    np.testing.assert_array_equal(mu1, mu2)
    np.testing.assert_array_equal(sigma1, sigma2)
    with torch.no_grad():
        direct = loaded(fid_module.uint8_to_unit(np.stack(images))).double().numpy()
    np.testing.assert_allclose(mu1, direct.mean(axis=0), rtol=1e-5, atol=1e-6)
    assert sigma1.shape == (2048, 2048)

    few = tmp_path / "one"
    few.mkdir()
    _write_images(few, [(16, 16)], seed=8)
    result = fid_between_dirs(few, tmp_path / "gt", str(weights_file))
    assert result["fid"] is None and "at least 2" in result["reason"] and result["count"] == 1


def test_frechet_distance_offsets_a_singular_product(monkeypatch):
    """When sqrtm fails (inf/nan), both covariances get eps * I, as in pytorch-fid."""
    real_sqrtm, seen = scipy.linalg.sqrtm, []

    def flaky_sqrtm(a):
        seen.append(a)
        return np.full_like(a, np.nan) if len(seen) == 1 else real_sqrtm(a)

    monkeypatch.setattr(fid_module.scipy.linalg, "sqrtm", flaky_sqrtm)
    s1, s2 = np.diag([1.0, 0.0]), np.diag([4.0, 0.0])
    got = frechet_distance(np.zeros(2), s1, np.zeros(2), s2, eps=1e-2)
    np.testing.assert_allclose(seen[1], (s1 + 1e-2 * np.eye(2)) @ (s2 + 1e-2 * np.eye(2)))
    # Tr S1 + Tr S2 - 2 Tr sqrt(diag(1.01 * 4.01, 0.01 * 0.01)): off the exact 1 by O(eps)
    expected = 5 - 2 * (np.sqrt(1.01 * 4.01) + 0.01)
    assert got == pytest.approx(expected, rel=1e-9)

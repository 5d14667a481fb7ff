"""The VGG-19 feature extractor: weight ports (every tensor filled, every shape checked),
features against an independent numpy computation, checksum errors, and the preprocessing."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from inpaintflow.models.vgg import (CAFFE_MEAN_BGR, CONV_NAMES, ENV_VAR, LAYER_PLAN, TORCHVISION_FILENAME,
                                    VGG19Features, VGGWeightsError, caffe_preprocess, convs_needed, load_vgg19,
                                    resolve_vgg_weights, torchvision_preprocess)

NPY_FOLDER = Path(__file__).resolve().parents[2] / "shared" / "weights" / "vgg19-imagenet-block1-3"
BLOCK1_3 = tuple(n for n in CONV_NAMES if n.startswith(("block1", "block2", "block3")))


@pytest.fixture
def npy_folder() -> Path:
    if not (NPY_FOLDER / "SHA256SUMS").is_file():
        pytest.skip(f"{NPY_FOLDER} is absent (tests on the shared VGG weights are skipped)")
    return NPY_FOLDER


# ---------------------------------------------------------------------------------------------
# an independent numpy VGG: HWC layout, Keras HWIO kernels used as stored (no transpose)


def _np_conv3x3_relu(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """x (H, W, C), kernel (3, 3, C, O): 'same' cross-correlation + bias, then ReLU."""
    h, w, _ = x.shape
    xp = np.pad(x.astype(np.float64), ((1, 1), (1, 1), (0, 0)))
    patches = np.stack([xp[i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=2)  # (H, W, 9, C)
    out = np.einsum("hwkc,kco->hwo", patches, kernel.reshape(9, *kernel.shape[2:]).astype(np.float64))
    return np.maximum(out + bias, 0.0)


def _np_pool(x: np.ndarray) -> np.ndarray:
    h, w, c = x.shape
    x = x[: h // 2 * 2, : w // 2 * 2]
    return x.reshape(h // 2, 2, w // 2, 2, c).max(axis=(1, 3))


def _np_features(image_rgb: np.ndarray, folder: Path, layers: tuple[str, ...]) -> dict[str, np.ndarray]:
    """image (H, W, 3) RGB in [-1, 1] -> {layer: (H', W', C)} with caffe preprocessing."""
    x = (image_rgb.astype(np.float64) + 1.0) * 127.5
    x = x[..., ::-1] - np.array(CAFFE_MEAN_BGR)  # RGB -> BGR, minus the BGR mean
    out = {}
    for name, kind, *_ in LAYER_PLAN:
        if kind == "conv":
            x = _np_conv3x3_relu(x, np.load(folder / f"{name}_kernel_0.npy"),
                                 np.load(folder / f"{name}_bias_0.npy"))
        else:
            x = _np_pool(x)
        if name in layers:
            out[name] = x
        if all(n in out for n in layers):
            return out
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------
# (a) the .npy folder


def test_npy_folder_fills_every_parameter(npy_folder):
    model = load_vgg19(npy_folder, layers=("block3_conv4",))
    assert tuple(model.convs.keys()) == BLOCK1_3 and len(BLOCK1_3) == 8
    params = dict(model.named_parameters())
    assert len(params) == 16  # 8 convolutions x (weight, bias)
    for name in BLOCK1_3:
        kernel = np.load(npy_folder / f"{name}_kernel_0.npy")
        bias = np.load(npy_folder / f"{name}_bias_0.npy")
        weight = params[f"convs.{name}.weight"]
        assert weight.shape == (kernel.shape[3], kernel.shape[2], 3, 3)
        np.testing.assert_array_equal(weight.numpy(), kernel.transpose(3, 2, 0, 1))
        np.testing.assert_array_equal(params[f"convs.{name}.bias"].numpy(), bias)
    assert all(not p.requires_grad for p in model.parameters()) and not model.training
    assert model.weights_source == f"npy:{npy_folder}" and model.input_convention == "caffe"


def test_npy_features_match_numpy(npy_folder):
    layers = ("block1_conv2", "pool1", "block3_conv3")
    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, size=(24, 24, 3)).astype(np.float32)
    model = load_vgg19(npy_folder, layers=layers)
    got = model(torch.from_numpy(image).permute(2, 0, 1)[None])
    want = _np_features(image, npy_folder, layers)
    assert set(got) == set(layers)
    for name in layers:
        g = got[name][0].permute(1, 2, 0).double().numpy()
        w = want[name]
        assert g.shape == w.shape, name
        assert np.abs(w).max() > 0, name
        rel = np.abs(g - w).max() / np.abs(w).max()
        assert rel < 1e-4, f"{name}: relative error {rel:.2e}"


# ---------------------------------------------------------------------------------------------
# (b) errors


def test_corrupt_npy_file_is_named(npy_folder, tmp_path):
    folder = tmp_path / "vgg"
    shutil.copytree(npy_folder, folder)
    victim = folder / "block2_conv1_kernel_0.npy"
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(VGGWeightsError, match="block2_conv1_kernel_0.npy.*sha256 mismatch"):
        load_vgg19(folder, layers=("pool1",))
    victim.unlink()
    with pytest.raises(VGGWeightsError, match="block2_conv1_kernel_0.npy.*missing"):
        load_vgg19(folder, layers=("pool1",))


def test_deeper_layer_than_folder_is_an_error(npy_folder):
    with pytest.raises(VGGWeightsError, match="block4_conv1 is needed"):
        load_vgg19(npy_folder, layers=("block4_conv1",))


def test_no_weights_is_an_error_listing_sources():
    with pytest.raises(VGGWeightsError) as err:
        load_vgg19(None, layers=("block3_conv3",))
    message = str(err.value)
    for needle in (TORCHVISION_FILENAME, ".h5", ".npy", ENV_VAR, "--vgg-weights"):
        assert needle in message
    assert load_vgg19(None, layers=("pool1",), allow_random=True).weights_source == "random-init"


def test_unknown_layer_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="block9_conv1"):
        VGG19Features(layers=("block9_conv1",))
    with pytest.raises(VGGWeightsError, match="nothing.pth"):
        load_vgg19(tmp_path / "nothing.pth", layers=("pool1",))
    (tmp_path / "w.h5").write_bytes(b"not hdf5")
    try:
        import h5py  # noqa: F401
    except ImportError:  # the case here: the message must say how to get h5py
        with pytest.raises(VGGWeightsError, match="w.h5.*pip install h5py"):
            load_vgg19(tmp_path / "w.h5", layers=("pool1",))
    else:
        with pytest.raises(VGGWeightsError, match="w.h5"):
            load_vgg19(tmp_path / "w.h5", layers=("pool1",))


def test_resolve_lookup_order(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert resolve_vgg_weights(None) is None
    cached = tmp_path / "torch" / "hub" / "checkpoints" / TORCHVISION_FILENAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert resolve_vgg_weights(None) == cached
    env_file = tmp_path / "env.pth"
    env_file.write_bytes(b"x")
    monkeypatch.setenv(ENV_VAR, str(env_file))
    assert resolve_vgg_weights(None) == env_file
    cli_file = tmp_path / "cli"
    cli_file.mkdir()
    assert resolve_vgg_weights(str(cli_file)) == cli_file
    with pytest.raises(VGGWeightsError, match="gone.pth"):
        resolve_vgg_weights(str(tmp_path / "gone.pth"))


# ---------------------------------------------------------------------------------------------
# (c) a torchvision-format state dict


def _torchvision_state(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, kind, in_ch, out_ch, index in LAYER_PLAN:
        if kind == "conv":
            std = (2 / (9 * in_ch)) ** 0.5
            state[f"features.{index}.weight"] = torch.randn(out_ch, in_ch, 3, 3, generator=g) * std
            state[f"features.{index}.bias"] = torch.randn(out_ch, generator=g) * 0.1
    state["classifier.0.weight"] = torch.zeros(4, 4)  # ignored, as in the real file
    return state


def test_torchvision_state_dict_loads_and_checks_hash(tmp_path):
    torch.manual_seed(0)
    state = _torchvision_state(1)
    assert sum(k.startswith("features.") for k in state) == 32
    raw = tmp_path / "raw.pth"
    torch.save(state, raw)
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()
    good = tmp_path / f"vgg19-{digest[:8]}.pth"
    shutil.copy(raw, good)
    layers = ("block1_conv2", "pool2", "block3_conv3")
    model = load_vgg19(good, layers=layers)
    assert model.input_convention == "torchvision" and model.weights_source == f"torchvision:{good}"

    direct = VGG19Features(layers=layers, input_convention="torchvision")
    with torch.no_grad():
        for name, kind, _, _, index in LAYER_PLAN:
            if name in direct.convs:
                direct.convs[name].weight.copy_(state[f"features.{index}.weight"])
                direct.convs[name].bias.copy_(state[f"features.{index}.bias"])
    x = torch.rand(2, 3, 20, 20) * 2 - 1
    got, want = model(x), direct(x)
    for name in layers:
        assert torch.equal(got[name], want[name])

    wrong_prefix = "0" * 8 if not digest.startswith("0" * 8) else "f" * 8
    bad = tmp_path / f"vgg19-{wrong_prefix}.pth"
    shutil.copy(raw, bad)
    with pytest.raises(VGGWeightsError, match=f"vgg19-{wrong_prefix}.pth.*sha256"):
        load_vgg19(bad, layers=layers)

    del state["features.34.bias"]  # block5_conv4 missing: not a VGG-19
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(VGGWeightsError, match="features.34.bias"):
        load_vgg19(tmp_path / "short.pth", layers=("pool1",))


# ---------------------------------------------------------------------------------------------
# (d) preprocessing and the frozen module


def test_caffe_preprocessing_of_pure_red():
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    out = caffe_preprocess(red)[0, :, 0, 0]
    # BGR: B = 0 - 103.939, G = 0 - 116.779, R (channel index 2) = 255 - 123.68
    torch.testing.assert_close(out, torch.tensor([-103.939, -116.779, 255 - 123.68]))


def test_torchvision_preprocessing_of_pure_red():
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1)
    out = torchvision_preprocess(red)[0, :, 0, 0]
    torch.testing.assert_close(out, torch.tensor([(1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225]))


def test_builds_only_up_to_deepest_layer_and_stays_frozen():
    torch.manual_seed(0)
    assert convs_needed(("pool1",)) == ("block1_conv1", "block1_conv2")
    model = load_vgg19(None, layers=("pool1", "block2_conv1"), allow_random=True)
    assert tuple(model.convs.keys()) == ("block1_conv1", "block1_conv2", "block2_conv1")
    model.train()
    assert not model.training
    out = model(torch.rand(1, 3, 16, 16) * 2 - 1)
    assert out["pool1"].shape == (1, 64, 8, 8) and out["block2_conv1"].shape == (1, 128, 8, 8)
    assert (out["block2_conv1"] >= 0).all()  # post-ReLU
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        model(torch.rand(1, 3, 16, 16) * 255)


# ---------------------------------------------------------------------------------------------
# the Keras .h5 reader, through a stand-in for h5py (not installed here) with Keras 2's layout


class _FakeDataset:
    def __init__(self, array):
        self.array = array

    def __array__(self, dtype=None, copy=None):
        return self.array


class _FakeGroup(dict):
    def __init__(self, items=(), attrs=None):
        super().__init__(items)
        self.attrs = attrs or {}

    def visititems(self, fn):
        for key, value in self.items():
            fn(key, value)
            if isinstance(value, _FakeGroup):
                value.visititems(fn)


def test_keras_h5_reader_transposes_hwio(tmp_path, monkeypatch):
    import sys
    import types

    g = np.random.default_rng(0)
    kernels, groups = {}, {}
    for name, kind, in_ch, out_ch, _ in LAYER_PLAN[:3]:  # block1_conv1, block1_conv2, pool1
        if kind == "conv":
            kernel = g.normal(size=(3, 3, in_ch, out_ch)).astype(np.float32)
            bias = g.normal(size=(out_ch,)).astype(np.float32)
            kernels[name] = (kernel, bias)
            groups[name] = _FakeGroup(
                {name: _FakeGroup({"kernel:0": _FakeDataset(kernel), "bias:0": _FakeDataset(bias)})},
                attrs={"weight_names": [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]})
    # h5py resolves "a/b" paths inside a group; the stand-in does too
    for name, group in groups.items():
        inner = group[name]
        group.update({f"{name}/{k}": v for k, v in inner.items()})

    class _File(_FakeGroup):
        def __init__(self, path, mode):
            super().__init__(groups)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    fake = types.ModuleType("h5py")
    fake.File, fake.Dataset = _File, _FakeDataset
    monkeypatch.setitem(sys.modules, "h5py", fake)
    path = tmp_path / "vgg19_keras.h5"
    path.write_bytes(b"stand-in")
    model = load_vgg19(path, layers=("pool1",))
    assert model.input_convention == "caffe" and model.weights_source == f"keras-h5:{path}"
    for name, (kernel, bias) in kernels.items():
        np.testing.assert_array_equal(model.convs[name].weight.numpy(), kernel.transpose(3, 2, 0, 1))
        np.testing.assert_array_equal(model.convs[name].bias.numpy(), bias)
    with pytest.raises(VGGWeightsError, match="block2_conv1"):
        load_vgg19(path, layers=("block2_conv1",))

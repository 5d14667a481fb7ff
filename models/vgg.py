"""Frozen VGG-19 feature extractor (Simonyan & Zisserman, ICLR 2015), shared by the losses of
R-MNet (block3_conv3, paper 000) and the region-wise GAN (pool1..pool3, paper 003).

It is a feature net, not a paper model: it carries no training code, and it never downloads.
Weights come from an explicit path (see :func:`resolve_vgg_weights` for the lookup order) in
one of three formats, each with its own input convention:

================================  ==========================================  ===============
source                            what it is                                  preprocessing
================================  ==========================================  ===============
``vgg19-dcbb9e9d.pth``            torchvision state dict (``features.{i}.*``)  ``torchvision``
``vgg19_..._notop.h5``            Keras applications HDF5 (needs ``h5py``)     ``caffe``
folder of ``<layer>_kernel_0.npy``  per-layer Keras arrays + ``SHA256SUMS``    ``caffe``
================================  ==========================================  ===============

* ``caffe`` (Keras ``imagenet_utils.preprocess_input`` mode "caffe"): RGB -> BGR, values 0..255,
  minus the per-channel mean (103.939, 116.779, 123.68) (B, G, R), no division by a std.
* ``torchvision``: RGB in [0, 1], minus mean (0.485, 0.456, 0.406), divided by
  std (0.229, 0.224, 0.225).

Both nets are the same ImageNet VGG-19 up to this preprocessing (the Keras weights are the
Caffe release; torchvision's are a retrained port); the activations differ in scale, so a
table must say which source was used: every extractor records it in ``weights_source`` and
``input_convention``.

Choices where nobody specifies:
* Forward takes images in [-1, 1] RGB (the project convention) and raises if the input lies
  outside [-1, 1] by more than ``RANGE_TOLERANCE`` (a [0, 255] or [0, 1] image fed by mistake
  would otherwise give plausible-looking but wrong features).
* Random init (``allow_random=True``, tests only) follows torchvision's VGG:
  Kaiming-normal (fan_out, ReLU), zero bias, so activations keep their scale through depth.
* Max pooling is 2x2, stride 2, floor on odd sizes (Keras ``MaxPooling2D`` "valid" and
  torch's default agree); 3x3 convolutions use padding 1 (Keras "same").
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from inpaintflow.models.common import load_state_dict_file, sha256_of

# ---------------------------------------------------------------------------------------------
# helpers

# The VGG-19 layer table ("E" in the paper): output channels of the 3x3 convolutions of each
# block; every block ends with a 2x2 max pool.
VGG19_BLOCKS: tuple[tuple[int, ...], ...] = (
    (64, 64),
    (128, 128),
    (256, 256, 256, 256),
    (512, 512, 512, 512),
    (512, 512, 512, 512),
)

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # Keras "caffe" mode, on 0..255 values
TORCHVISION_MEAN_RGB = (0.485, 0.456, 0.406)
TORCHVISION_STD_RGB = (0.229, 0.224, 0.225)
INPUT_CONVENTIONS = ("caffe", "torchvision")
RANGE_TOLERANCE = 1e-2  # slack on [-1, 1] for bf16 rounding of a tanh output

ENV_VAR = "INPAINTFLOW_VGG19_WEIGHTS"
CLI_FLAG = "--vgg-weights"
TORCHVISION_FILENAME = "vgg19-dcbb9e9d.pth"
TORCHVISION_URL = f"https://download.pytorch.org/models/{TORCHVISION_FILENAME}"
KERAS_FILENAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
KERAS_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
             f"{KERAS_FILENAME}")
KERAS_NOTOP_MD5 = "253f8cb515780f3b799900260a226db6"  # keras.applications.vgg19 file_hash
NPY_SUMS = "SHA256SUMS"

HOW_TO_GET = (
    f"Accepted VGG-19 weights: (1) torchvision's {TORCHVISION_FILENAME} ({TORCHVISION_URL}); "
    f"(2) Keras' {KERAS_FILENAME} ({KERAS_URL}; reading it needs `pip install h5py`); "
    "(3) a folder of per-layer <layer>_kernel_0.npy/<layer>_bias_0.npy files with a SHA256SUMS "
    "file (e.g. shared/weights/vgg19-imagenet-block1-3, blocks 1-3 only). "
    f"Pass the path with {CLI_FLAG} or the environment variable {ENV_VAR}, or put "
    f"{TORCHVISION_FILENAME} in the torch hub cache (<torch hub dir>/checkpoints/)."
)


class VGGWeightsError(RuntimeError):
    """The VGG-19 weights are missing, corrupt or do not fit; the message names the file."""


def _layer_plan() -> list[tuple[str, str, int, int, int]]:
    """Every layer in order: (name, kind, in_ch, out_ch, torchvision features index).

    Names follow Keras ("block3_conv3"); pools are "pool1".."pool5". torchvision's
    ``vgg19().features`` interleaves conv, ReLU (one index each) and a pool after each block.
    """
    plan, in_ch, index = [], 3, 0
    for b, widths in enumerate(VGG19_BLOCKS, start=1):
        for c, out_ch in enumerate(widths, start=1):
            plan.append((f"block{b}_conv{c}", "conv", in_ch, out_ch, index))
            in_ch, index = out_ch, index + 2  # conv, ReLU
        plan.append((f"pool{b}", "pool", in_ch, in_ch, index))
        index += 1
    return plan


LAYER_PLAN = _layer_plan()
LAYER_NAMES: tuple[str, ...] = tuple(name for name, *_ in LAYER_PLAN)
CONV_NAMES: tuple[str, ...] = tuple(name for name, kind, *_ in LAYER_PLAN if kind == "conv")


def _deepest(layers: tuple[str, ...]) -> int:
    if not layers:
        raise ValueError("layers: ask for at least one VGG-19 layer, e.g. ('block3_conv3',)")
    for name in layers:
        if name not in LAYER_NAMES:
            raise ValueError(f"layers: unknown VGG-19 layer {name!r}; known: {', '.join(LAYER_NAMES)}")
    return max(LAYER_NAMES.index(name) for name in layers)


def convs_needed(layers: tuple[str, ...]) -> tuple[str, ...]:
    """The convolutions that must hold weights to compute ``layers``."""
    last = _deepest(tuple(layers))
    return tuple(name for name, kind, *_ in LAYER_PLAN[: last + 1] if kind == "conv")


def caffe_preprocess(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] RGB (B, 3, H, W) -> Keras "caffe" input: BGR, 0..255, minus the BGR mean."""
    x = (x + 1) * 127.5  # (B, 3, H, W) RGB in 0..255
    x = x.flip(1)  # RGB -> BGR
    mean = x.new_tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1)
    return x - mean


def torchvision_preprocess(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] RGB (B, 3, H, W) -> torchvision ImageNet input: [0, 1], mean/std normalised."""
    x = (x + 1) / 2
    mean = x.new_tensor(TORCHVISION_MEAN_RGB).view(1, 3, 1, 1)
    std = x.new_tensor(TORCHVISION_STD_RGB).view(1, 3, 1, 1)
    return (x - mean) / std


PREPROCESS = {"caffe": caffe_preprocess, "torchvision": torchvision_preprocess}


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# the network


class VGG19Features(nn.Module):
    """VGG-19 convolutions up to the deepest requested layer; frozen and always in eval mode.

    ``forward(x)`` takes (B, 3, H, W) RGB in [-1, 1] and returns ``{layer: activation}`` for the
    requested layers: post-ReLU for "blockK_convJ", post-pool for "poolK".
    """

    def __init__(self, *, layers: tuple[str, ...], input_convention: str = "caffe"):
        super().__init__()
        if input_convention not in INPUT_CONVENTIONS:
            raise ValueError(f"input_convention: {input_convention!r} is not one of {INPUT_CONVENTIONS}")
        self.layers = tuple(layers)
        last = _deepest(self.layers)
        self.input_convention = input_convention
        self.weights_source = "random-init"  # replaced by load_vgg19 once weights are copied
        self.plan = LAYER_PLAN[: last + 1]
        self.convs = nn.ModuleDict({
            name: nn.Conv2d(in_ch, out_ch, 3, padding=1)
            for name, kind, in_ch, out_ch, _ in self.plan if kind == "conv"
        })
        self.apply(self._init_weights)
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Conv2d):  # torchvision's VGG init
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)

    def train(self, mode: bool = True) -> "VGG19Features":
        return super().train(False)  # frozen: never leaves eval mode

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"VGG19Features: expected (B, 3, H, W) RGB, got shape {tuple(x.shape)}")
        lo, hi = x.detach().aminmax()
        if lo < -1 - RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
            raise ValueError(f"VGG19Features: input must be RGB in [-1, 1], got range "
                             f"[{float(lo):.3f}, {float(hi):.3f}]")
        x = PREPROCESS[self.input_convention](x)
        out = {}
        for name, kind, *_ in self.plan:
            x = F.relu(self.convs[name](x)) if kind == "conv" else F.max_pool2d(x, 2, 2)
            if name in self.layers:
                out[name] = x
        return out

    def extra_repr(self) -> str:
        return (f"layers={self.layers}, input_convention={self.input_convention!r}, "
                f"weights_source={self.weights_source!r}")


# ---------------------------------------------------------------------------------------------
# weight ports: every reader returns {conv name: (weight OIHW, bias)} as numpy float32


def _read_torchvision(path: Path, needed: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """torchvision ``vgg19`` state dict: ``features.{i}.weight`` (O, I, 3, 3), ``.bias`` (O,).

    A file named ``...-<hex>.pth`` (torch hub convention) must have a sha256 starting with
    <hex>, as ``vgg19-dcbb9e9d.pth`` does.
    """
    state, _ = load_state_dict_file(path, error=VGGWeightsError, url=TORCHVISION_URL, how_to_get=HOW_TO_GET)
    # every key of the 16 convolutions, mapped explicitly; the classifier (if any) is ignored
    key_map = {f"features.{index}.{param}": (name, param)
               for name, kind, _, _, index in LAYER_PLAN if kind == "conv"
               for param in ("weight", "bias")}
    feature_keys = {k for k in state if k.startswith("features.")}
    if feature_keys != set(key_map):
        missing, extra = sorted(set(key_map) - feature_keys), sorted(feature_keys - set(key_map))
        raise VGGWeightsError(f"{path}: not a torchvision VGG-19 state dict: missing keys "
                              f"{missing[:6]}, unexpected keys {extra[:6]}. {HOW_TO_GET}")
    assert len(feature_keys) == 2 * len(CONV_NAMES)  # 32 tensors
    convs: dict[str, dict[str, np.ndarray]] = {}
    for key, (name, param) in key_map.items():
        convs.setdefault(name, {})[param] = state[key].detach().float().numpy()
    return {name: (convs[name]["weight"], convs[name]["bias"]) for name in needed}


def _read_keras_h5(path: Path, needed: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Keras applications HDF5: group ``<layer>`` holding a kernel (kh, kw, in, out) and a bias
    (out,), named by the group's ``weight_names`` attribute (Keras 1: ``<layer>_W_1:0``,
    Keras 2: ``<layer>/kernel:0``). Kernels are transposed HWIO -> OIHW."""
    try:
        import h5py  # optional: only this source needs it
    except ImportError as err:
        raise VGGWeightsError(f"{path}: reading Keras .h5 weights needs h5py, which is not "
                              f"installed: `pip install h5py`, or use another source. {HOW_TO_GET}") from err
    if path.name == KERAS_FILENAME and _md5(path) != KERAS_NOTOP_MD5:
        raise VGGWeightsError(f"{path}: md5 differs from Keras' {KERAS_NOTOP_MD5}: the file is "
                              f"corrupt or incomplete; download it again from {KERAS_URL}.")
    out = {}
    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f  # whole-model saves
            for name in needed:
                if name not in root:
                    raise VGGWeightsError(f"{path}: no group {name!r}; holds {sorted(root.keys())[:20]}. "
                                          f"{HOW_TO_GET}")
                group = root[name]
                names = [n.decode() if isinstance(n, bytes) else str(n)
                         for n in group.attrs.get("weight_names", [])]
                arrays = [np.asarray(group[n]) for n in names]
                if not arrays:  # no attribute: collect the datasets below the group
                    found: list[np.ndarray] = []
                    group.visititems(lambda _, obj: found.append(np.asarray(obj))
                                     if isinstance(obj, h5py.Dataset) else None)
                    arrays = found
                kernels = [a for a in arrays if a.ndim == 4]
                biases = [a for a in arrays if a.ndim == 1]
                if len(kernels) != 1 or len(biases) != 1:
                    raise VGGWeightsError(f"{path}: group {name!r} should hold one kernel and one bias, "
                                          f"found shapes {[a.shape for a in arrays]}. {HOW_TO_GET}")
                out[name] = (kernels[0].astype(np.float32).transpose(3, 2, 0, 1),  # HWIO -> OIHW
                             biases[0].astype(np.float32))
    except OSError as err:
        raise VGGWeightsError(f"{path}: not a readable HDF5 file ({err}). {HOW_TO_GET}") from err
    return out


def _read_npy_folder(folder: Path, needed: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A folder of ``<layer>_kernel_0.npy`` (kh, kw, in, out) and ``<layer>_bias_0.npy`` (out,),
    every file checked against the folder's SHA256SUMS. Kernels are transposed HWIO -> OIHW."""
    sums_path = folder / NPY_SUMS
    if not sums_path.is_file():
        raise VGGWeightsError(f"{sums_path}: missing; a VGG-19 .npy folder must list the sha256 of "
                              f"every file. {HOW_TO_GET}")
    sums = {}
    for line in sums_path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[name.strip().lstrip("*")] = digest.lower()
    # verify every listed file, used or not: a corrupt folder is reported at once
    for name, digest in sorted(sums.items()):
        file = folder / name
        if not file.is_file():
            raise VGGWeightsError(f"{file}: listed in {sums_path} but missing. {HOW_TO_GET}")
        if sha256_of(file) != digest:
            raise VGGWeightsError(f"{file}: sha256 mismatch with {sums_path}: the file is corrupt; "
                                  f"restore it (e.g. `git checkout` the shared folder). {HOW_TO_GET}")
    present = [n for n in CONV_NAMES if f"{n}_kernel_0.npy" in sums and f"{n}_bias_0.npy" in sums]
    out = {}
    for name in needed:
        if name not in present:
            raise VGGWeightsError(
                f"{folder}: holds weights for {present[0] if present else 'no layer'}.."
                f"{present[-1] if present else ''} only, but {name} is needed "
                f"(files {name}_kernel_0.npy/{name}_bias_0.npy listed in {NPY_SUMS}). Use the full "
                f"weights for deeper layers. {HOW_TO_GET}")
        kernel = np.load(folder / f"{name}_kernel_0.npy", allow_pickle=False)
        bias = np.load(folder / f"{name}_bias_0.npy", allow_pickle=False)
        out[name] = (kernel.astype(np.float32).transpose(3, 2, 0, 1), bias.astype(np.float32))  # HWIO -> OIHW
    return out


def _copy_weights(model: VGG19Features, arrays: dict[str, tuple[np.ndarray, np.ndarray]],
                  source: str) -> None:
    """Assert the tensor count and every shape, then copy."""
    needed = tuple(model.convs.keys())
    if set(arrays) != set(needed):
        raise VGGWeightsError(f"{source}: expected weights for {needed}, got {tuple(arrays)}")
    assert len(arrays) * 2 == len(list(model.parameters()))  # weight + bias per conv
    for name, conv in model.convs.items():
        weight, bias = arrays[name]
        if tuple(weight.shape) != tuple(conv.weight.shape) or tuple(bias.shape) != tuple(conv.bias.shape):
            raise VGGWeightsError(f"{source}: {name} has shapes weight {weight.shape} bias {bias.shape}, "
                                  f"expected {tuple(conv.weight.shape)} and {tuple(conv.bias.shape)}")
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
            conv.bias.copy_(torch.from_numpy(np.ascontiguousarray(bias)))


def weights_format(path: Path) -> str:
    """'npy' (a folder), 'torchvision' (.pth/.pt) or 'keras-h5' (.h5/.hdf5)."""
    if path.is_dir():
        return "npy"
    if path.suffix in (".pth", ".pt"):
        return "torchvision"
    if path.suffix in (".h5", ".hdf5"):
        return "keras-h5"
    raise VGGWeightsError(f"{path}: unknown VGG-19 weights format (expected a .pth, a .h5 or a "
                          f"folder of .npy files). {HOW_TO_GET}")


def load_vgg19(path: str | os.PathLike | None, *, layers: tuple[str, ...],
               allow_random: bool = False) -> VGG19Features:
    """A frozen :class:`VGG19Features` for ``layers`` with weights from ``path``, whose format
    also picks the input convention (torchvision -> "torchvision", Keras/.npy -> "caffe").

    ``path=None`` is an error unless ``allow_random`` (tests): then the net keeps its random
    init and says so in ``weights_source = "random-init"``.
    """
    layers = tuple(layers)
    if path is None:
        if not allow_random:
            raise VGGWeightsError(f"no VGG-19 weights given. {HOW_TO_GET}")
        return VGG19Features(layers=layers, input_convention="caffe")
    path = Path(path).expanduser()
    if not path.exists():
        raise VGGWeightsError(f"{path}: VGG-19 weights not found. {HOW_TO_GET}")
    kind = weights_format(path)
    needed = convs_needed(layers)
    reader = {"npy": _read_npy_folder, "torchvision": _read_torchvision, "keras-h5": _read_keras_h5}[kind]
    arrays = reader(path, needed)
    model = VGG19Features(layers=layers,
                          input_convention="torchvision" if kind == "torchvision" else "caffe")
    _copy_weights(model, arrays, str(path))
    model.weights_source = f"{kind}:{path}"
    return model


def resolve_vgg_weights(cli_path: str | os.PathLike | None) -> Path | None:
    """Where the VGG-19 weights are: ``cli_path`` (``--vgg-weights``), else the environment
    variable INPAINTFLOW_VGG19_WEIGHTS, else ``<torch hub dir>/checkpoints/vgg19-dcbb9e9d.pth``
    (by default ``~/.cache/torch/hub/checkpoints``) if it exists, else None.

    A path given explicitly (flag or variable) that does not exist is an error naming it.
    """
    for given, origin in ((cli_path, CLI_FLAG), (os.environ.get(ENV_VAR) or None, ENV_VAR)):
        if given:
            path = Path(given).expanduser()
            if not path.exists():
                raise VGGWeightsError(f"{path} (from {origin}): VGG-19 weights not found. {HOW_TO_GET}")
            return path
    cached = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILENAME
    return cached if cached.is_file() else None

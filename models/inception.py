"""Frozen Inception-v3 feature extractor for the Fréchet Inception Distance (Heusel et al., NIPS
2017), laid out so that pytorch-fid's weight file loads into it unchanged.

FID is reported by R-MNet (paper 000, Tables 1-3) and the region-wise GAN (paper 003, Tables 2-3);
neither paper's public code ships it. The de-facto reference is pytorch-fid
(github.com/mseitzer/pytorch-fid, ``src/pytorch_fid/inception.py``), whose network is the
TensorFlow graph ``inception-2015-12-05`` (the one TTUR's original FID code uses) ported to
torchvision's ``Inception3`` layout. This module rebuilds that layout itself (torchvision does
not import beside our CPU torch) and never downloads: weights come from a local path
(:func:`resolve_inception_weights`); the download is a separate, explicit
step (:func:`inpaintflow.tasks.evaluate.fid.download_inception_weights`).

The network (input 299x299; spatial sizes in the comments of :meth:`FIDInceptionV3.forward`)
    stem      Conv2d_1a_3x3 .. Conv2d_4a_3x3 with two 3x3/2 max pools
    Mixed_5b-5d  InceptionA   (35x35)    Mixed_6a  InceptionB (grid reduction)
    Mixed_6b-6e  InceptionC   (17x17)    Mixed_7a  InceptionD (grid reduction)
    Mixed_7b     InceptionE, average-pool branch  Mixed_7c  InceptionE, max-pool branch (8x8)
    global average pool -> 2048-d "pool3" features; ``fc`` (2048 -> 1008) is kept only so the
    file loads as it is: FID never uses it.
Every convolution is a ``BasicConv2d``: conv (no bias) -> batch norm (eps 0.001) -> ReLU.

Where the FID network differs from torchvision's ImageNet Inception-v3 (what pytorch-fid patches):
* the 3x3 average pools in the pool branches of Mixed_5b-6e and Mixed_7b ignore the zero padding
  (``count_include_pad=False``), as TensorFlow's average pool does;
* Mixed_7c's pool branch uses a 3x3 *max* pool (a quirk of the 2015 TF graph);
* 1008 output classes, no auxiliary classifier, no ``transform_input``.

Input convention: ``forward`` takes RGB in [0, 1] (pytorch-fid's convention), not the
project's [-1, 1]: callers holding uint8 images divide by 255 at their boundary
(:func:`tasks.fid.uint8_to_unit`). It then resizes bilinearly to 299x299 (``align_corners=False``,
no antialiasing, as pytorch-fid) and maps to [-1, 1] by ``2x - 1``.

Choices where nobody specifies:
* Batch norm is a frozen affine (:class:`FrozenBatchNorm2d`: weight, bias, running mean and
  variance, no ``num_batches_tracked``). The 94 ``num_batches_tracked`` counters that
  ``nn.BatchNorm2d`` adds carry nothing at inference; whether pytorch-fid's file holds them
  cannot be checked offline, so :func:`load_fid_inception` accepts a file with or without them.
* Random init (tests only): Kaiming-normal (fan_in, ReLU) convs so that activations keep their
  scale through the 94 layers, identity batch norm, small normal ``fc``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from inpaintflow.models.common import load_state_dict_file

# ---------------------------------------------------------------------------------------------
# helpers


@dataclass(frozen=True)
class WeightsInfo:
    """Where the FID weights come from and how a copy is recognised."""

    file_name: str
    url: str
    # torch hub convention: the hex after the last '-' of the file name is the start of the
    # file's sha256. Only this prefix is published; the full digest is not known offline.
    sha256_prefix: str


INCEPTION_WEIGHTS = WeightsInfo(
    file_name="pt_inception-2015-12-05-6726825d.pth",
    url=("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
         "pt_inception-2015-12-05-6726825d.pth"),
    sha256_prefix="6726825d",
)

ENV_VAR = "INPAINTFLOW_INCEPTION_WEIGHTS"
PARAMS_KEY = "evaluate.inception_weights"
INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_CLASSES = 1008  # the 2015 TF graph's softmax: 1000 ImageNet classes + 8 unused
BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon in this graph
RANGE_TOLERANCE = 1e-3  # slack on [0, 1] for float rounding of a uint8 / 255 conversion

HOW_TO_GET = (
    f"Set {PARAMS_KEY} or the environment variable {ENV_VAR} to a local copy of "
    f"{INCEPTION_WEIGHTS.file_name} (download: {INCEPTION_WEIGHTS.url}), or put it in the torch "
    "hub cache (<torch hub dir>/checkpoints/)."
)


class InceptionWeightsError(RuntimeError):
    """The Inception weights are missing, corrupt or do not fit; the message names the file."""


# One row per BasicConv2d: (name, in_ch, out_ch, kernel (h, w), stride, padding (h, w)).
ConvRow = tuple[str, int, int, tuple[int, int], int, tuple[int, int]]

STEM: tuple[ConvRow, ...] = (
    ("Conv2d_1a_3x3", 3, 32, (3, 3), 2, (0, 0)),
    ("Conv2d_2a_3x3", 32, 32, (3, 3), 1, (0, 0)),
    ("Conv2d_2b_3x3", 32, 64, (3, 3), 1, (1, 1)),
    # 3x3/2 max pool
    ("Conv2d_3b_1x1", 64, 80, (1, 1), 1, (0, 0)),
    ("Conv2d_4a_3x3", 80, 192, (3, 3), 1, (0, 0)),
    # 3x3/2 max pool
)


def inception_a_rows(in_ch: int, pool_features: int) -> tuple[ConvRow, ...]:
    return (
        ("branch1x1", in_ch, 64, (1, 1), 1, (0, 0)),
        ("branch5x5_1", in_ch, 48, (1, 1), 1, (0, 0)),
        ("branch5x5_2", 48, 64, (5, 5), 1, (2, 2)),
        ("branch3x3dbl_1", in_ch, 64, (1, 1), 1, (0, 0)),
        ("branch3x3dbl_2", 64, 96, (3, 3), 1, (1, 1)),
        ("branch3x3dbl_3", 96, 96, (3, 3), 1, (1, 1)),
        ("branch_pool", in_ch, pool_features, (1, 1), 1, (0, 0)),
    )


def inception_b_rows(in_ch: int) -> tuple[ConvRow, ...]:
    return (
        ("branch3x3", in_ch, 384, (3, 3), 2, (0, 0)),
        ("branch3x3dbl_1", in_ch, 64, (1, 1), 1, (0, 0)),
        ("branch3x3dbl_2", 64, 96, (3, 3), 1, (1, 1)),
        ("branch3x3dbl_3", 96, 96, (3, 3), 2, (0, 0)),
    )


def inception_c_rows(in_ch: int, channels_7x7: int) -> tuple[ConvRow, ...]:
    c7 = channels_7x7
    return (
        ("branch1x1", in_ch, 192, (1, 1), 1, (0, 0)),
        ("branch7x7_1", in_ch, c7, (1, 1), 1, (0, 0)),
        ("branch7x7_2", c7, c7, (1, 7), 1, (0, 3)),
        ("branch7x7_3", c7, 192, (7, 1), 1, (3, 0)),
        ("branch7x7dbl_1", in_ch, c7, (1, 1), 1, (0, 0)),
        ("branch7x7dbl_2", c7, c7, (7, 1), 1, (3, 0)),
        ("branch7x7dbl_3", c7, c7, (1, 7), 1, (0, 3)),
        ("branch7x7dbl_4", c7, c7, (7, 1), 1, (3, 0)),
        ("branch7x7dbl_5", c7, 192, (1, 7), 1, (0, 3)),
        ("branch_pool", in_ch, 192, (1, 1), 1, (0, 0)),
    )


def inception_d_rows(in_ch: int) -> tuple[ConvRow, ...]:
    return (
        ("branch3x3_1", in_ch, 192, (1, 1), 1, (0, 0)),
        ("branch3x3_2", 192, 320, (3, 3), 2, (0, 0)),
        ("branch7x7x3_1", in_ch, 192, (1, 1), 1, (0, 0)),
        ("branch7x7x3_2", 192, 192, (1, 7), 1, (0, 3)),
        ("branch7x7x3_3", 192, 192, (7, 1), 1, (3, 0)),
        ("branch7x7x3_4", 192, 192, (3, 3), 2, (0, 0)),
    )


def inception_e_rows(in_ch: int) -> tuple[ConvRow, ...]:
    return (
        ("branch1x1", in_ch, 320, (1, 1), 1, (0, 0)),
        ("branch3x3_1", in_ch, 384, (1, 1), 1, (0, 0)),
        ("branch3x3_2a", 384, 384, (1, 3), 1, (0, 1)),
        ("branch3x3_2b", 384, 384, (3, 1), 1, (1, 0)),
        ("branch3x3dbl_1", in_ch, 448, (1, 1), 1, (0, 0)),
        ("branch3x3dbl_2", 448, 384, (3, 3), 1, (1, 1)),
        ("branch3x3dbl_3a", 384, 384, (1, 3), 1, (0, 1)),
        ("branch3x3dbl_3b", 384, 384, (3, 1), 1, (1, 0)),
        ("branch_pool", in_ch, 192, (1, 1), 1, (0, 0)),
    )


# The mixed blocks as data: (name, kind, in_ch, kind's argument). Output channels:
# A: 224 + pool_features, B: 480 + in, C: 768, D: 512 + in, E: 2048.
MIXED: tuple[tuple[str, str, int, int | None], ...] = (
    ("Mixed_5b", "A", 192, 32),  # pool_features
    ("Mixed_5c", "A", 256, 64),
    ("Mixed_5d", "A", 288, 64),
    ("Mixed_6a", "B", 288, None),
    ("Mixed_6b", "C", 768, 128),  # channels_7x7
    ("Mixed_6c", "C", 768, 160),
    ("Mixed_6d", "C", 768, 160),
    ("Mixed_6e", "C", 768, 192),
    ("Mixed_7a", "D", 768, None),
    ("Mixed_7b", "E-avg", 1280, None),
    ("Mixed_7c", "E-max", 2048, None),
)


def mixed_rows(kind: str, in_ch: int, arg: int | None) -> tuple[ConvRow, ...]:
    """The BasicConv2d rows of one mixed block of ``MIXED``."""
    if kind == "A":
        return inception_a_rows(in_ch, arg)
    if kind == "B":
        return inception_b_rows(in_ch)
    if kind == "C":
        return inception_c_rows(in_ch, arg)
    if kind == "D":
        return inception_d_rows(in_ch)
    if kind in ("E-avg", "E-max"):
        return inception_e_rows(in_ch)
    raise ValueError(f"unknown mixed block kind {kind!r}")


NUM_BASIC_CONVS = 94  # 5 stem + 3 x 7 (A) + 4 (B) + 4 x 10 (C) + 6 (D) + 2 x 9 (E)
TENSORS_PER_CONV = 5  # conv.weight, bn.{weight, bias, running_mean, running_var}
NUM_STATE_KEYS = NUM_BASIC_CONVS * TENSORS_PER_CONV + 2  # + fc.weight, fc.bias = 472


def tf_avg_pool3x3(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 'same' average pool that averages only the pixels inside the image, as
    TensorFlow's does (torch's default would count the zero padding and darken the border)."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def max_pool3x3_same(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 'same' max pool (Mixed_7c's pool branch in the 2015 TF graph)."""
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


# ---------------------------------------------------------------------------------------------
# blocks


class FrozenBatchNorm2d(nn.Module):
    """Inference-only batch norm: ``(x - running_mean) / sqrt(running_var + eps) * weight + bias``."""

    def __init__(self, channels: int, *, eps: float = BN_EPS):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(channels), requires_grad=False)
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            training=False, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class BasicConv2d(nn.Module):
    """conv (no bias) -> frozen batch norm -> ReLU; state keys ``conv.weight``, ``bn.*``."""

    def __init__(self, in_ch: int, out_ch: int, kernel: tuple[int, int], stride: int,
                 padding: tuple[int, int]):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=False)
        self.bn = FrozenBatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class _Mixed(nn.Module):
    """A mixed block: its BasicConv2d's are attributes named as in the weight file."""

    def __init__(self, rows: tuple[ConvRow, ...]):
        super().__init__()
        for name, in_ch, out_ch, kernel, stride, padding in rows:
            self.add_module(name, BasicConv2d(in_ch, out_ch, kernel, stride, padding))


class InceptionA(_Mixed):
    """35x35 block: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | TF avg pool-1x1."""

    def __init__(self, in_ch: int, pool_features: int):
        super().__init__(inception_a_rows(in_ch, pool_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(tf_avg_pool3x3(x))
        return torch.cat([b1, b5, b3, bp], dim=1)


class InceptionB(_Mixed):
    """35 -> 17 grid reduction: 3x3/2 | 1x1-3x3-3x3/2 | 3x3/2 max pool (input passed through)."""

    def __init__(self, in_ch: int):
        super().__init__(inception_b_rows(in_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        b3d = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b3d, bp], dim=1)


class InceptionC(_Mixed):
    """17x17 block with factorised 7x7 convolutions (1x7 and 7x1) | TF avg pool-1x1."""

    def __init__(self, in_ch: int, channels_7x7: int):
        super().__init__(inception_c_rows(in_ch, channels_7x7))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7d = x
        for name in ("branch7x7dbl_1", "branch7x7dbl_2", "branch7x7dbl_3", "branch7x7dbl_4",
                     "branch7x7dbl_5"):
            b7d = getattr(self, name)(b7d)
        bp = self.branch_pool(tf_avg_pool3x3(x))
        return torch.cat([b1, b7, b7d, bp], dim=1)


class InceptionD(_Mixed):
    """17 -> 8 grid reduction: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | 3x3/2 max pool."""

    def __init__(self, in_ch: int):
        super().__init__(inception_d_rows(in_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = x
        for name in ("branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3", "branch7x7x3_4"):
            b7 = getattr(self, name)(b7)
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], dim=1)


class InceptionE(_Mixed):
    """8x8 block with split 1x3 / 3x1 heads; ``pool`` picks the pool branch: "avg" (TF average,
    Mixed_7b) or "max" (Mixed_7c)."""

    def __init__(self, in_ch: int, *, pool: str):
        if pool not in ("avg", "max"):
            raise ValueError(f"pool: expected 'avg' or 'max', got {pool!r}")
        super().__init__(inception_e_rows(in_ch))
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], dim=1)
        b3d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        b3d = torch.cat([self.branch3x3dbl_3a(b3d), self.branch3x3dbl_3b(b3d)], dim=1)
        pooled = tf_avg_pool3x3(x) if self.pool == "avg" else max_pool3x3_same(x)
        bp = self.branch_pool(pooled)
        return torch.cat([b1, b3, b3d, bp], dim=1)

    def extra_repr(self) -> str:
        return f"pool={self.pool!r}"


def _make_mixed(kind: str, in_ch: int, arg: int | None) -> nn.Module:
    if kind == "A":
        return InceptionA(in_ch, arg)
    if kind == "C":
        return InceptionC(in_ch, arg)
    if kind in ("E-avg", "E-max"):
        return InceptionE(in_ch, pool=kind[2:])
    return {"B": InceptionB, "D": InceptionD}[kind](in_ch)


# ---------------------------------------------------------------------------------------------
# the network


class FIDInceptionV3(nn.Module):
    """pytorch-fid's FID Inception-v3; frozen and always in eval mode.

    ``forward(x)``: x (B, 3, H, W) float RGB in [0, 1] (any H, W; resized to 299x299) ->
    pool3 features (B, 2048), float32 on x's device.
    """

    def __init__(self):
        super().__init__()
        for name, in_ch, out_ch, kernel, stride, padding in STEM:
            self.add_module(name, BasicConv2d(in_ch, out_ch, kernel, stride, padding))
        for name, kind, in_ch, arg in MIXED:
            self.add_module(name, _make_mixed(kind, in_ch, arg))
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)  # in the file; unused by FID
        self.weights_source = "random-init"  # replaced by load_fid_inception
        self.weights_sha256 = ""
        self.apply(self._init_weights)
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.01)
            nn.init.zeros_(module.bias)

    def train(self, mode: bool = True) -> "FIDInceptionV3":
        return super().train(False)  # frozen: never leaves eval mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"FIDInceptionV3: expected (B, 3, H, W) RGB, got shape {tuple(x.shape)}")
        lo, hi = x.detach().aminmax()
        if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
            raise ValueError(f"FIDInceptionV3: input must be RGB in [0, 1] (uint8 / 255), got range "
                             f"[{float(lo):.3f}, {float(hi):.3f}]")
        x = F.interpolate(x.float(), size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear",
                          align_corners=False)
        x = 2 * x - 1  # [0, 1] -> [-1, 1], the TF graph's input range
        x = self.Conv2d_1a_3x3(x)  # (B, 32, 149, 149)
        x = self.Conv2d_2a_3x3(x)  # (B, 32, 147, 147)
        x = self.Conv2d_2b_3x3(x)  # (B, 64, 147, 147)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (B, 64, 73, 73)
        x = self.Conv2d_3b_1x1(x)  # (B, 80, 73, 73)
        x = self.Conv2d_4a_3x3(x)  # (B, 192, 71, 71)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (B, 192, 35, 35)
        for name, *_ in MIXED:  # 5b-5d (B, 288, 35, 35), 6a-6e (B, 768, 17, 17), 7a-7c (B, 2048, 8, 8)
            x = getattr(self, name)(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)  # (B, 2048)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        return f"weights_source={self.weights_source!r}"


def expected_state_shapes() -> dict[str, tuple[int, ...]]:
    """Every key of the FID weight file (without ``num_batches_tracked``) and its shape, from
    the layer tables above; 472 keys."""
    shapes: dict[str, tuple[int, ...]] = {}

    def add(prefix: str, rows: tuple[ConvRow, ...]) -> None:
        for name, in_ch, out_ch, kernel, _, _ in rows:
            shapes[f"{prefix}{name}.conv.weight"] = (out_ch, in_ch, *kernel)
            for tensor in ("weight", "bias", "running_mean", "running_var"):
                shapes[f"{prefix}{name}.bn.{tensor}"] = (out_ch,)

    add("", STEM)
    for name, kind, in_ch, arg in MIXED:
        add(f"{name}.", mixed_rows(kind, in_ch, arg))
    shapes["fc.weight"] = (NUM_CLASSES, FEATURE_DIM)
    shapes["fc.bias"] = (NUM_CLASSES,)
    assert len(shapes) == NUM_STATE_KEYS
    return shapes


def optional_state_keys() -> set[str]:
    """The ``<conv>.bn.num_batches_tracked`` counters a file saved from ``nn.BatchNorm2d`` holds."""
    return {k[: -len("running_mean")] + "num_batches_tracked"
            for k in expected_state_shapes() if k.endswith(".bn.running_mean")}


# ---------------------------------------------------------------------------------------------
# weights: load, resolve, download


def load_fid_inception(path: str | os.PathLike) -> FIDInceptionV3:
    """A frozen :class:`FIDInceptionV3` holding the weights of ``path``.

    Checks, each failing with an :class:`InceptionWeightsError` naming the file: a name
    ``...-<hex>.pth`` must have a sha256 starting with <hex> (so the genuine file must start
    with 6726825d); the key set must equal :func:`expected_state_shapes` (plus, optionally, the
    94 ``num_batches_tracked`` counters, which are ignored); every shape must match.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise InceptionWeightsError(f"{path}: Inception weights not found. {HOW_TO_GET}")
    state, digest = load_state_dict_file(path, error=InceptionWeightsError, url=INCEPTION_WEIGHTS.url,
                                         how_to_get=HOW_TO_GET)
    expected = expected_state_shapes()
    keys = set(state)
    missing = sorted(set(expected) - keys)
    unexpected = sorted(keys - set(expected) - optional_state_keys())
    if missing or unexpected:
        raise InceptionWeightsError(
            f"{path}: not pytorch-fid's Inception state dict: {len(missing)} missing keys "
            f"{missing[:6]}, {len(unexpected)} unexpected keys {unexpected[:6]}. {HOW_TO_GET}")
    wrong = [f"{k} {tuple(state[k].shape)} (expected {shape})"
             for k, shape in expected.items() if tuple(state[k].shape) != shape]
    if wrong:
        raise InceptionWeightsError(f"{path}: {len(wrong)} tensors have the wrong shape: "
                                    f"{'; '.join(wrong[:6])}. {HOW_TO_GET}")

    model = FIDInceptionV3()
    own = model.state_dict()
    assert set(own) == set(expected) and len(own) == NUM_STATE_KEYS
    with torch.no_grad():
        for key, target in own.items():
            target.copy_(state[key].to(target.dtype))
    model.weights_source = str(path)
    model.weights_sha256 = digest
    return model


def resolve_inception_weights(path: str | os.PathLike | None) -> tuple[Path | None, str]:
    """Where the FID weights are: ``(path, "")``, or ``(None, reason)`` when there are none.

    Looks, in order, at ``path`` (``evaluate.inception_weights``), the environment variable
    INPAINTFLOW_INCEPTION_WEIGHTS and ``<torch hub dir>/checkpoints/<file name>`` (by default
    ``~/.cache/torch/hub/checkpoints``). A path given explicitly that is not a file is not
    replaced by a later one: its reason names it. Checks existence only (the checksum is
    verified by :func:`load_fid_inception`); never downloads.
    """
    for given, origin in ((path, PARAMS_KEY), (os.environ.get(ENV_VAR) or None, ENV_VAR)):
        if given:
            candidate = Path(given).expanduser()
            if candidate.is_file():
                return candidate, ""
            return None, (f"Inception weights {candidate} (from {origin}) not found: point it at "
                          f"a local copy of {INCEPTION_WEIGHTS.file_name} "
                          f"(download: {INCEPTION_WEIGHTS.url})")
    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS.file_name
    if cached.is_file():
        return cached, ""
    return None, (f"no Inception weights: set {PARAMS_KEY} or {ENV_VAR} to a local copy of "
                  f"{INCEPTION_WEIGHTS.file_name} (download: {INCEPTION_WEIGHTS.url}); "
                  f"also looked for {cached}")

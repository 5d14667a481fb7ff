"""The dataset registry: where each paper's data comes from, how it is cropped and split.

Every spec states its rule as the papers state it, so a prepared dataset is the paper's dataset
(or, for ``synthetic-faces``, an offline stand-in for CelebA). Pure data and pure functions;
the work happens in :mod:`inpaintflow.tasks.data.prepare`.

Split rules are functions of the *sorted* list of source items, so a split is deterministic
and recorded in the manifest. ``count`` in params caps each split (the first N of it), so a
small run still uses the paper's own test images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal, Sequence

from inpaintflow.tasks.data.download import Checksum

SourceKind = Literal["generated", "download", "local", "manual"]
CropRule = Literal["none", "center-square", "dcgan-108"]


@dataclass(frozen=True)
class RemoteFile:
    url: str
    checksum: Checksum
    filename: str
    split: str | None = None  # the split this file holds (SVHN, Places), None = split by rule


# A split rule maps the sorted relative source names to one split name each.
SplitFn = Callable[[Sequence[str]], list[str]]


def split_last(test: int, val: int = 0) -> SplitFn:
    """The last ``test`` items are test, the ``val`` before them validation, the rest train."""

    def assign(names: Sequence[str]) -> list[str]:
        n = len(names)
        if n < test + val + 1:
            raise ValueError(f"split rule needs more than {test + val} items, the source has {n}")
        return ["train"] * (n - test - val) + ["val"] * val + ["test"] * test

    return assign


def split_by_folder(mapping: dict[str, str]) -> SplitFn:
    """Split by the first path component (``val_256/…`` -> test).

    Files outside the mapped folders get ``""``: they are skipped and listed in the report.
    """

    def assign(names: Sequence[str]) -> list[str]:
        return [mapping.get(name.split("/", 1)[0], "") for name in names]

    return assign


def split_from_file(names: Sequence[str]) -> list[str]:
    """Placeholder rule for specs whose files carry their split (``RemoteFile.split``)."""
    raise AssertionError("split_from_file is resolved per file in inpaintflow.tasks.data.prepare")


def split_fraction(test_fraction: float) -> SplitFn:
    def assign(names: Sequence[str]) -> list[str]:
        n_test = max(1, round(len(names) * test_fraction))
        return split_last(n_test)(names)

    return assign


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    kind: SourceKind
    crop: CropRule
    splits: dict[str, SplitFn]  # named rules; the first is the default
    files: tuple[RemoteFile, ...] = ()
    obtain: str = ""  # where to get the data: shown in every "source missing" error
    allowed_sizes: tuple[int, ...] | None = None
    papers: tuple[str, ...] = ()

    @property
    def default_split(self) -> str:
        return next(iter(self.splits))


_PLACES_FILES = (
    RemoteFile("http://data.csail.mit.edu/places/places365/train_256_places365standard.tar",
               Checksum.md5("53ca1c756c3d1e7809517cc47c5561c5"),
               "train_256_places365standard.tar", split="train"),
    RemoteFile("http://data.csail.mit.edu/places/places365/val_256.tar",
               Checksum.md5("e27b17d8d44f4af9a78502beb927f808"), "val_256.tar", split="test"),
)
_PLACES_OBTAIN = ("Places365-Standard 256x256 archives from http://places2.csail.mit.edu "
                  "(train_256_places365standard.tar, val_256.tar); downloaded automatically, or "
                  "pass --source with a folder holding data_256/ and val_256/.")

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec(
            name="synthetic-faces",
            description="Procedural face-like images (the embedded default; offline CelebA stand-in). "
                        "Train and test are independent seeded streams; attributes saved as <id>.json.",
            kind="generated", crop="none",
            splits={"streams": split_from_file},
        ),
        DatasetSpec(
            name="celeba",
            description="CelebA aligned & cropped (img_align_celeba, 178x218): DCGAN centre crop "
                        "108x108, then resize (Yeh et al. 2017 via carpedm20/DCGAN-tensorflow).",
            kind="download", crop="dcgan-108",
            splits={
                # paper 001 s3.1: 2,000 validation and 2,000 test, all others train
                "yeh2017": split_last(test=2000, val=2000),
                # paper 002 s4: 201,599 train and 1,000 test
                "vitoria2018": split_last(test=1000),
            },
            files=(RemoteFile("https://drive.google.com/uc?export=download&id=0B7EVK8r0v71pZjFTYXZWM3FlRnM",
                              Checksum.md5("00d2c5bc6d35e252742224ab0c1e8fcb"), "img_align_celeba.zip"),),
            obtain="img_align_celeba.zip from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html "
                   "(Google Drive asks for a confirmation on large files: download it in a browser "
                   "and pass --source img_align_celeba.zip).",
            papers=("refinement", "iwgan"),
        ),
        DatasetSpec(
            name="celeba-hq",
            description="CelebA-HQ (Karras et al. 2018), 30,000 images; last 3,000 test (papers 000, 004).",
            kind="local", crop="center-square",
            splits={"last3000": split_last(test=3000)},
            obtain="CelebA-HQ is not distributed as one archive: build it with "
                   "https://github.com/tkarras/progressive_growing_of_gans (dataset_tool.py) or use a "
                   "copy of data1024x1024/, and pass --source FOLDER_OR_ARCHIVE.",
            allowed_sizes=(256, 512, 1024),
            papers=("rmnet", "regionwise", "gla"),
        ),
        DatasetSpec(
            name="svhn",
            description="SVHN cropped digits (train_32x32.mat, test_32x32.mat), resized to 64x64 (paper 002).",
            kind="download", crop="none",
            splits={"official": split_from_file},
            files=(
                RemoteFile("http://ufldl.stanford.edu/housenumbers/train_32x32.mat",
                           Checksum.md5("e26dedcc434d2e4c54c9b2d4a06d8373"), "train_32x32.mat", "train"),
                RemoteFile("http://ufldl.stanford.edu/housenumbers/test_32x32.mat",
                           Checksum.md5("eb5a983be6a315427106f1b164d9cef3"), "test_32x32.mat", "test"),
            ),
            obtain="http://ufldl.stanford.edu/housenumbers/ (format 2, cropped digits).",
            papers=("iwgan",),
        ),
        DatasetSpec(
            name="places2", description="Places2 = Places365-Standard 256x256; val_256 is the test split.",
            kind="download", crop="center-square",
            splits={"official": split_by_folder({"data_256": "train", "val_256": "test"})},
            files=_PLACES_FILES, obtain=_PLACES_OBTAIN, papers=("rmnet", "regionwise"),
        ),
        DatasetSpec(
            name="places365", description="Places365-Standard 256x256 (paper 004); val_256 is the test split.",
            kind="download", crop="center-square",
            splits={"official": split_by_folder({"data_256": "train", "val_256": "test"})},
            files=_PLACES_FILES, obtain=_PLACES_OBTAIN, papers=("gla",),
        ),
        DatasetSpec(
            name="paris-streetview",
            description="Paris StreetView (Doersch et al.): 14,900 train and 100 test images.",
            kind="manual", crop="center-square",
            splits={"official": split_by_folder({"paris_train_original": "train", "paris_eval_gt": "test"})},
            obtain="Paris StreetView is given out on request by the Context Encoders authors "
                   "(Pathak et al., https://github.com/pathak22/context-encoder): pass --source with "
                   "the folder holding paris_train_original/ and paris_eval_gt/.",
            papers=("rmnet", "regionwise"),
        ),
        DatasetSpec(
            name="imagenet",
            description="ImageNet ILSVRC2012; the official validation set is the test split (paper 004).",
            kind="manual", crop="center-square",
            splits={"official": split_by_folder({"train": "train", "val": "test"})},
            obtain="ImageNet needs an account at https://image-net.org (ILSVRC2012 train and val): "
                   "pass --source with a folder holding train/ and val/.",
            papers=("gla",),
        ),
        DatasetSpec(
            name="folder",
            description="Any local folder, archive, or http(s) archive URL with --sha256; "
                        "the last 10% (sorted by path) is the test split.",
            kind="local", crop="center-square",
            splits={"last10pct": split_fraction(0.1), "all-test": lambda names: ["test"] * len(names),
                    "all-train": lambda names: ["train"] * len(names)},
            obtain="pass --source PATH_OR_URL (and --sha256 for a URL).",
        ),
    ]
}


def get_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]

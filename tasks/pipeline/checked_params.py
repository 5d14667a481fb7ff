"""params.yaml checked against the steps' registries.

The ground (:mod:`inpaintflow.params`) checks each entry's shape: keys, types, ranges, and the
cross-references between groups. The names an entry gives to something a step owns (a dataset,
a mask family, a model, an inpainting method) are checked here, against that step's own
registry, so that the ground imports nothing above it. Same calls as the ground, with the
registry checks added: :func:`load_step`, :func:`load_entry`, :func:`validate_file`; errors are
:class:`~inpaintflow.params.ParamsError` naming the dotted key.
"""

from __future__ import annotations

from pathlib import Path

from inpaintflow import params as ground
from inpaintflow.params import (DEFAULT_PARAMS, DatasetParams, MaskSetParams, ParamsError, Profile, Profiled,
                                TrainParams, TrainProfiled)

IMPORTED_FAMILIES = ("quickdraw", "nvidia")


def check_dataset(p: DatasetParams) -> None:
    """The dataset is in the registry, and size, count and split fit its spec (ValueError)."""
    from inpaintflow.tasks.data.datasets import DATASETS  # local: the registry imports cv2

    if p.dataset not in DATASETS:
        raise ValueError(f"unknown dataset {p.dataset!r}; known: {', '.join(sorted(DATASETS))}")
    spec = DATASETS[p.dataset]
    if spec.kind == "generated" and p.count is None:
        raise ValueError(f"dataset {p.dataset!r} is generated: set `count`")
    if spec.allowed_sizes and p.size not in spec.allowed_sizes:
        raise ValueError(f"dataset {p.dataset!r} comes in sizes {spec.allowed_sizes}, not {p.size}")
    if p.split is not None and p.split not in spec.splits:
        raise ValueError(f"dataset {p.dataset!r} has no split rule {p.split!r}; known: {', '.join(spec.splits)}")


def check_mask_set(p: MaskSetParams) -> None:
    """The family is a generator or an importer, and its bins parse (ValueError)."""
    from inpaintflow.tasks.masks.generators import FAMILIES, parse_ratio_bin

    if p.family not in FAMILIES and p.family not in IMPORTED_FAMILIES:
        raise ValueError(f"unknown mask family {p.family!r}; known: "
                         f"{', '.join(sorted(FAMILIES) + list(IMPORTED_FAMILIES))}")
    for text in p.bins or []:
        parse_ratio_bin(text)
    if p.family in IMPORTED_FAMILIES and not p.source:
        raise ValueError(f"family {p.family!r} imports masks: set `source`")


def check_train(p: TrainParams) -> None:
    from inpaintflow.models import RECIPES

    if p.model not in RECIPES:
        raise ValueError(f"model: unknown model {p.model!r}; known: {', '.join(RECIPES)}")


def model_file(model: str) -> str:
    """The file of a model's module, as dvc.yaml and params.yaml name it (``models/rmnet.py``)."""
    from inpaintflow.models import RECIPES

    return RECIPES[model][0].removeprefix("inpaintflow.").replace(".", "/") + ".py"


def check_train_entry(entry: TrainProfiled) -> None:
    for profile in (entry.demo, entry.paper):
        if entry.code != model_file(profile.model):
            raise ValueError(f"code: {entry.code!r} is not the file of model {profile.model!r} "
                             f"({model_file(profile.model)})")


CHECKS = {"data": check_dataset, "masks": check_mask_set, "train": check_train}
ENTRY_CHECKS = {"train": check_train_entry}


def _failed(path: Path, key: str, exc: ValueError) -> ParamsError:
    return ParamsError(f"{path}: invalid parameters\n  {key}: {exc}")


def _check(step: str, name: str, value, path: Path, profile: str) -> None:
    check = CHECKS.get(step)
    if check is not None:
        try:
            check(value)
        except ValueError as exc:
            raise _failed(path, f"{step}.{name}.{profile}", exc) from None


def load_step(step: str, name: str, path: Path = DEFAULT_PARAMS, profile: Profile | None = None):
    """:func:`inpaintflow.params.load_step`, with the entry's names checked against the registries."""
    path = Path(path)
    value = ground.load_step(step, name, path, profile)
    _check(step, name, value, path, profile or ground.active_profile(ground.read_yaml(path), path))
    return value


def load_entry(step: str, name: str, path: Path = DEFAULT_PARAMS):
    """:func:`inpaintflow.params.load_entry`, every profile checked against the registries."""
    path = Path(path)
    entry = ground.load_entry(step, name, path)
    if isinstance(entry, Profiled):
        for profile in ("demo", "paper"):
            _check(step, name, getattr(entry, profile), path, profile)
    if step in ENTRY_CHECKS:
        try:
            ENTRY_CHECKS[step](entry)
        except ValueError as exc:
            raise _failed(path, f"{step}.{name}", exc) from None
    return entry


def check_methods(path: Path) -> None:
    """Each experiment's method can run the model its training run trains."""
    from inpaintflow.tasks.inpaint.batch import FEED_FORWARD_MODELS, LATENT_MODELS

    raw = ground.read_yaml(path)
    for name, entry in (raw.get("inpaint") or {}).items():
        run = (raw.get("train") or {}).get(entry.get("run"), {})
        for profile in ("demo", "paper"):
            method = (entry.get(profile) or {}).get("method")
            model = (run.get(profile) or {}).get("model")
            ok = model in FEED_FORWARD_MODELS if method == "feed-forward" else LATENT_MODELS.get(method) == model
            if not ok:
                raise ParamsError(f"{path}: inpaint.{name}.{profile}.method: {method!r} cannot run "
                                  f"train.{entry.get('run')} (model {model!r})")


def validate_file(path: Path = DEFAULT_PARAMS) -> dict[str, list[str]]:
    """:func:`inpaintflow.params.validate_file`, then every entry against the registries."""
    path = Path(path)
    names = ground.validate_file(path)
    for step in CHECKS.keys() | ENTRY_CHECKS.keys():
        for name in names.get(step, []):
            load_entry(step, name, path)
    check_methods(path)
    return names

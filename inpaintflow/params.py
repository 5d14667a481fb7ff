"""params.yaml, validated on load.

params.yaml is grouped by pipeline step (``data``, ``masks``, ``train``, ``inpaint``,
``evaluate``, ``tables``). Each step reads only its own group through
:func:`load_step`. Inside a group every entry names an artefact (a dataset or a mask set that
the papers' pipelines consume) and says how to build it under each *profile*:

    profile: demo            # the active profile: demo (CPU, offline) or paper (real scale)
    data:
      celeba-64:             # an artefact, built into data/datasets/celeba-64/
        demo:  {dataset: synthetic-faces, size: 64, count: 600, seed: 0, ...}
        paper: {dataset: celeba, size: 64, split: yeh2017, ...}

So a DVC stage has a fixed name and output path, ``dvc exp run -S profile=paper`` switches
every stage to the paper's data, and a typo anywhere fails with the full dotted key.

This module is the ground floor: it imports nothing of the project above it. It checks each
entry's shape and the references between groups; the names an entry gives to something a step
owns (a dataset, a mask family, a model, a method) are checked against that step's registry by
:mod:`inpaintflow.tasks.pipeline.checked_params`, which the command line loads params through.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Profile = Literal["demo", "paper"]
DEFAULT_PARAMS = Path("params.yaml")


class ParamsError(ValueError):
    """params.yaml is missing, malformed or holds a bad value; the message names the key."""


class _Strict(BaseModel):
    # extra="forbid": a misspelt key is an error, never a silently ignored default
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetParams(_Strict):
    """How to build one dataset artefact (``inpaintflow data prepare``)."""

    dataset: str = Field(description="a name from the dataset registry (tasks/data/datasets.py)")
    size: int = Field(gt=0, description="output side length in pixels (square images)")
    count: int | dict[str, int] | None = Field(
        default=None, description="images per split: one cap for every split, or {split: N}; "
                                  "synthetic-faces generates exactly this many")
    split: str | None = Field(default=None, description="named split rule of the dataset spec")
    seed: int = Field(default=0, description="generator seed (synthetic-faces)")
    source: str | None = Field(default=None, description="local path or URL of the data")
    sha256: str | None = Field(default=None, description="expected sha256 of an archive URL")

    @field_validator("sha256")
    @classmethod
    def _hex(cls, v: str | None) -> str | None:
        if v is not None and (len(v) != 64 or any(c not in "0123456789abcdef" for c in v.lower())):
            raise ValueError("must be 64 hexadecimal characters")
        return v.lower() if v else v

    @model_validator(mode="after")
    def _counts(self) -> "DatasetParams":
        counts = self.count.values() if isinstance(self.count, dict) else [self.count]
        if any(c is not None and c <= 0 for c in counts):
            raise ValueError("count must be positive")
        return self


class MaskSetParams(_Strict):
    """How to build one fixed evaluation mask set (``inpaintflow masks make|import``)."""

    family: str = Field(description="a generator from tasks/masks/generators.py, or quickdraw / nvidia to import")
    size: int = Field(gt=0)
    count: int = Field(gt=0, description="masks per ratio bin (imports: at most this many per bin)")
    bins: list[str] | None = Field(default=None, description='hole-ratio bins "lo-hi"; None = fixed-ratio pattern')
    seed: int = 0
    source: str | None = Field(default=None, description="archive/folder to import (quickdraw, nvidia)")
    sha256: str | None = None


class TrainParams(_Strict):
    """How to train one paper's model (``inpaintflow train``); see tasks/train/engine.py."""

    model: str = Field(description="a key of models.RECIPES")
    steps: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    size: int = Field(gt=0)
    seed: int = 0
    checkpoint_every: int = Field(default=500, gt=0)
    preview_every: int = Field(default=500, gt=0)
    log_every: int = Field(default=10, gt=0)
    val_every: int = Field(default=0, ge=0, description="validation curve every N steps (0: none)")
    val_images: int = Field(default=16, ge=0, description="fixed validation batch size")
    val_latent_steps: int = Field(default=100, ge=0, description="GANs: latent steps per validation fill")
    tiny: bool = Field(default=False, description="start from the paper's Config.tiny() (CPU demo)")
    model_config_overrides: dict[str, Any] = Field(default_factory=dict, alias="model_config",
                                                   description="overrides of the paper's Config")
    allow_random_vgg: bool = Field(default=False, description="random VGG-19 when no weights (demo)")
    vgg_weights: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, protected_namespaces=())


class Profiled(_Strict):
    """One artefact, described once per profile."""

    demo: Any
    paper: Any


class DataProfiled(Profiled):
    demo: DatasetParams
    paper: DatasetParams


class MasksProfiled(Profiled):
    demo: MaskSetParams
    paper: MaskSetParams


class TrainProfiled(Profiled):
    data: str = Field(description="the data artefact it trains on (a key of the data group)")
    code: str = Field(description="the model's file, a DVC dependency of the stage")
    demo: TrainParams
    paper: TrainParams


class InpaintParams(_Strict):
    """How to run one experiment (``inpaintflow inpaint``); see tasks/inpaint/batch.py."""

    method: Literal["feed-forward", "yeh", "yeh-refine", "vitoria"]
    limit: int | None = Field(default=None, gt=0, description="test images per hole-ratio bin (None: all)")
    batch_size: int = Field(default=16, gt=0)
    seed: int = Field(default=0, description="seeds each image's initial latent z_0 (latent methods)")
    steps: int | None = Field(default=None, gt=0, description="latent-optimisation steps (None: the paper's)")
    refine_steps: int | None = Field(default=None, gt=0, description="paper 001's refinement steps (None: the paper's)")
    loss_weights: dict[Literal["alpha", "beta", "eta"], float] | None = Field(
        default=None, description="paper 002's loss weights (None: the paper's)")
    mu: float | None = Field(default=None, ge=0, description="paper 001's consensus weight (None: per pattern)")
    blend_operator: Literal["five-point", "paper001-3x3"] = "five-point"

    @model_validator(mode="after")
    def _method_options(self) -> "InpaintParams":
        if self.refine_steps is not None and self.method != "yeh-refine":
            raise ValueError("refine_steps: only the yeh-refine method has a refinement pass")
        if self.loss_weights is not None and self.method != "vitoria":
            raise ValueError("loss_weights: only the vitoria method (paper 002) has alpha, beta, eta")
        if self.steps is not None and self.method == "feed-forward":
            raise ValueError("steps: a feed-forward model has no optimisation steps")
        return self


BASELINE_NAMES = ("telea", "navier-stokes", "mean-fill")


class InpaintProfiled(Profiled):
    """One experiment: a trained run on a test split with a fixed mask set."""

    paper_id: str = Field(description="the paper whose tables it fills (a tables entry: rmnet, refinement, ...); "
                                      "its outputs live under runs/<step>/<paper_id>/")
    run: str = Field(description="the train entry whose checkpoint it uses")
    data: str = Field(description="the data artefact whose test split it inpaints")
    masks: str = Field(description="the mask set artefact")
    paper: InpaintParams
    demo: InpaintParams
    label: str = Field(description="the method's row label in the paper's table (e.g. 'R-MNet-0.4')")
    setting: str | None = Field(default=None, description="the ablation row it reproduces (e.g. '1500+1500')")
    baselines: list[Literal["telea", "navier-stokes", "mean-fill"]] = Field(
        default_factory=list, description="classical baselines run on the same pairs")


class EvaluateParams(_Strict):
    """How to score results (``inpaintflow evaluate``); metric definitions: tasks/evaluate/metrics.py."""

    batch_size: int = Field(default=32, gt=0)
    inception_weights: str | None = Field(
        default=None, description="pt_inception-2015-12-05-6726825d.pth for FID (None: look in the "
                                  "usual places; FID is n/a when absent)")


class EvaluateProfiled(Profiled):
    demo: EvaluateParams
    paper: EvaluateParams


class TableProfiled(_Strict):
    """One paper's tables (``inpaintflow table``). Its experiments are the inpaint entries whose
    ``paper_id`` names it, in params order: filled in on load, never written here (one place)."""

    experiments: list[str] = Field(default_factory=list, description="derived: inpaint entries with this paper_id")
    labels: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="per table id: experiment label -> the name that table prints")


# Paper ids (used in params, DVC stages, results/<paper>/ and the CLI) -> the number of the paper's
# text in shared/papers/ (references/papers.yaml cites its lines).
PAPERS = {"rmnet": "000", "refinement": "001", "iwgan": "002", "regionwise": "003", "gla": "004"}


def _all_papers() -> list[str]:
    return list(PAPERS)


class Tolerances(_Strict):
    """How far each metric may move the wrong way before a nightly run fails, in the metric's own
    units (tasks/evaluate/metrics.py: mae on 0..255, mse on 0..255^2, l1 and l2 on [0, 1]); ``hole_<m>``
    uses the tolerance of ``<m>``. Which way is wrong: inpaintflow.tasks.evaluate.metrics.HIGHER_IS_BETTER."""

    psnr: float = Field(default=0.5, ge=0, description="largest allowed drop, dB")
    ssim: float = Field(default=0.01, ge=0, description="largest allowed drop")
    mae: float = Field(default=1.0, ge=0, description="largest allowed rise, 0..255 scale")
    mse: float = Field(default=25.0, ge=0, description="largest allowed rise, 0..255^2 scale")
    l1: float = Field(default=0.004, ge=0, description="largest allowed rise (mae / 255)")
    l2: float = Field(default=0.0004, ge=0, description="largest allowed rise (mse / 255^2)")
    fid: float = Field(default=1.0, ge=0, description="largest allowed rise")


class NightlyParams(_Strict):
    """Scheduled retraining (flows/nightly.py, Prefect deployment ``nightly-retrain``). No DVC
    stage lists these keys, so editing them retrains nothing."""

    papers: list[str] = Field(default_factory=_all_papers, min_length=1,
                              description="paper ids reproduced in order (`dvc repro table@<paper>`)")
    cron: str = Field(default="0 2 * * *", description="when the deployment runs (5-field cron)")
    timezone: str = Field(default="UTC", description="IANA time zone of `cron` and of the branch date")
    tolerances: Tolerances = Field(default_factory=Tolerances)
    branch_prefix: str = Field(default="nightly/", description="results are committed on <prefix>YYYY-MM-DD")
    push: bool = Field(default=True, description="`dvc push` to the default remote after a passing run")

    @field_validator("papers")
    @classmethod
    def _known_papers(cls, v: list[str]) -> list[str]:
        known = _all_papers()
        for paper in v:
            if paper not in known:
                raise ValueError(f"unknown paper {paper!r}; known: {', '.join(known)}")
        if len(set(v)) != len(v):
            raise ValueError("a paper is listed twice")
        return v

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        # Prefect's own check (lazy: params must stay importable without Prefect); "@daily" is
        # refused too, so that every schedule reads the same way in params.yaml and prefect.yaml
        from prefect.schedules import validate_cron_string

        if len(v.split()) != 5:
            raise ValueError(f"{v!r}: expected 5 fields (minute hour day-of-month month day-of-week)")
        return validate_cron_string(v)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}; use an IANA name such as UTC or Europe/London") from None
        return v

    @field_validator("branch_prefix")
    @classmethod
    def _ref(cls, v: str) -> str:
        # the subset of `git check-ref-format` rules a prefix can break on its own
        bad = [c for c in " ~^:?*[\\" if c in v]
        if not v or bad or ".." in v or "//" in v or v.startswith(("/", "-", ".")) or "@{" in v:
            raise ValueError(f"{v!r} cannot start a git branch name (no spaces, ~^:?*[\\, '..', '//')")
        return v


STEP_MODELS: dict[str, type[_Strict]] = {"data": DataProfiled, "masks": MasksProfiled, "train": TrainProfiled,
                                         "inpaint": InpaintProfiled, "tables": TableProfiled}
# one entry: the group itself; profiled groups resolve to the active profile
FLAT_GROUPS: dict[str, type[_Strict]] = {"evaluate": EvaluateProfiled, "nightly": NightlyParams}


def _format_error(path: Path, prefix: tuple[str, ...], err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in (*prefix, *e["loc"]))
        lines.append(f"  {key}: {e['msg']}")
    return f"{path}: invalid parameters\n" + "\n".join(lines)


def read_yaml(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: parameters file not found (run from the project root, or pass --params)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: top level must be a mapping of step groups")
    return raw


def active_profile(raw: dict[str, Any], path: Path) -> Profile:
    profile = raw.get("profile", "demo")
    if profile not in ("demo", "paper"):
        raise ParamsError(f"{path}: profile: must be 'demo' or 'paper', got {profile!r}")
    return profile


def load_step(step: str, name: str, path: Path = DEFAULT_PARAMS, profile: Profile | None = None):
    """Validated params of artefact ``name`` in step group ``step`` under the active profile.

    >>> load_step("data", "celeba-64")      # doctest: +SKIP
    DatasetParams(dataset='synthetic-faces', size=64, ...)
    """
    path = Path(path)
    raw = read_yaml(path)
    profile = profile or active_profile(raw, path)
    model = STEP_MODELS.get(step)
    if model is None:
        raise ParamsError(f"{path}: no step group {step!r}; known: {', '.join(STEP_MODELS)}")
    group = raw.get(step)
    if not isinstance(group, dict):
        raise ParamsError(f"{path}: {step}: missing or not a mapping")
    if name not in group:
        raise ParamsError(f"{path}: {step}.{name}: no such entry; known: {', '.join(group)}")
    try:
        entry = model.model_validate(group[name])
    except ValidationError as err:
        raise ParamsError(_format_error(path, (step, name), err)) from None
    if step == "tables":
        return _with_experiments(entry, name, raw, path)
    return getattr(entry, profile) if isinstance(entry, Profiled) else entry


def paper_experiments(raw: dict[str, Any], paper: str) -> list[str]:
    """The inpaint entries that fill ``paper``'s tables, in params order."""
    return [name for name, entry in (raw.get("inpaint") or {}).items()
            if isinstance(entry, dict) and entry.get("paper_id") == paper]


def _with_experiments(entry: "TableProfiled", name: str, raw: dict[str, Any], path: Path) -> "TableProfiled":
    written = (raw.get("tables") or {}).get(name) or {}
    if "experiments" in written:
        raise ParamsError(f"{path}: tables.{name}.experiments: not set here; each inpaint entry names its "
                          f"paper (inpaint.<name>.paper_id: {name}); remove this key")
    return entry.model_copy(update={"experiments": paper_experiments(raw, name)})


def load_group(step: str, path: Path = DEFAULT_PARAMS, profile: Profile | None = None):
    """A group that is one artefact-free setting (``evaluate``: of every stage, under the active
    profile; ``nightly``: of the scheduled retraining, profile-free). An absent group is its
    defaults."""
    path = Path(path)
    raw = read_yaml(path)
    profile = profile or active_profile(raw, path)
    if step not in FLAT_GROUPS:
        raise ParamsError(f"{path}: no group {step!r}; known: {', '.join(FLAT_GROUPS)}")
    try:
        entry = FLAT_GROUPS[step].model_validate(raw.get(step) or {})
    except ValidationError as err:
        raise ParamsError(_format_error(path, (step,), err)) from None
    return getattr(entry, profile) if isinstance(entry, Profiled) else entry


def load_entry(step: str, name: str, path: Path = DEFAULT_PARAMS):
    """The whole validated entry (all profiles and the profile-free keys, e.g. ``run``)."""
    path = Path(path)
    raw = read_yaml(path)
    group = raw.get(step) or {}
    if name not in group:
        raise ParamsError(f"{path}: {step}.{name}: no such entry; known: {', '.join(group)}")
    try:
        entry = STEP_MODELS[step].model_validate(group[name])
    except ValidationError as err:
        raise ParamsError(_format_error(path, (step, name), err)) from None
    return _with_experiments(entry, name, raw, path) if step == "tables" else entry


def _check_references(path: Path, raw: dict[str, Any]) -> None:
    """Cross-references between groups name existing entries (a typo fails here, not mid-run)."""
    refs = {"inpaint": {"run": "train", "data": "data", "masks": "masks"}}
    for step, fields in refs.items():
        for name, entry in (raw.get(step) or {}).items():
            for field, target in fields.items():
                value = entry.get(field)
                if value not in (raw.get(target) or {}):
                    raise ParamsError(f"{path}: {step}.{name}.{field}: {value!r} is not an entry of {target!r}")
    tables = raw.get("tables") or {}
    for name, entry in tables.items():
        if isinstance(entry, dict) and "experiments" in entry:
            raise ParamsError(f"{path}: tables.{name}.experiments: not set here; each inpaint entry names its "
                              f"paper (inpaint.<name>.paper_id: {name}); remove this key")
    for name, entry in (raw.get("inpaint") or {}).items():
        if entry.get("paper_id") not in tables:
            raise ParamsError(f"{path}: inpaint.{name}.paper_id: {entry.get('paper_id')!r} is not a tables entry "
                              f"(known: {', '.join(tables)})")
    for name in tables:
        if not paper_experiments(raw, name):
            raise ParamsError(f"{path}: tables.{name}: no inpaint entry has paper_id {name!r}; its table stage "
                              f"would have nothing to show (add one, or remove tables.{name})")
    for i, paper in enumerate((raw.get("nightly") or {}).get("papers") or []):
        if paper not in (raw.get("tables") or {}):
            raise ParamsError(f"{path}: nightly.papers.{i}: {paper!r} has no tables entry (no table@{paper} stage)")


def validate_file(path: Path = DEFAULT_PARAMS) -> dict[str, list[str]]:
    """Validate every entry of every known step group; returns the artefact names per step."""
    path = Path(path)
    raw = read_yaml(path)
    active_profile(raw, path)
    unknown = sorted(set(raw) - {"profile", *STEP_MODELS, *FLAT_GROUPS})
    if unknown:
        raise ParamsError(f"{path}: {unknown[0]}: unknown group; known: profile, "
                          f"{', '.join([*STEP_MODELS, *FLAT_GROUPS])}")
    names: dict[str, list[str]] = {}
    for step in STEP_MODELS:
        for name in raw.get(step) or {}:
            load_entry(step, name, path)
            names.setdefault(step, []).append(name)
    for step in FLAT_GROUPS:
        load_group(step, path)
    _check_references(path, raw)
    return names

"""The training settings as a model: ``TrainConfig``, and a dataset config's ``train:``.

``TrainConfig`` decides what model comes out of a training set. A dataset config may set
some of it under ``train:`` (``DATASET_KEYS``); the features stage keeps that section as an
opaque mapping (it may not import training), so this module types it with ``TrainConfig``
itself: ``train_problems`` words what is wrong (unknown keys with a "did you mean", wrong
values) and ``load_training_dataset`` is ``features.dataset_config.load_dataset`` with
those problems reported together with every other problem of the config and its data.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from features.dataset_config import (
    DatasetConfigError,
    check_dataset,
    load_dataset,
    problems_of,
)
from features.pipeline import TrainingSet
from leadscore.errors import LeadscoreError
from training.calibration import Method
from training.policy import PolicyConfig
from training.split import SplitConfig

__all__ = [
    "DATASET_KEYS",
    "DatasetConfigError",
    "TrainConfig",
    "TrainConfigError",
    "check_training_dataset",
    "load_training_dataset",
    "train_config_from_dataset",
    "train_problems",
]


class TrainConfigError(LeadscoreError, ValueError):
    """Training settings that cannot be used; ``problems`` names each one."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class TrainConfig(BaseModel):
    """Everything that decides what model comes out of a training set.

    Attributes:
        split: Time split (shares of leads per period, optional gap).
        params: LightGBM parameters overriding ``training.model.DEFAULT_PARAMS``.
        num_boost_round: Upper bound on trees.
        early_stopping_rounds: Patience of early stopping on validation log loss.
        tune_trials: Optuna trials on the validation period (0: no search).
        calibration: ``auto``, ``isotonic``, ``platt``, ``beta`` or ``none``.
        policy: The MQL rule.
        seed: Seed for LightGBM, Optuna and the logistic baseline.
        num_threads: LightGBM threads (0: all cores).
        min_rows: Fewer snapshots than this is refused as too few to split three ways.
        min_positives: Fewer training conversions than this is refused.
        engine: ``single`` (LightGBM on this machine) or ``dask``
            (``training.distributed.DaskGradientBoostedModel`` on a Dask cluster).
        scheduler: Dask engine: ``local``, a scheduler address or a ``distributed.Client``.
        workers: Dask engine: worker processes of a ``local`` cluster.
        monotone: Monotone constraints from the signals' declared directions
            (``training.monotone``): ``auto`` keeps them when validation ROC AUC costs at
            most 0.002, ``on`` always, ``off`` never.
        model: ``auto`` registers the best of the points score, LightGBM, logistic
            regression and their blend by validation (or cross-validated) log loss
            (``training.choice``); or force one of ``points``, ``lightgbm``, ``logistic``,
            ``blend``.
        crossfit: ``auto`` cross-fits below ``training.crossfit``'s size thresholds; ``on``
            / ``off`` force it.
        per_region_model: ``auto`` serves a region with enough conversions its own model
            when that model's cross-validated log loss beats the pooled model's on the
            region's rows, and the pooled model with a region offset otherwise
            (``training.regional``); ``off`` (the default) serves one pooled model.

    Raises:
        TrainConfigError: on construction, naming every setting that is wrong.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    split: SplitConfig = Field(default_factory=SplitConfig)
    params: dict[str, Any] | None = None
    num_boost_round: int = 2000
    early_stopping_rounds: int = 100
    tune_trials: int = 0
    calibration: Method = "auto"
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    seed: int = 0
    num_threads: int = 0
    min_rows: int = 500
    min_positives: int = 20
    engine: Literal["single", "dask"] = "single"
    scheduler: Any = "local"
    workers: int = 2
    monotone: Literal["auto", "on", "off"] = "auto"
    model: Literal["auto", "points", "lightgbm", "logistic", "blend"] = "auto"
    crossfit: Literal["auto", "on", "off"] = "auto"
    per_region_model: Literal["auto", "off"] = "off"

    def __init__(self, **settings: Any) -> None:
        try:
            super().__init__(**settings)
        except ValidationError as exc:
            raise TrainConfigError(problems_of(exc, settings, TrainConfig)) from None

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.engine == "dask" and self.tune_trials > 0:
            raise ValueError(
                "hyper-parameter search (--tune) is not supported with the dask "
                "engine: it runs on one machine (engine 'single')"
            )
        if self.num_boost_round < 1 or self.early_stopping_rounds < 1:
            raise ValueError("num_boost_round and early_stopping_rounds must be at least 1")
        if self.tune_trials < 0:
            raise ValueError(f"tune_trials must be >= 0, got {self.tune_trials}")
        if self.num_threads < 0:
            raise ValueError(f"num_threads must be >= 0, got {self.num_threads}")
        if self.per_region_model == "auto" and self.model != "auto":
            raise ValueError(
                f"per_region_model 'auto' chooses each region's model, so it needs model "
                f"'auto', not {self.model!r}"
            )
        return self

    def to_params(self) -> dict[str, Any]:
        """Flat, loggable form."""
        return {
            "split.valid_fraction": self.split.valid_fraction,
            "split.test_fraction": self.split.test_fraction,
            "split.gap_days": self.split.gap_days,
            "num_boost_round": self.num_boost_round,
            "early_stopping_rounds": self.early_stopping_rounds,
            "tune_trials": self.tune_trials,
            "calibration": self.calibration,
            "policy.rule": self.policy.rule,
            "policy.target": self.policy.target,
            "policy.per_region": self.policy.per_region,
            "seed": self.seed,
            "engine": self.engine,
            "monotone": self.monotone,
            "model": self.model,
            "crossfit": self.crossfit,
            "per_region_model": self.per_region_model,
            **(
                {
                    "dask.scheduler": self.scheduler
                    if isinstance(self.scheduler, str)
                    else self.scheduler.scheduler.address,
                    "dask.workers": self.workers,
                }
                if self.engine == "dask"
                else {}
            ),
        }


# What a dataset config's ``train:`` may set. The run's own choices (seed, threads, engine,
# MQL rule, search) come from the command line. ``valid_fraction`` is accepted for older
# configs and ignored: it belongs to ``split``.
DATASET_KEYS = (
    "num_boost_round",
    "early_stopping_rounds",
    "min_rows",
    "min_positives",
    "calibration",
    "params",
    "monotone",
    "model",
    "crossfit",
    "per_region_model",
)
_DatasetTrain = create_model(  # type: ignore[call-overload]
    "DatasetTrain",
    __config__=ConfigDict(extra="forbid"),
    valid_fraction=(float | None, None),
    **{
        k: (TrainConfig.model_fields[k].annotation, TrainConfig.model_fields[k])
        for k in DATASET_KEYS
    },
)


def train_problems(settings: Mapping[str, Any]) -> list[str]:
    """The problems of a dataset config's ``train:`` settings, each naming its key."""
    settings = dict(settings or {})
    try:
        _DatasetTrain.model_validate(settings)
    except ValidationError as exc:
        return problems_of(exc, settings, _DatasetTrain, prefix="train")
    try:
        _from_settings(settings)
    except TrainConfigError as exc:
        return [f"train: {p}" for p in exc.problems]
    return []


def _from_settings(settings: Mapping[str, Any], **overrides: Any) -> TrainConfig:
    settings = dict(settings or {})
    settings.pop("valid_fraction", None)
    params = {**(settings.pop("params", None) or {}), **(overrides.pop("params", None) or {})}
    return TrainConfig(**{**settings, **overrides, "params": params or None})


def train_config_from_dataset(training_set: TrainingSet, **overrides: Any) -> TrainConfig:
    """``TrainConfig`` with a dataset config's ``train`` settings applied, then ``overrides``.

    ``train.params`` are merged into LightGBM's parameters (``overrides['params']`` win).

    Raises:
        TrainConfigError: naming every setting that is wrong.
    """
    return _from_settings(training_set.metadata.train, **overrides)


def load_training_dataset(path: str | Path) -> TrainingSet:
    """``features.dataset_config.load_dataset`` with ``train:`` typed by ``TrainConfig``.

    Raises:
        DatasetConfigError: listing every problem of the config (its ``train:`` settings
            included) and of the data.
    """
    return load_dataset(path, check_train=train_problems)


def check_training_dataset(path: str | Path) -> list[str]:
    """Every problem of a config (``train:`` included) and its data; empty when clean."""
    return check_dataset(path, check_train=train_problems)

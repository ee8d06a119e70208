"""Dataset configs: map any CRM or marketing export onto leadscore's training data.

A config file (YAML or TOML) says which file holds what and how to read it. Two kinds:

* ``kind: tables`` maps files and columns onto the four tables of the data contract
  (``features.contract``): which file, which column is which, how timestamps are written,
  which source values mean which activity type. The normal point-in-time pipeline then
  runs. Extra lead columns can be declared as additional ``fit`` features.
* ``kind: lead_snapshot`` is for exports that already hold one row per lead with
  aggregated behaviour (no activity log): one file, an ``id`` column, an ``outcome``
  (a column and its positive values, or membership of the id in another file), a
  ``time`` column or a fixed ``as_of``, and the ``features`` to use, each with its group,
  dtype and plain-language template. Columns that leak the outcome go under ``exclude``
  with the reason.

Both kinds may declare the ``split`` (``{kind: time, at: 2018-03-01}`` or
``{kind: stratified, test_fraction: 0.25, seed: 0}``), the ``points`` rules of the
points-based baseline and ``train`` settings. ``load_dataset`` returns a ``TrainingSet``
whose metadata carries the custom feature catalogue, the split and the points rules, so
training, the baselines and the model card all use them.

Every problem in a config and in the data it points at is collected before anything
raises (``DatasetConfigError`` lists them all), so ``leadscore check --config FILE``
reports a broken export in one go.

The package splits along its seams: ``schema`` (the config as pydantic models, and its
problems in plain words), ``readers`` (the config file and the data it points at),
``values`` (the one typing of feature values, shared with serving) and ``load`` (the
three together).
"""

from features.dataset_config.load import (
    TrainCheck,
    catalogue_from_metadata,
    check_dataset,
    load_dataset,
)
from features.dataset_config.readers import read_config
from features.dataset_config.schema import (
    CONTRACT_COLUMNS,
    DTYPES,
    GROUPS,
    KINDS,
    SPLIT_KINDS,
    TRANSFORMS,
    DatasetConfig,
    DatasetConfigError,
    FeatureConfig,
    LeadSnapshotConfig,
    TablesConfig,
    did_you_mean,
    problems_of,
    validate_config,
)
from features.dataset_config.values import (
    FALSE_TEXT,
    TRUE_TEXT,
    lead_column,
    parse_times,
    snapshot_frame,
    type_column,
    type_series,
)

__all__ = [
    "CONTRACT_COLUMNS",
    "DTYPES",
    "FALSE_TEXT",
    "GROUPS",
    "KINDS",
    "SPLIT_KINDS",
    "TRANSFORMS",
    "TRUE_TEXT",
    "DatasetConfig",
    "DatasetConfigError",
    "FeatureConfig",
    "LeadSnapshotConfig",
    "TablesConfig",
    "TrainCheck",
    "catalogue_from_metadata",
    "check_dataset",
    "did_you_mean",
    "lead_column",
    "load_dataset",
    "parse_times",
    "problems_of",
    "read_config",
    "snapshot_frame",
    "type_column",
    "type_series",
    "validate_config",
]

"""Typed, versioned metadata: every model round-trips through JSON, other formats are refused.

What crosses the stages (a training set's sidecar, a bundle's ``metadata.json``, the
fitted input spec) is a pydantic model; a file written in an older or unknown format is
refused with a message that says to rebuild or retrain, never a ``KeyError``.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from features.build import read_training_set, sidecar_path, write_training_set
from features.catalogue import CATALOGUE, FeatureSpec, by_name
from features.metadata import (
    TRAINING_SET_FORMAT_VERSION,
    DatasetInfo,
    OutcomeInfo,
    PointsRules,
    SplitSpec,
    TrainingSetFormatError,
    TrainingSetMetadata,
)
from features.pipeline import TrainingSet
from leadscore.errors import LeadscoreError
from runtime.bundle import FORMAT_VERSION, Calibration, ModelArtifactError, ModelBundle, Policy
from runtime.encoding import InputSpec
from runtime.metadata import (
    BundleMetadata,
    PeriodWindow,
    PolicySettings,
    SplitBoundaries,
    SplitWindow,
    TrainingFacts,
    request_form_of,
)

CUSTOM = FeatureSpec(
    "score_band", "fit", "category", "Score band is {value}", "Score band", ("low", "high")
)


def _json_round_trip(payload: dict) -> dict:
    return json.loads(json.dumps(payload))


def _dataset_metadata() -> TrainingSetMetadata:
    """Everything a ``lead_snapshot`` dataset config puts into a training set's metadata."""
    return TrainingSetMetadata(
        horizon_days=None,
        snapshot_rule="lead_snapshot",
        rows=4,
        positives=2,
        leads=4,
        first_as_of="2024-01-01 00:00:00",
        last_as_of="2024-01-01 00:00:00",
        features=("score_band",),
        fingerprint="0123456789abcdef",
        dataset=DatasetInfo(
            name="crm",
            kind="lead_snapshot",
            config="/tmp/crm.yaml",
            id="id",
            outcome=OutcomeInfo(column="won", positive=(1, "yes")),
            as_of="2024-01-01",
        ),
        catalogue=(CUSTOM,),
        split=SplitSpec(kind="stratified", test_fraction=0.25),
        points=PointsRules(
            threshold=40, rules=({"feature": "score_band", "values": {"high": 50}},)
        ),
        train={"num_boost_round": 50, "params": {"num_leaves": 7}},
        excluded=({"column": "owner", "why": "leaks"},),
    )


def _bundle_metadata() -> BundleMetadata:
    period = PeriodWindow(
        first_as_of="2024-01-01 00:00:00",
        last_as_of="2024-02-01 00:00:00",
        rows=10,
        leads=8,
        positives=2,
    )
    return BundleMetadata(
        model_name="lead-scoring",
        created_at="2024-03-01T00:00:00+00:00",
        request_form="lead",
        horizon_days=90,
        snapshot_rule="monthly",
        data_fingerprint="0123456789abcdef",
        rows_total=30,
        window=SplitWindow(train=period, valid=period, test=period),
        boundaries=SplitBoundaries(
            valid_start="2024-01-01 00:00:00", test_start="2024-02-01 00:00:00"
        ),
        population_rows={"valid": 12, "test": 11},
        calibration_method="isotonic",
        training=TrainingFacts(
            params={"num_leaves": 15, "learning_rate": 0.05},
            best_iteration=12,
            num_boost_round=50,
            early_stopping_rounds=10,
        ),
        policy_config=PolicySettings(rule="capacity", target=0.1),
        features=("region", "icp_score", "n_activities_30d"),
        split_spec=SplitSpec(kind="time", at="2024-02-01"),
        test_metrics={"model": {"roc_auc": 0.75, "ece": None}},
        test_metrics_by_region={"EMEA": {"rows": 5, "roc_auc": 0.7}},
    )


def test_training_set_metadata_round_trips_through_json():
    for meta in (TrainingSetMetadata(), _dataset_metadata()):
        back = TrainingSetMetadata.from_json(_json_round_trip(meta.to_json()), "test")
        assert back == meta
        assert back.to_json() == meta.to_json()


def test_the_parts_round_trip_on_their_own():
    for model in (
        _dataset_metadata().dataset,
        _dataset_metadata().split,
        _dataset_metadata().points,
        CUSTOM,
        *_bundle_metadata().window.model_dump().values(),
    ):
        payload = model if isinstance(model, dict) else model.model_dump(mode="json")
        cls = PeriodWindow if isinstance(model, dict) else type(model)
        assert cls.model_validate(_json_round_trip(payload)).model_dump(mode="json") == payload


def test_bundle_metadata_round_trips_through_json():
    meta = _bundle_metadata()
    back = BundleMetadata.from_json(_json_round_trip(meta.to_json()), "test")
    assert back == meta and back.format_version == FORMAT_VERSION


def test_a_training_set_given_a_plain_mapping_validates_it_once():
    frame = pd.DataFrame({"lead_id": ["a"], "as_of": [pd.Timestamp("2024-01-01")], "label": [1]})
    ts = TrainingSet(
        frame, {"rows": 1, "catalogue": [CUSTOM], "split": {"kind": "time", "at": "2024-01-01"}}
    )
    assert isinstance(ts.metadata, TrainingSetMetadata)
    assert ts.metadata.catalogue == (CUSTOM,) and ts.metadata.split.kind == "time"
    assert TrainingSet(frame).metadata == TrainingSetMetadata()


def _small_set() -> TrainingSet:
    frame = pd.DataFrame(
        {
            "lead_id": ["a", "b", "c", "d"],
            "as_of": pd.to_datetime(["2024-01-01"] * 4),
            "score_band": pd.Categorical(["low", "high", "high", None]),
            "label": np.array([0, 1, 1, 0], dtype=np.int8),
        }
    )
    return TrainingSet(frame, _dataset_metadata().model_copy(update={"fingerprint": None}))


def test_a_written_training_set_reads_back_with_the_same_metadata(tmp_path: Path):
    ts = _small_set()
    out = write_training_set(ts, tmp_path / "set.parquet")
    back = read_training_set(out)
    fingerprint = back.metadata.fingerprint
    assert fingerprint and back.metadata == ts.metadata.model_copy(
        update={"fingerprint": fingerprint}
    )
    assert back.metadata.catalogue == (CUSTOM,)
    sidecar_path(out).unlink()  # the copy inside the Parquet file says the same
    assert read_training_set(out).metadata == back.metadata


@pytest.mark.parametrize("version", [None, 0, TRAINING_SET_FORMAT_VERSION + 1])
def test_a_training_set_in_another_format_is_refused(tmp_path: Path, version):
    out = write_training_set(_small_set(), tmp_path / "set.parquet")
    side = json.loads(sidecar_path(out).read_text())
    side.pop("format_version")
    if version is not None:
        side["format_version"] = version
    sidecar_path(out).write_text(json.dumps(side))
    with pytest.raises(TrainingSetFormatError, match="rebuild it") as caught:
        read_training_set(out)
    assert isinstance(caught.value, LeadscoreError)
    assert f"training-set format {version!r}" in str(caught.value)


def test_malformed_training_set_metadata_is_refused_not_a_key_error():
    payload = {**_dataset_metadata().to_json(), "split": {"at": "2024-01-01"}}  # no kind
    with pytest.raises(TrainingSetFormatError, match=r"split\.kind"):
        TrainingSetMetadata.from_json(payload, "set.parquet.json")


def test_the_input_spec_stores_the_one_feature_type():
    features = tuple(by_name()[n] for n in ("region", "icp_industry", "n_activities_30d"))
    frame = pd.DataFrame(
        {
            "region": pd.Categorical(["EMEA", "NA", "EMEA"]),
            "icp_industry": [1, 0, 1],
            "n_activities_30d": [0.0, 3.0, 1.0],
        }
    )
    spec = InputSpec(features).fit(frame)
    assert all(isinstance(f, FeatureSpec) for f in spec.features_)
    assert spec.features_[0].categories == ("EMEA", "NA")  # learned, most frequent first
    assert spec.features_[1:] == features[1:]
    back = InputSpec.from_dict(_json_round_trip(spec.to_dict()))
    assert back.features_ == spec.features_
    for f in back.features_:  # sentences are the catalogue's, unchanged
        for value in (0, 0.0, 2.0, "EMEA", None):
            if f.dtype != "category" or isinstance(value, str):
                assert f.sentence(value) == by_name()[f.name].sentence(value)


def test_catalogue_entries_validate():
    assert all(FeatureSpec.model_validate(f.model_dump()) == f for f in CATALOGUE)
    with pytest.raises(ValueError, match="group"):
        FeatureSpec("x", "who", "float", "{value}", "x")  # type: ignore[arg-type]


def test_request_form_is_decided_once_at_training():
    tables = DatasetInfo(name="t", kind="tables")
    snapshot = DatasetInfo(name="s", kind="lead_snapshot")
    assert request_form_of(None, "monthly") == "lead"
    assert request_form_of(tables, "monthly") == "lead"
    assert request_form_of(snapshot, None) == "features"
    assert request_form_of(None, "lead_snapshot") == "features"


def _tiny_bundle() -> ModelBundle:
    features = tuple(by_name()[n] for n in ("region", "icp_score", "n_activities_30d"))
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "region": pd.Categorical(rng.choice(["NA", "EMEA"], 200)),
            "icp_score": rng.integers(0, 4, 200),
            "n_activities_30d": rng.poisson(3, 200).astype(float),
        }
    )
    y = (frame["n_activities_30d"] + rng.normal(0, 1, 200) > 3).astype(int).to_numpy()
    spec = InputSpec(features).fit(frame)
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 4},
        lgb.Dataset(spec.transform(frame), y, free_raw_data=False),
        num_boost_round=3,
    )
    policy = Policy("capacity", 0.1, 0.5, (0.0, 0.1, 0.2), (0.0, 0.1, 0.2), ())
    return ModelBundle(booster, spec, Calibration(), policy, _bundle_metadata())


def test_a_saved_bundle_loads_with_the_same_metadata(tmp_path: Path):
    bundle = _tiny_bundle()
    loaded = ModelBundle.load(bundle.save(tmp_path / "bundle"))
    assert loaded.metadata == bundle.metadata
    assert loaded.spec.features_ == bundle.spec.features_


@pytest.mark.parametrize("version", [1, None, 999])
def test_a_bundle_in_an_older_or_unknown_format_is_refused(tmp_path: Path, version):
    folder = _tiny_bundle().save(tmp_path / "bundle")
    path = folder / "metadata.json"
    if version == 1:  # what format 1 wrote: a free-form dict
        meta = {
            "format_version": 1,
            "model_name": "lead-scoring",
            "trained_on": {},
            "window": {},
            "horizon_days": 90,
        }
    else:
        meta = json.loads(path.read_text())
        meta.pop("format_version")
        if version is not None:
            meta["format_version"] = version
    path.write_text(json.dumps(meta))
    with pytest.raises(ModelArtifactError, match="retrain the model") as caught:
        ModelBundle.load(folder)
    assert f"artifact format {version!r}" in str(caught.value)


def test_a_malformed_bundle_metadata_is_refused(tmp_path: Path):
    folder = _tiny_bundle().save(tmp_path / "bundle")
    path = folder / "metadata.json"
    meta = json.loads(path.read_text())
    meta["request_form"] = "telepathy"
    path.write_text(json.dumps(meta))
    with pytest.raises(ModelArtifactError, match=r"malformed metadata\.json.*request_form"):
        ModelBundle.load(folder)

"""The states a kill can leave between two writes are planted directly and handled.

* A training set whose sidecar belongs to another run (a kill between the Parquet and
  the JSON renames, or files copied separately): the data is read with its own metadata,
  or refused with an error naming both files — never paired with the wrong metadata.
* A model version registered by a run killed before its aliases were set (or after, but
  before it was marked complete): the resolver and ``promote`` never see the first, and
  the next registration deletes it and completes the second.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import serving_support as testing
from mlflow.tracking import MlflowClient

from features.build import (
    SIDECAR_FILE_KEY,
    TrainingSetMismatchError,
    fingerprint,
    read_training_set,
    sidecar_path,
    write_training_set,
)
from features.pipeline import PipelineConfig, build_training_set
from runtime import registry


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory) -> tuple[Path, Path]:
    """The same small funnel built with two horizons: two different training sets."""
    tables = testing.simulated_tables(n_leads=600, seed=3)
    folder = tmp_path_factory.mktemp("sets")
    return tuple(
        write_training_set(
            build_training_set(tables, PipelineConfig(horizon_days=h)), folder / f"h{h}.parquet"
        )
        for h in (60, 30)
    )


def test_a_matching_pair_is_read_with_its_sidecar(two_sets):
    ts = read_training_set(two_sets[0])
    assert ts.metadata.horizon_days == 60
    assert ts.metadata.fingerprint == fingerprint(ts.frame)
    assert SIDECAR_FILE_KEY not in ts.metadata.to_json()  # the file facts are not training metadata
    facts = json.loads(sidecar_path(two_sets[0]).read_text())[SIDECAR_FILE_KEY]
    assert facts["bytes"] == two_sets[0].stat().st_size and len(facts["sha256"]) == 64


def test_a_stale_sidecar_is_not_paired_with_new_data(two_sets, tmp_path, caplog):
    """What a kill between the two renames leaves: the new Parquet, the old sidecar."""
    new, old = two_sets
    out = tmp_path / "training.parquet"
    shutil.copy(new, out)
    shutil.copy(sidecar_path(old), sidecar_path(out))
    with caplog.at_level(logging.WARNING, logger="features.build"):
        ts = read_training_set(out)
    assert ts.metadata.horizon_days == 60  # the Parquet file's own metadata, not 30
    assert ts.metadata.fingerprint == fingerprint(ts.frame)
    assert (
        f"the sidecar {sidecar_path(out)} does not describe the training set {out}" in caplog.text
    )


def test_a_foreign_pair_without_embedded_metadata_is_refused(two_sets, tmp_path):
    """A Parquet file written by another tool (or an older leadscore) and a sidecar that
    does not describe it: an error naming both files."""
    import pandas as pd

    new, old = two_sets
    out = tmp_path / "training.parquet"
    pd.read_parquet(new).to_parquet(out, index=False)  # no leadscore metadata inside
    shutil.copy(sidecar_path(old), sidecar_path(out))
    with pytest.raises(TrainingSetMismatchError) as caught:
        read_training_set(out)
    assert str(out) in str(caught.value) and str(sidecar_path(out)) in str(caught.value)
    # An older sidecar (no file facts) is checked against the data's fingerprint instead.
    legacy = json.loads(sidecar_path(old).read_text())
    legacy.pop(SIDECAR_FILE_KEY)
    sidecar_path(out).write_text(json.dumps(legacy))
    with pytest.raises(TrainingSetMismatchError, match="different runs"):
        read_training_set(out)
    legacy["fingerprint"] = fingerprint(pd.read_parquet(out))
    sidecar_path(out).write_text(json.dumps(legacy))
    assert read_training_set(out).metadata.to_json() == legacy  # a matching older pair reads


@pytest.mark.slow
def test_a_half_registered_version_is_never_served_and_is_cleaned_up(tmp_path):
    """A run killed right after creating its version (before ``challenger`` moved), and one
    killed after moving ``challenger`` but before marking the version complete."""
    from training.promote import promote

    store = tmp_path / "store"
    first = testing.register_champion(store, n_leads=1500, seed=7)  # v1: both aliases
    uri, name = first.tracking_uri, first.name
    with registry.tracking(uri) as client:  # a version's source resolves through it
        v1 = client.get_model_version(name, "1")
        assert v1.tags[registry.REGISTRATION_TAG] == registry.COMPLETE
        assert v1.tags["data_fingerprint"] and v1.tags["promotion.decision"] == "first"
        pending = {**v1.tags, registry.REGISTRATION_TAG: registry.PENDING}
        client.create_model_version(name, v1.source, v1.run_id, tags=pending)  # v2
    # Nothing reads v2: the champion and challenger are still v1, promote sees no change.
    assert registry.get_version_info(uri, name, registry.CHAMPION).version == "1"
    assert registry.get_version_info(uri, name, registry.CHALLENGER).version == "1"
    assert promote(uri, force=True).decision == "already_champion"
    with registry.tracking(uri) as client:
        client.create_model_version(name, v1.source, v1.run_id, tags=pending)  # v3
        client.set_registered_model_alias(name, registry.CHALLENGER, "3")  # killed here

    second = testing.register_champion(store, n_leads=1500, seed=8)  # the next run
    assert second.version == "4"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = {str(mv.version): mv for mv in client.search_model_versions(f"name='{name}'")}
    assert set(versions) == {"1", "3", "4"}  # v2 rolled back, v3 rolled forward
    assert all(mv.tags[registry.REGISTRATION_TAG] == registry.COMPLETE for mv in versions.values())
    aliases = {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}
    assert aliases == {"champion": "1", "challenger": "4"}
    assert registry.recover_registrations(client, name, locked=True) == {}


@pytest.mark.slow
def test_a_live_registration_on_a_server_is_left_alone(tmp_path):
    """Without a store lock (a tracking server), only a registration pending for a long
    time is treated as dead."""
    uri = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("m")
    tags = {registry.REGISTRATION_TAG: registry.PENDING}
    client.create_model_version("m", "file:///nowhere", tags=tags)
    assert registry.recover_registrations(client, "m", locked=False) == {}
    assert registry.recover_registrations(client, "m", locked=True) == {"1": "discarded"}
    with registry.store_lock(uri) as locked:
        assert locked
    with registry.store_lock("http://mlflow.example:5000") as locked:
        assert not locked

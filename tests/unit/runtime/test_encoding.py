"""Fast paths give exactly what the general code gives.

The single-lead path of ``compute_features`` (categoricals coded in Python for small
inputs) must equal the batch path, and ``InputSpec.transform``'s cached dict lookups
must equal pandas' categorical coding, value for value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import pipeline
from features.catalogue import CATALOGUE, feature_names
from features.contract import validate
from features.pipeline import (
    PipelineConfig,
    build_training_set,
    compute_features,
    email_domain_type,
    email_kind,
)
from features.simulate import simulate
from runtime.encoding import InputSpec


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return validate(simulate(600, seed=11).tables())


@pytest.fixture(scope="module")
def batch(tables) -> pd.DataFrame:
    return build_training_set(tables, PipelineConfig()).frame


def one_lead_tables(tables: dict[str, pd.DataFrame], lead_id: str) -> tuple[pd.DataFrame, ...]:
    leads = tables["leads"][tables["leads"]["lead_id"] == lead_id]
    accounts = tables["accounts"][tables["accounts"]["account_id"].isin(leads["account_id"])]
    activities = tables["activities"][tables["activities"]["lead_id"] == lead_id]
    return leads, accounts, activities


def test_small_input_path_equals_batch_path(tables, batch):
    """Each lead scored alone (the service's path) equals its rows of the batch build."""
    leads = batch["lead_id"].drop_duplicates().sample(40, random_state=0)
    cols = feature_names()
    for lead_id in leads:
        rows = batch[batch["lead_id"] == lead_id]
        alone = compute_features(*one_lead_tables(tables, lead_id), rows[["lead_id", "as_of"]])
        assert len(alone) <= pipeline.SMALL_INPUT  # the small path ran
        left = rows[cols].reset_index(drop=True)
        right = alone[cols].reset_index(drop=True)
        for spec in CATALOGUE:
            if spec.dtype == "category":  # a lone lead has only its own categories
                left[spec.name] = left[spec.name].astype(object)
                right[spec.name] = right[spec.name].astype(object)
        pd.testing.assert_frame_equal(left, right, check_exact=True)


@pytest.mark.parametrize("n_leads", [1, 3, 50])
def test_small_categorical_coding_equals_pandas(tables, batch, n_leads, monkeypatch):
    """Same frame, dtypes and categories with and without the small-input coding."""
    lead_ids = batch["lead_id"].drop_duplicates().head(n_leads)
    leads = tables["leads"][tables["leads"]["lead_id"].isin(lead_ids)].copy()
    leads["seniority"] = leads["seniority"].astype(object)
    leads.iloc[0, leads.columns.get_loc("seniority")] = None  # a missing category
    accounts = tables["accounts"]
    activities = tables["activities"][tables["activities"]["lead_id"].isin(lead_ids)]
    snaps = batch[batch["lead_id"].isin(lead_ids)][["lead_id", "as_of"]]
    for s in (snaps, snaps.head(0)):
        small = compute_features(leads, accounts, activities, s)
        monkeypatch.setattr(pipeline, "SMALL_INPUT", 0)
        general = compute_features(leads, accounts, activities, s)
        monkeypatch.undo()
        pd.testing.assert_frame_equal(small, general, check_exact=True)


@pytest.mark.parametrize(
    ("email", "kind"),
    [
        ("ann@acme.com", "corporate"),
        ("  Ann@GMAIL.com ", "free"),
        ("a@b@yahoo.com", "free"),
        ("no-at-sign", "unknown"),
        ("", "unknown"),
        ("@", "corporate"),
        (None, "unknown"),
        (np.nan, "unknown"),
        (pd.NA, "unknown"),
        ("x@proton.me", "free"),
    ],
)
def test_email_rule(email, kind):
    assert email_kind(email) == kind
    series = pd.Series([email], dtype=object)
    assert email_domain_type(series).tolist() == [kind]


def reference_transform(spec: InputSpec, frame: pd.DataFrame) -> np.ndarray:
    """The general coding: pandas categoricals over the learned categories."""
    out = np.empty((len(frame), len(spec.features_)), dtype=np.float64)
    for j, f in enumerate(spec.features_):
        col = frame[f.name]
        if f.dtype == "category":
            codes = pd.Categorical(
                col.astype("string").astype(object), categories=list(f.categories)
            ).codes
            out[:, j] = np.where(codes < 0, np.nan, codes)
        else:
            out[:, j] = pd.to_numeric(col, errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
    return out


def test_transform_equals_pandas_coding(batch):
    spec = InputSpec.from_dict(InputSpec().fit(batch).to_dict())
    np.testing.assert_array_equal(spec.transform(batch), reference_transform(spec, batch))
    odd = batch.head(6).copy()
    odd["seniority"] = np.array(["VP", None, "Mars", np.nan, "Director", "VP"], dtype=object)
    odd["industry"] = odd["industry"].astype("string")
    odd["department"] = pd.Categorical(["IT", None, "IT", "Foo", "HR", "IT"])
    odd["lead_source"] = pd.Categorical([None] * 6)
    odd["region"] = pd.Categorical([1, 2, 1, None, 2, 1])
    odd["icp_score"] = odd["icp_score"].astype("Int64")
    odd.iloc[1, odd.columns.get_loc("icp_score")] = pd.NA
    odd["icp_size"] = odd["icp_size"].astype(bool)
    odd["n_page_view_7d"] = np.array(["1", "x", None, 2, 3.5, True], dtype=object)
    for frame in (odd, batch.head(1), batch.head(0)):
        np.testing.assert_array_equal(spec.transform(frame), reference_transform(spec, frame))

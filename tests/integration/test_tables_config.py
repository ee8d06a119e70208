"""A ``tables``-kind dataset config end to end, as a user would run it: a CRM export with
its own column names, date format and activity names, mapped onto the contract by a config,
checked and trained through the CLI, registered, then scored through the service's path."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from features.contract import validate
from features.dataset_config import load_dataset
from features.io import load_tables
from features.simulate import simulate
from leadscore.cli import app
from serving.batch import score_frame
from serving.model_store import resolve_model
from serving.samples import lead_payload
from serving.schemas import parse_request
from serving.scorer import score_requests
from serving.settings import Settings

pytestmark = pytest.mark.slow

FMT = "%d/%m/%Y %H:%M"
CRM_TYPES = {
    "page_view": "Web Visit",
    "email_open": "Email Opened",
    "email_click": "Email Click",
    "pricing_page_view": "Pricing Visit",
    "demo_request": "Demo Requested",
}


def _export(folder: Path, n_leads: int = 1500, seed: int = 5) -> dict[str, pd.DataFrame]:
    """Write a simulated funnel as a CRM would export it; return the contract's tables.

    The export's timestamps hold minutes (``FMT``), so the tables returned hold minutes
    too: they are what training reads through the config, and the service and batch
    paths below must see the same moments (the simulator's sub-minute times would move
    every ``days_since_*`` feature by up to a minute).
    """
    t = _to_minutes(simulate(n_leads, seed=seed, months=15).tables())
    leads = t["leads"].rename(
        columns={
            "lead_id": "Contact ID",
            "account_id": "Company ID",
            "created_at": "Created On",
            "job_title": "Title",
            "seniority": "Level",
            "department": "Dept",
            "country": "Country Code",
            "region": "Territory",
            "lead_source": "Channel",
            "email": "E-mail",
        }
    )
    leads["Created On"] = leads["Created On"].dt.strftime(FMT)
    rng = np.random.default_rng(seed)
    # Subscribers convert more often, so the model leans on the extra column and a
    # service that dropped it would score differently.
    converted = leads["Contact ID"].isin(t["conversions"]["lead_id"]).to_numpy()
    subscribed = rng.random(len(leads)) < np.where(converted, 0.85, 0.25)
    leads["Newsletter"] = np.where(subscribed, "yes", "no")
    accounts = t["accounts"].rename(
        columns={
            "account_id": "Company ID",
            "company_name": "Company",
            "industry": "Sector",
            "employee_count": "Employees",
            "annual_revenue": "Revenue USD",
            "country": "HQ",
        }
    )
    acts = t["activities"].assign(activity_type=t["activities"]["activity_type"].replace(CRM_TYPES))
    acts = acts.rename(
        columns={
            "lead_id": "Contact",
            "occurred_at": "Timestamp",
            "activity_type": "Event",
            "detail": "Notes",
        }
    )
    acts["Timestamp"] = acts["Timestamp"].dt.strftime(FMT)
    won = t["conversions"].rename(columns={"lead_id": "Contact", "converted_at": "Won On"})
    won["Won On"] = won["Won On"].dt.strftime(FMT)
    for name, frame in (
        ("contacts", leads),
        ("companies", accounts),
        ("events", acts),
        ("deals", won),
    ):
        frame.to_csv(folder / f"{name}.csv", index=False)
    return t


def _to_minutes(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The tables with every timestamp floored to the minute, as ``FMT`` writes them."""
    out = {}
    for name, frame in tables.items():
        times = [c for c in ("created_at", "occurred_at", "converted_at") if c in frame.columns]
        out[name] = frame.assign(**{c: frame[c].dt.floor("min") for c in times})
    return out


def _config(folder: Path) -> Path:
    cfg = {
        "kind": "tables",
        "name": "crm_export",
        "tables": {
            "leads": {
                "file": "contacts.csv",
                "timestamp_format": FMT,
                "columns": {
                    "lead_id": "Contact ID",
                    "account_id": "Company ID",
                    "created_at": "Created On",
                    "job_title": "Title",
                    "seniority": "Level",
                    "department": "Dept",
                    "country": "Country Code",
                    "region": "Territory",
                    "lead_source": "Channel",
                    "email": "E-mail",
                },
            },
            "accounts": {
                "file": "companies.csv",
                "columns": {
                    "account_id": "Company ID",
                    "company_name": "Company",
                    "industry": "Sector",
                    "employee_count": "Employees",
                    "annual_revenue": "Revenue USD",
                    "country": "HQ",
                },
            },
            "activities": {
                "file": "events.csv",
                "timestamp_format": FMT,
                "columns": {
                    "lead_id": "Contact",
                    "occurred_at": "Timestamp",
                    "activity_type": "Event",
                    "detail": "Notes",
                },
                "activity_types": {v: k for k, v in CRM_TYPES.items()},
            },
            "conversions": {
                "file": "deals.csv",
                "timestamp_format": FMT,
                "columns": {"lead_id": "Contact", "converted_at": "Won On"},
            },
        },
        "features": [
            {
                "name": "newsletter",
                "column": "Newsletter",
                "group": "fit",
                "dtype": "bool",
                "template": "Newsletter subscriber: {value:.0f}",
                "description": "Subscribed to the newsletter",
            }
        ],
        "pipeline": {"horizon_days": 60, "snapshots": "monthly"},
        "train": {
            "num_boost_round": 150,
            "min_rows": 300,
            "min_positives": 20,
            "params": {"num_leaves": 15},
        },
    }
    path = folder / "crm.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_tables_config_checks_trains_registers_and_scores(tmp_path: Path, monkeypatch) -> None:
    data = tmp_path / "export"
    data.mkdir()
    tables = validate(_export(data))
    config = _config(data)
    home = tmp_path / "home"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("LEADSCORE_TRACKING_URI", raising=False)
    monkeypatch.setenv("LEADSCORE_HOME", str(home))
    monkeypatch.setenv("LEADSCORE_MODEL_NAME", "crm")
    runner = CliRunner()

    check = runner.invoke(app, ["check", "--config", str(config)])
    assert check.exit_code == 0, check.output
    trained = runner.invoke(
        app,
        ["train", "--config", str(config), "--threads", "1", "--out", str(tmp_path / "report")],
    )
    assert trained.exit_code == 0, trained.output
    assert "registered crm version 1 (challenger, champion)" in " ".join(trained.output.split())

    # Registered, with the config's catalogue and the pipeline's time split.
    uri = f"sqlite:///{home / 'mlflow.db'}"
    version = mlflow.MlflowClient(uri).get_model_version_by_alias("crm", "champion")
    assert str(version.version) == "1"
    served = resolve_model(
        Settings(tracking_uri=uri, model_name="crm", bentoml_home=tmp_path / "bentoml")
    )
    bundle = served.bundle
    assert bundle.spec.names[-1] == "newsletter" and "n_email_open_90d" in bundle.spec.names
    assert bundle.metadata.dataset.kind == "tables"
    assert bundle.metadata.horizon_days == 60
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert_report_metrics_are_recomputable(tmp_path / "report", metrics, bundle)
    card = (tmp_path / "report" / "model_card.md").read_text()
    assert "crm_export (tables), mapped onto the contract's tables" in card
    assert "label horizon: 60 days" in card and "not recorded" not in card

    # Scored through the service's path: lead-form payloads built from the contract's
    # tables, with the export's extra column under the feature's name, give the very
    # features (and scores) of the training set's rows for the same (lead, as_of).
    ts = load_dataset(config)
    frame = ts.frame
    assert frame["n_email_open_90d"].sum() > 0, "CRM activity names were mapped"
    assert bundle.metadata.dataset.lead_columns == {"newsletter": "Newsletter"}
    info = served.info()
    assert info["request_form"] == "lead"
    assert [i["name"] for i in info["inputs"]] == ["newsletter"]
    assert info["inputs"][0]["dtype"] == "bool" and info["inputs"][0]["group"] == "fit"
    contacts = pd.read_csv(data / "contacts.csv", dtype=str).set_index("Contact ID")
    rows = frame.loc[frame["label"] == 1].head(8)
    rows = pd.concat([rows, frame.loc[frame["label"] == 0].head(8)]).reset_index(drop=True)
    assert set(rows["newsletter"]) == {0.0, 1.0}, "both values are exercised"
    payloads = [_with_newsletter(tables, contacts, r.lead_id, r.as_of) for r in rows.itertuples()]
    requests = [parse_request(p) for p in payloads]
    cards = score_requests(served, requests, 5)
    expected = bundle.score(rows)  # the real training rows: nothing blanked
    blanked = bundle.score(rows.assign(newsletter=np.nan))
    assert np.abs(expected.probability - blanked.probability).max() > 1e-6, (
        "the model uses the extra column, so dropping it would be seen"
    )
    for i, card_i in enumerate(cards):
        assert card_i["lead_id"] == rows.at[i, "lead_id"]
        assert card_i["probability"] == pytest.approx(expected.probability[i], abs=1e-9)
        assert card_i["grade"] == expected.grade[i]
        assert not any("newsletter" in w for w in card_i["warnings"]), card_i["warnings"]
    assert cards[0]["reasons"]["positive"] or cards[0]["reasons"]["negative"]
    _extra_keys_are_checked(served, payloads[0])

    # Batch scoring reads the extra column from the leads table (under the config's
    # column name) with the same code: the training rows' scores again, and the
    # service's answers for every lead it scores.
    folder = tmp_path / "tables"
    folder.mkdir()
    extra_leads = tables["leads"].assign(
        Newsletter=tables["leads"]["lead_id"].map(contacts["Newsletter"])
    )
    for name, table in {**tables, "leads": extra_leads}.items():
        table.to_parquet(folder / f"{name}.parquet", index=False)
    batch = score_frame(load_tables(folder), rows[["lead_id", "as_of"]], served)
    np.testing.assert_allclose(batch["probability"], expected.probability, rtol=0, atol=1e-12)
    assert list(batch["grade"]) == list(expected.grade)
    as_of = str(rows["as_of"].max())
    scored = runner.invoke(
        app, ["score", "--data", str(folder), "--out", str(tmp_path / "s.csv"), "--as-of", as_of]
    )
    assert scored.exit_code == 0, scored.output
    out = pd.read_csv(tmp_path / "s.csv", dtype={"lead_id": str}).head(25)
    assert len(out) > 0
    live = score_requests(
        served,
        [parse_request(_with_newsletter(tables, contacts, lead, as_of)) for lead in out["lead_id"]],
        3,
    )
    np.testing.assert_allclose(
        out["probability"], [c["probability"] for c in live], rtol=0, atol=1e-9
    )
    assert list(out["grade"]) == [c["grade"] for c in live]

    # A leads table without the column is a clear error, not a KeyError traceback.
    extra_leads.drop(columns="Newsletter").to_parquet(folder / "leads.parquet", index=False)
    failed = runner.invoke(
        app, ["score", "--data", str(folder), "--out", str(tmp_path / "t.csv"), "--as-of", as_of]
    )
    assert failed.exit_code == 2, failed.output
    assert "Newsletter" in failed.output and "newsletter" in failed.output
    assert "Traceback" not in failed.output


def _with_newsletter(
    tables: dict[str, pd.DataFrame], contacts: pd.DataFrame, lead_id: str, as_of: object
) -> dict:
    """The lead form of one lead, with the export's extra column under the feature's name,
    as a client reading the CRM would send it."""
    payload = lead_payload(tables, lead_id, as_of)
    payload["lead"]["newsletter"] = contacts.at[lead_id, "Newsletter"]
    return payload


def _extra_keys_are_checked(served, payload: dict) -> None:
    """A key the model does not take, or a value its dtype cannot read, is a 400 naming
    ``lead.<key>``; a missing extra column is scored as unknown, and the answer says so."""
    unknown = copy.deepcopy(payload)
    unknown["lead"]["newsleter"] = "yes"
    with pytest.raises(ValidationError) as err:
        score_requests(served, [parse_request(unknown)], 3)
    (error,) = err.value.errors()
    assert error["loc"] == ("lead", "newsleter") and "takes newsletter" in error["msg"]
    wrong = copy.deepcopy(payload)
    wrong["lead"]["newsletter"] = "maybe"
    with pytest.raises(ValidationError) as err:
        score_requests(served, [parse_request(wrong)], 3)
    (error,) = err.value.errors()
    assert error["loc"] == ("lead", "newsletter") and "true/false" in error["msg"]
    assert "maybe" not in error["msg"]
    missing = copy.deepcopy(payload)
    del missing["lead"]["newsletter"]
    (card,) = score_requests(served, [parse_request(missing)], 3)
    assert any("newsletter" in w and "scored as unknown" in w for w in card["warnings"])


def assert_report_metrics_are_recomputable(report: Path, metrics: dict, bundle) -> None:
    """The report's test metrics are the registered model's, recomputed with sklearn on
    the test rows the report holds."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    test = pd.read_parquet(report / "evaluation" / "test_set.parquet")
    y = test["label"].to_numpy()
    p = bundle.predict_proba(test)
    model = metrics["test"]["model"]
    assert model["rows"] == len(test) == bundle.metadata.window.test.rows
    assert model["positives"] == y.sum() > 0
    assert model["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert model["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert model["brier"] == pytest.approx(brier_score_loss(y, np.clip(p, 1e-7, 1 - 1e-7)))
    assert metrics["flat"]["test_roc_auc"] == model["roc_auc"]
    assert bundle.metadata.test_metrics["model"]["roc_auc"] == pytest.approx(model["roc_auc"])

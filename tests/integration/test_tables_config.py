"""A ``tables``-kind dataset config end to end, as a user would run it: a CRM export with
its own column names, date format and activity names, mapped onto the contract by a config,
checked and trained through the CLI, registered, then scored through the service's path."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from features.contract import validate
from features.dataset_config import load_dataset
from features.simulate import simulate
from leadscore.cli import app
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
    """Write a simulated funnel as a CRM would export it; return the contract's tables."""
    t = simulate(n_leads, seed=seed, months=15).tables()
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
    leads["Newsletter"] = rng.choice(["yes", "no"], size=len(leads))
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
        app, ["train", "--config", str(config), "--threads", "1", "--out", str(tmp_path / "report")]
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
    # tables give the features the training set holds for the same (lead, as_of).
    ts = load_dataset(config)
    frame = ts.frame
    assert frame["n_email_open_90d"].sum() > 0, "CRM activity names were mapped"
    rows = frame.loc[frame["label"] == 1].head(2)
    rows = pd.concat([rows, frame.loc[frame["label"] == 0].head(2)]).reset_index(drop=True)
    requests = [parse_request(lead_payload(tables, r.lead_id, r.as_of)) for r in rows.itertuples()]
    cards = score_requests(served, requests, 5)
    # The lead form carries no extra export columns: the config's extra feature is
    # scored as unknown there, and the answer says so.
    expected = bundle.score(rows.assign(newsletter=np.nan))
    for i, card_i in enumerate(cards):
        assert card_i["lead_id"] == rows.at[i, "lead_id"]
        assert card_i["probability"] == pytest.approx(expected.probability[i], abs=1e-9)
        assert card_i["grade"] == expected.grade[i]
        assert any("newsletter" in w and "scored as unknown" in w for w in card_i["warnings"])
    assert cards[0]["reasons"]["positive"] or cards[0]["reasons"]["negative"]


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

"""Account training end to end: lead model, account features, comparison, MLflow registry."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest

from features.contract import ContractError
from features.simulate import simulate
from runtime import registry
from training.accounts import METHODS, fit_accounts, run_account_training, score_accounts
from training.config import TrainConfig

pytestmark = pytest.mark.slow

FAST = TrainConfig(crossfit="off", monotone="off", num_boost_round=300, num_threads=1)


def test_account_training_registers_the_better_score_with_all_three_in_its_card(tmp_path):
    tables = dict(simulate(2500, seed=5, buying_groups=True).tables())
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_account_training(
        tables, config=FAST, tracking_uri=uri, store_dir=tmp_path, output_dir=tmp_path / "out"
    )
    fit = result.fit
    assert fit.unattached == ()
    assert "Leads without a known account (scored as leads only, never rolled up): 0." in (
        result.card
    )
    assert set(fit.metrics) == set(METHODS) and fit.chosen in ("account_model", "rollup")
    for method in METHODS:
        for key in ("test_roc_auc", "test_log_loss", "test_ece"):
            assert np.isfinite(fit.metrics[method][key]), (method, key)
        assert fit.metrics[method]["test_roc_auc"] > 0.6
    assert set(fit.frame["period"]) <= {"train", "valid", "test", "gap"}
    for words in ("Account model", "Roll-up", "Best single lead", "Test ECE"):
        assert words in result.card
    assert (result.version, result.aliases) == ("1", [registry.CHALLENGER, registry.CHAMPION])
    facts = json.loads((result.output_dir / "account_model.json").read_text())
    assert facts["chosen"] == fit.chosen and facts["unattached_leads"] == 0
    assert (result.output_dir / "model.txt").exists()
    assert (result.output_dir / "lead_bundle").is_dir()
    assert (result.output_dir / "policy.json").exists()
    assert "## MQA (marketing-qualified accounts)" in result.card
    # Scoring: grades, MQAs, reasons whose exact contributions add up to the margin.
    test = fit.frame.loc[fit.frame["period"] == "test"].head(50)
    scored = score_accounts(fit, test, top=100, tables=tables)
    assert set(scored["grade"]) <= {f"{a}{d}" for a in "ABCD" for d in "1234"}
    assert scored["mqa"].dtype == bool and scored["score"].between(0, 100).all()
    raw = fit.model.predict(test).raw
    base = fit.model.predict(test).base_value
    for i in range(len(scored)):
        reasons = scored["positive_reasons"].iat[i] + scored["negative_reasons"].iat[i]
        total = sum(r["contribution"] for r in reasons)
        assert total == pytest.approx(raw[i] - base, abs=1e-6)
        assert all(r["sentence"] for r in reasons)
    assert all(set(m) <= {p.name for p in fit.personas} for m in scored["missing_personas"])
    for missing, contacts in zip(scored["missing_personas"], scored["next_contacts"], strict=True):
        assert {c["persona"] for c in contacts} <= set(missing)
    # an explicit client: the process-wide tracking URI would leak into later tests
    version = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(
        "leadscore-accounts", registry.CHAMPION
    )
    assert version.tags["chosen"] == fit.chosen


def test_training_refuses_leads_of_unknown_accounts_by_name():
    """Training data must keep the contract (scoring reports such leads as unattached:
    ``features.accounts``); the error names the column and the rows."""
    tables = dict(simulate(300, seed=5, buying_groups=True).tables())
    leads = tables["leads"].copy()
    leads.loc[leads.index[:3], "account_id"] = "A-UNKNOWN"
    tables["leads"] = leads
    with pytest.raises(ContractError, match=r"leads\.account_id: points to an unknown"):
        fit_accounts(tables, config=FAST)

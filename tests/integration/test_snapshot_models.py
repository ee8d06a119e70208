"""Lead-snapshot models end to end: served over HTTP in the features form, promoted on a
stratified hold-out, and described by their model card.

Trains on a fixed 2,000-row sample of the X Education export (``examples/x_education.yaml``
with its source pointed at the sample), through the real ``run_training`` and an MLflow
SQLite store, and serves the registered champion through the BentoML service in-process
(``TestClient``), as ``tests/integration/test_serving.py`` does for the simulator's champion.
"""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import serving_support as testing
import yaml
from typer.testing import CliRunner

from features.dataset_config import load_dataset, snapshot_frame
from serving import featureform
from serving.samples import list_samples, snapshot_payload, write_snapshot_samples
from serving.schemas import parse_request
from serving.scorer import (
    ServedModel,
    score_cards,
    snapshot_request_frame,
    snapshot_warnings,
)
from serving.settings import Settings
from training.config import train_config_from_dataset
from training.train import run_training

ROOT = Path(__file__).resolve().parents[2]
LEADS = ROOT.parent / "shared" / "datasets" / "x_education_leads" / "Leads.csv"
SAMPLE_ROWS = 2000
NAME = "x-education"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def x_education(shared_data) -> Path:
    """The X Education export: its absence fails under CI and skips elsewhere."""
    return shared_data("x_education_leads", "Leads.csv")


def _sample_config(folder: Path, **train) -> Path:
    """``examples/x_education.yaml`` pointed at a fixed sample of its export."""
    folder.mkdir(parents=True, exist_ok=True)
    sample = folder / "leads_sample.csv"
    if not sample.exists():
        pd.read_csv(LEADS, dtype=str).sample(SAMPLE_ROWS, random_state=0).to_csv(
            sample, index=False
        )
    cfg = yaml.safe_load((ROOT / "examples/x_education.yaml").read_text())
    cfg["source"]["file"] = sample.name
    cfg["train"] = {**cfg.get("train", {}), "num_boost_round": 150, **train}
    path = folder / f"x_education_sample_{len(list(folder.glob('*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _train(config: Path, store: Path, **overrides):
    ts = load_dataset(config)
    return ts, run_training(
        ts,
        config=train_config_from_dataset(ts, num_threads=1, **overrides),
        store_dir=store,
        experiment="x-education",
        model_name=NAME,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A first version (champion) in its own store, its training set and run result."""
    folder = tmp_path_factory.mktemp("x_education")
    ts, result = _train(_sample_config(folder / "data"), folder / "store")
    return ts, result, folder


@pytest.fixture(scope="module")
def client(trained):
    """The BentoML service serving that champion, with features-form samples."""
    ts, result, folder = trained
    samples = write_snapshot_samples(ts, folder / "samples", 6, result.bundle)
    settings = Settings(
        tracking_uri=result.tracking_uri,
        model_name=NAME,
        samples_dir=samples,
        bentoml_home=folder / "bentoml",
    )
    with testing.service_client(settings) as c:
        yield c


def _test_rows(ts, result, n: int = 4) -> pd.DataFrame:
    """Rows of the hold-out: what the model never saw."""
    test_ids = set(
        pd.read_parquet(
            mlflow.MlflowClient(result.tracking_uri).download_artifacts(
                result.run_id, "evaluation/test_set.parquet"
            )
        )["lead_id"]
    )
    return ts.frame.loc[ts.frame["lead_id"].isin(test_ids)].head(n).reset_index(drop=True)


# --- serving: the features form over HTTP --------------------------------------------


def test_features_request_over_http_equals_the_bundle(client, trained):
    """The HTTP answer for a raw feature row is the bundle's own score of the training row."""
    ts, result, _ = trained
    bundle = result.bundle
    rows = _test_rows(ts, result)
    expected = bundle.score(rows)
    names = set(bundle.spec.names)
    for i, row in rows.iterrows():
        payload = snapshot_payload(row, bundle.spec.features_)
        r = client.post("/score", json={**payload, "top_reasons": 20})
        assert r.status_code == 200, r.text
        card = r.json()
        assert card["lead_id"] == row["lead_id"]
        assert card["probability"] == pytest.approx(expected.probability[i], abs=1e-12)
        assert card["score"] == int(expected.score[i])
        assert card["grade"] == expected.grade[i]
        assert card["mql"] == bool(expected.mql[i])
        assert card["model"] == {"name": NAME, "version": "1", "alias": "champion"}
        assert card["as_of"].startswith("2019-01-01"), "the config's fixed as_of"
        assert card["reasons"] == json.loads(json.dumps(expected.reasons(i, bundle.spec, 20)))
        reasons = card["reasons"]["positive"] + card["reasons"]["negative"]
        assert reasons and {x["feature"] for x in reasons} <= names
        for reason in reasons:
            assert "{" not in reason["sentence"]
        # The same features, straight through snapshot_frame in-process.
        direct = bundle.score(snapshot_frame(bundle.spec.features_, [payload["features"]]))
        assert direct.probability[0] == pytest.approx(card["probability"], abs=1e-12)


def test_features_batch_and_template_sentences(client, trained):
    ts, result, _ = trained
    rows = _test_rows(ts, result, 3)
    payloads = [snapshot_payload(row, result.bundle.spec.features_) for _, row in rows.iterrows()]
    one = [client.post("/score", json=p).json() for p in payloads]
    r = client.post("/score_batch", json={"leads": payloads})
    assert r.status_code == 200, r.text
    for a, b in zip(r.json(), one, strict=True):
        assert not testing.card_differences(a, b)
    strong = client.post(
        "/score",
        json={
            "lead_id": "hot",
            "features": {
                "lead_origin": "Lead Add Form",
                "time_on_website": 1500,
                "occupation": "Working Professional",
                "do_not_email": "No",
                "total_visits": 5,
            },
        },
    )
    assert strong.status_code == 200, strong.text
    card = strong.json()
    sentences = [x["sentence"] for x in card["reasons"]["positive"]]
    assert any(
        s in sentences
        for s in (
            "Came in through Lead Add Form",
            "Occupation: Working Professional",
            "Spent 1500 seconds on the website",
        )
    ), sentences
    assert any("features not given, scored as unknown" in w for w in card["warnings"])


def test_unknown_feature_wrong_type_and_wrong_form_are_400s(client):
    r = client.post("/score", json={"features": {"tags": "Will revert", "time_on_website": 3}})
    assert r.status_code == 400, r.text
    (error,) = r.json()["detail"]
    assert error["loc"] == ["features", "tags"] and "unknown feature 'tags'" in error["msg"]
    assert "time_on_website" in error["msg"], "the message lists the model's features"

    r = client.post(
        "/score", json={"features": {"time_on_website": "a while", "do_not_email": "maybe"}}
    )
    assert r.status_code == 400, r.text
    errors = {tuple(e["loc"]): e["msg"] for e in r.json()["detail"]}
    assert (
        errors[("features", "time_on_website")]
        == "feature 'time_on_website' takes a number: the text sent does not read as one"
    )
    assert "takes true/false" in errors[("features", "do_not_email")]
    assert "a while" not in r.text and "maybe" not in r.text, "no request value echoed"

    r = client.post("/score", json={"features": {"total_visits": [1, 2]}})
    assert r.status_code == 400 and r.json()["detail"][0]["loc"] == ["features", "total_visits"]

    lead = {
        "lead": {"lead_id": "L1", "created_at": "2018-12-01T00:00:00Z"},
        "as_of": "2019-01-01T00:00:00Z",
    }
    r = client.post("/score", json=lead)
    assert r.status_code == 400, r.text
    (error,) = r.json()["detail"]
    assert (
        error["loc"] == ["lead"] and "send the lead's feature values as `features`" in error["msg"]
    )

    both = {**lead, "features": {"total_visits": 3}}
    r = client.post("/score", json=both)
    assert r.status_code == 400 and "not both" in r.text
    r = client.post("/score", json={"as_of": "2019-01-01T00:00:00Z"})
    assert r.status_code == 400 and "`lead`" in r.text and "`features`" in r.text


def test_unknown_category_is_scored_as_unknown_with_a_warning(client):
    r = client.post(
        "/score", json={"features": {"lead_origin": "Carrier pigeon", "total_visits": 2}}
    )
    assert r.status_code == 200, r.text
    card = r.json()
    assert card["lead_id"] == ""
    assert any(
        "features.lead_origin 'Carrier pigeon' is not one of the model's categories" in w
        for w in card["warnings"]
    )


def test_model_info_samples_and_page_for_a_snapshot_model(client, trained):
    _, result, _ = trained
    info = client.get("/model").json()
    assert info["request_form"] == "features"
    assert info["trained_on"]["dataset"] == {
        "name": "x_education",
        "kind": "lead_snapshot",
        "id": "Prospect ID",
        "outcome": {"column": "Converted", "positive": [1]},
        "as_of": "2019-01-01",
    }
    inputs = {f["name"]: f for f in info["inputs"]}
    assert list(inputs) == result.bundle.spec.names
    assert inputs["do_not_email"]["dtype"] == "bool"
    assert "Lead Add Form" in inputs["lead_origin"]["categories"]
    listed = client.get("/samples").json()
    assert len(listed) == 6
    assert {s["label"].split(":")[0] for s in listed} == {"Converted", "Did not convert"}
    for item in listed:
        payload = client.get(f"/samples/{item['name']}").json()
        assert set(payload) == {"lead_id", "features", "as_of"}
        r = client.post("/score", json=payload)
        assert r.status_code == 200, r.text
        assert r.json()["lead_id"] == item["lead_id"]
    assert 'id="score-btn"' in client.get("/try").text


def test_features_request_to_an_activity_model_is_a_400(root, champion):
    """The simulator's champion computes its features from activities: the features form
    is refused naming `features`, in /score and in /score_batch."""
    with testing.service_client(testing.session_settings(root)) as c:
        assert c.get("/model").json()["request_form"] == "lead"
        body = {"lead_id": "F-1", "features": {"time_on_website": 1500}}
        r = c.post("/score", json=body)
        assert r.status_code == 400, r.text
        (error,) = r.json()["detail"]
        assert error["loc"] == ["features"]
        assert (
            "computes its features from the lead's profile and activities" in error["msg"]
            and "send `lead`" in error["msg"]
        )
        r = c.post("/score_batch", json={"leads": [body]})
        assert r.status_code == 400 and "send `lead`" in r.text


# --- promotion on a stratified hold-out ----------------------------------------------


def test_promote_stratified_models_on_the_challengers_hold_out(tmp_path, monkeypatch):
    """``leadscore promote`` re-scores both versions on the challenger's hold-out rows."""
    from runtime import registry

    data = tmp_path / "data"
    _, weak = _train(  # a deliberately weak LightGBM (not a candidate choice)
        _sample_config(data, params={"num_leaves": 2}, num_boost_round=3),
        tmp_path / "store",
        model="lightgbm",
    )
    _, strong = _train(_sample_config(data), tmp_path / "store")
    assert (weak.version, strong.version) == ("1", "2")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("LEADSCORE_TRACKING_URI", raising=False)  # a served fixture's, if any
    monkeypatch.setenv("LEADSCORE_HOME", str(tmp_path / "store"))
    monkeypatch.setenv("LEADSCORE_MODEL_NAME", NAME)
    from leadscore.cli import app

    out = CliRunner().invoke(app, ["promote", "--metric", "roc_auc", "--margin", "0.001"])
    assert out.exit_code == 0, out.output
    last = json.loads(
        mlflow.MlflowClient(strong.tracking_uri).get_registered_model(NAME).tags["promotion.last"]
    )
    assert last["decision"] == "promoted" and last["promoted"]
    test_rows = strong.bundle.metadata.window.test.rows
    assert last["rows"] == test_rows == SAMPLE_ROWS // 4
    assert last["challenger_score"] == pytest.approx(strong.metrics["test_roc_auc"])
    assert last["champion_score"] == pytest.approx(weak.metrics["test_roc_auc"])
    assert last["champion_score"] < last["challenger_score"]
    assert last["warning"] is None, "same split, same rows: the champion never saw them"
    tags = mlflow.MlflowClient(strong.tracking_uri).get_model_version(NAME, "2").tags
    assert tags["promotion.decision"] == "promoted" and tags["promotion.rows"] == str(test_rows)
    with registry.tracking(strong.tracking_uri) as client:
        assert registry.version_info(client, NAME, registry.CHAMPION).version == "2"

    # Promoting again is a no-op; re-cutting the hold-out from the data gives the same rows.
    again = CliRunner().invoke(app, ["promote"])
    assert again.exit_code == 0 and "already_champion" in again.output
    from training.promote import promote

    third_ts, third = _train(_sample_config(data, params={"num_leaves": 4}), tmp_path / "store")
    decided = promote(strong.tracking_uri, model_name=NAME, data=third_ts, margin=0.5)
    assert decided.decision == "rejected" and decided.rows == test_rows
    assert decided.challenger_score == pytest.approx(third.metrics["test_roc_auc"])


def test_promote_warns_when_the_champion_trained_on_the_challengers_hold_out(tmp_path):
    """A champion split with another seed was fitted on some of the challenger's test rows."""
    from training.promote import promote

    data = tmp_path / "data"
    _train(_sample_config(data), tmp_path / "store")
    cfg = _sample_config(data)
    spec = yaml.safe_load(cfg.read_text())
    spec["split"]["seed"] = 1
    cfg.write_text(yaml.safe_dump(spec, sort_keys=False))
    _, second = _train(cfg, tmp_path / "store")
    decided = promote(second.tracking_uri, model_name=NAME, force=True)
    assert decided.decision in ("promoted", "forced")
    assert decided.warning and "not in the champion's own hold-out" in decided.warning


# --- the model card ------------------------------------------------------------------


def test_card_states_the_snapshot_config(trained):
    _, result, _ = trained
    card = result.card
    assert "not recorded" not in card
    assert "fixed date, 2019-01-01" in card
    assert "- Outcome: converted when column `Converted` is `1`." in card
    assert "- Scoring time: a fixed `as_of` of 2019-01-01 for every lead" in card
    assert "- Split: stratified random hold-out of 25% (seed 0)" in card
    assert "A lead counts as converted when column `Converted` is `1`." in card
    assert "id column `Prospect ID`" in card
    assert "## Test results (stratified hold-out" in card
    assert "The hold-out is a random sample of the same leads" in card
    assert "test period holds only leads first seen in it" not in card


def test_cli_train_config_writes_features_form_samples(tmp_path, monkeypatch):
    """``leadscore train --config`` on a lead-snapshot export leaves sample leads that the
    page can send as they are (features form, the model's own feature names)."""
    from leadscore.cli import app

    config = _sample_config(tmp_path / "data")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("LEADSCORE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LEADSCORE_MODEL_NAME", NAME)
    out = CliRunner().invoke(app, ["train", "--config", str(config), "--threads", "1"])
    assert out.exit_code == 0, out.output
    meta = load_dataset(config).metadata
    folder = tmp_path / "home" / "samples" / meta.dataset.name
    printed = "".join(out.output.split())  # rich wraps long lines anywhere
    assert f"leadscoreserve--samples{folder}" in printed
    listed = list_samples(folder)
    assert len(listed) == 6
    for item in listed:
        body = json.loads((folder / f"{item['name']}.json").read_text())
        assert parse_request(body).form == "features"
        assert body["features"] and set(body["features"]) <= set(meta.features)


def test_cli_train_without_points_rules_prints_no_points_nan(tmp_path, monkeypatch):
    """A config without points rules has no points baseline: ``train`` says nothing of it
    (it used to print ``points nan``) and names the registered model's kind."""
    from leadscore.cli import app

    config = _sample_config(tmp_path / "data")
    cfg = yaml.safe_load(config.read_text())
    cfg.pop("points", None)
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("LEADSCORE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LEADSCORE_MODEL_NAME", NAME)
    out = CliRunner().invoke(
        app, ["train", "--config", str(config), "--threads", "1", "--no-register"]
    )
    assert out.exit_code == 0, out.output
    [line] = [line for line in out.output.splitlines() if "test ROC AUC" in line]
    assert "nan" not in line and "points" not in line
    assert "(logistic " in line and "; model: " in " ".join(out.output.split())


def test_features_form_without_a_frame_equals_the_frame_path(trained):
    """``serving.featureform`` types values as ``snapshot_frame`` does: same cards."""
    ts, result, _ = trained
    bundle = result.bundle
    model = ServedModel(bundle, NAME, "1", "champion", "registry")
    rows = _test_rows(ts, result, 40)
    payloads = [snapshot_payload(row, bundle.spec.features_) for _, row in rows.iterrows()]
    payloads += [
        {"lead_id": "sparse", "features": {"total_visits": 3}},
        {
            "lead_id": "odd",
            "features": {
                "lead_origin": "Never Seen",
                "do_not_email": "YES",
                "do_not_call": "n",
                "time_on_website": 12.5,
            },
        },
    ]
    requests = [parse_request(p) for p in payloads]
    values = featureform.feature_values(bundle, requests)
    assert values is not None, "every payload here has an unambiguous typing"
    fast = featureform.score_feature_values(
        bundle, model.ref(), requests, values, snapshot_warnings(bundle, requests), 5
    )
    frame, warnings = snapshot_request_frame(bundle, requests)
    _, slow = score_cards(model, frame, 5)
    for a, b, req, warn in zip(fast, slow, requests, warnings, strict=True):
        b.update(lead_id=req.scored_id, as_of=req.as_of.replace(tzinfo=UTC), warnings=warn)
        assert not testing.card_differences(a, b, tol=1e-12), (req.scored_id, a, b)
    assert any("not one of the model's categories" in w for w in fast[-1]["warnings"])
    # a number sent for a category is left to snapshot_frame (and its wording)
    odd = parse_request({"features": {"lead_origin": 7}})
    assert featureform.feature_values(bundle, [odd]) is None

"""The scoring service in-process: answers, exact SHAP, validation, model info, samples.

The model is the session's champion, trained by the real training stage and resolved
through a real MLflow SQLite registry under the session's temporary folder, then
imported into a BentoML store there too (``serving_support``).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import serving_support as testing
import shap
from pydantic import ValidationError

from features.pipeline import compute_features
from serving.model_store import (
    BENTO_MODEL_NAME,
    ModelNotAvailableError,
    import_champion,
    resolve_model,
)
from serving.samples import lead_payload, list_samples
from serving.schemas import (
    MAX_ACTIVITIES,
    MAX_BATCH,
    MAX_BATCH_ACTIVITIES,
    FeaturesFormRequest,
    LeadFormRequest,
    parse_batch_json,
    parse_request,
    parse_request_json,
)
from serving.settings import Settings

pytestmark = pytest.mark.slow

GRADE = re.compile(r"^[A-D][1-4]$")


@pytest.fixture(scope="module")
def settings(root: Path, champion: testing.Champion) -> Settings:
    return testing.session_settings(root)


@pytest.fixture(scope="module")
def client(settings: Settings):
    with testing.service_client(settings) as c:
        yield c


@pytest.fixture(scope="module")
def served(settings: Settings):
    return resolve_model(settings)


@pytest.fixture(scope="module")
def samples(settings: Settings) -> list[dict]:
    folder = settings.samples_dir
    items = list_samples(folder)
    assert len(items) == 6
    return [json.loads((folder / f"{s['name']}.json").read_text()) for s in items]


@pytest.fixture(scope="module")
def payload(samples: list[dict]) -> dict:
    return samples[0]


def batch_features(tables: dict[str, pd.DataFrame], payloads: list[dict]) -> pd.DataFrame:
    """Features of the payloads' leads computed from the full tables (the batch path)."""
    snaps = pd.DataFrame(
        {
            "lead_id": [p["lead"]["lead_id"] for p in payloads],
            "as_of": pd.to_datetime([p["as_of"] for p in payloads])
            .tz_localize(None)
            .astype("datetime64[us]"),
        }
    )
    return compute_features(tables["leads"], tables["accounts"], tables["activities"], snaps)


# --- answers -------------------------------------------------------------------------


def test_score_returns_a_complete_score_card(client, payload, champion):
    r = client.post("/score", json=payload)
    assert r.status_code == 200, r.text
    card = r.json()
    assert card["lead_id"] == payload["lead"]["lead_id"]
    assert 0.0 <= card["probability"] <= 1.0
    assert 0.0 <= card["probability_low"] <= card["probability"] <= card["probability_high"] <= 1
    assert 0 <= card["score"] <= 100
    assert GRADE.match(card["grade"])
    assert card["mql"] == (card["probability"] >= card["threshold"])
    assert card["model"] == {
        "name": "lead-scoring",
        "version": champion.version,
        "alias": "champion",
    }
    assert card["as_of"].startswith(payload["as_of"][:19])
    pos, neg = card["reasons"]["positive"], card["reasons"]["negative"]
    assert 0 < len(pos) <= 5 and len(neg) <= 5
    assert all(r["contribution"] > 0 for r in pos)
    assert all(r["contribution"] < 0 for r in neg)
    assert [r["contribution"] for r in pos] == sorted(
        (r["contribution"] for r in pos), reverse=True
    )
    assert [r["contribution"] for r in neg] == sorted(r["contribution"] for r in neg)
    for reason in pos + neg:
        assert reason["sentence"] and "{" not in reason["sentence"]
        assert reason["group"] in ("fit", "engagement")


def test_a_reason_reads_as_plain_language(client, served):
    """A lead with pricing-page visits gets the catalogue's sentence with its count."""
    payload = {
        "lead": {
            "lead_id": "P-1",
            "created_at": "2024-06-01T00:00:00Z",
            "region": "NA",
            "seniority": "VP",
            "department": "Marketing",
        },
        "activities": [
            {"occurred_at": f"2024-06-{d:02d}T12:00:00Z", "activity_type": "pricing_page_view"}
            for d in (10, 12, 14, 20)
        ],
        "as_of": "2024-06-25T00:00:00Z",
        "include_contributions": True,
        "top_reasons": 20,
    }
    card = client.post("/score", json=payload).json()
    reasons = card["reasons"]["positive"] + card["reasons"]["negative"]
    spec = {f.name: f for f in served.bundle.spec.features_}
    signals = {s.name: s for s in served.bundle.spec.signals_}
    for reason in reasons:  # one reason per signal: its features' SHAP summed, one sentence
        members = [(spec[m["feature"]], m["value"], m["contribution"]) for m in reason["features"]]
        assert reason["sentence"] == signals[reason["signal"]].sentence(members)[0]
        assert reason["feature"] == reason["signal"]
        assert sum(m["contribution"] for m in reason["features"]) == pytest.approx(
            reason["contribution"], abs=1e-12
        )
    pricing = signals["pricing_page_view"]
    windows = [(spec[n], v, 0.1) for n, v in zip(pricing.features, (1.0, 4.0, 4.0), strict=True)]
    merged = "Visited the pricing page 1 time in the last 7 days (4 in 90 days)"
    assert pricing.sentence(windows)[0] == merged
    for reason in reasons:
        if reason["signal"] == "pricing_page_view":
            assert reason["sentence"] == merged


def test_shap_values_are_exact(client, samples, champion, served):
    """Contributions equal shap.TreeExplainer to 1e-6 and add up to the raw output."""
    body = {"leads": [{**p, "include_contributions": True} for p in samples]}
    r = client.post("/score_batch", json=body)
    assert r.status_code == 200, r.text
    cards = r.json()
    frame = batch_features(champion.tables, samples)
    bundle = served.bundle
    X = bundle.spec.transform(frame)
    expected = shap.TreeExplainer(bundle.booster).shap_values(X)
    expected = expected[1] if isinstance(expected, list) else expected
    raw = bundle.booster.predict(X, raw_score=True)
    for i, card in enumerate(cards):
        got = np.array([card["contributions"][name] for name in bundle.spec.names])
        np.testing.assert_allclose(got, expected[i], atol=1e-6, rtol=0)
        assert card["base_value"] + got.sum() == pytest.approx(card["raw_score"], abs=1e-9)
        assert card["raw_score"] == pytest.approx(raw[i], abs=1e-9)
        assert card["probability"] == pytest.approx(
            float(bundle.calibration(np.array([raw[i]]))[0]), abs=1e-12
        )
        low, high = bundle.calibration.interval(np.array([raw[i]]))
        assert (card["probability_low"], card["probability_high"]) == pytest.approx(
            (float(low[0]), float(high[0])), abs=1e-12
        )


def test_batch_answers_equal_single_answers_in_order(client, samples):
    batch = client.post("/score_batch", json={"leads": samples}).json()
    assert [c["lead_id"] for c in batch] == [p["lead"]["lead_id"] for p in samples]
    for payload, card in zip(samples, batch, strict=True):
        single = client.post("/score", json=payload).json()
        assert not testing.card_differences(single, card)


def test_two_callers_with_the_same_lead_id_are_kept_apart(client, payload):
    quiet = copy.deepcopy(payload)
    quiet["activities"] = []
    cards = client.post("/score_batch", json={"leads": [payload, quiet]}).json()
    assert cards[0]["lead_id"] == cards[1]["lead_id"]
    assert cards[0]["raw_score"] != cards[1]["raw_score"]
    assert not testing.card_differences(cards[1], client.post("/score", json=quiet).json())


REGION_THRESHOLDS = {"NA": 1e-9, "EMEA": 1.0 - 1e-9, "APAC": 0.0123}
"""A regional policy whose thresholds differ from the global one and from each other:
every NA lead is an MQL, no EMEA lead is, APAC has its own cut and LATAM none."""


def regional_bundle(served, folder: Path) -> Path:
    """The served champion saved with ``REGION_THRESHOLDS`` in its policy."""
    from dataclasses import replace

    from runtime.bundle import ModelBundle

    bundle = served.bundle
    policy = replace(bundle.policy, region_thresholds=dict(REGION_THRESHOLDS))
    assert policy.threshold not in REGION_THRESHOLDS.values()
    return ModelBundle(
        bundle.margin, bundle.spec, bundle.calibration, policy, bundle.metadata
    ).save(folder)


def test_mql_uses_the_regions_own_threshold(served, settings, payload, tmp_path):
    folder = regional_bundle(served, tmp_path / "regional")
    regional = Settings(model_dir=folder, samples_dir=settings.samples_dir)
    global_threshold = served.bundle.policy.threshold
    with testing.service_client(regional) as regional_client:
        assert regional_client.get("/model").json()["policy"]["region_thresholds"] == (
            pytest.approx(REGION_THRESHOLDS)
        )
        lead = copy.deepcopy(payload)
        for region, threshold, name in (
            *((r, t, r) for r, t in REGION_THRESHOLDS.items()),
            ("LATAM", global_threshold, None),
            (None, global_threshold, None),
        ):
            lead["lead"]["region"] = region
            card = regional_client.post("/score", json=lead).json()
            assert card["threshold"] == pytest.approx(threshold), region
            assert card["threshold_region"] == name, region
            assert card["mql"] == (card["probability"] >= threshold), region
        batch = [copy.deepcopy(payload) for _ in REGION_THRESHOLDS]
        for body, region in zip(batch, REGION_THRESHOLDS, strict=True):
            body["lead"]["region"] = region
        cards = regional_client.post("/score_batch", json={"leads": batch}).json()
    assert [c["threshold"] for c in cards] == pytest.approx(list(REGION_THRESHOLDS.values()))
    assert [c["mql"] for c in cards][:2] == [True, False]


# --- documented handling of awkward input --------------------------------------------


def test_minimal_lead_with_no_activities_is_scored_on_fit_alone(client):
    r = client.post(
        "/score", json={"lead": {"lead_id": "M-1", "created_at": "2024-03-01T00:00:00"}}
    )
    assert r.status_code == 200, r.text
    card = r.json()
    assert GRADE.match(card["grade"])
    # as_of defaults to now, long after the oldest lead the model was trained on
    assert len(card["warnings"]) == 1
    assert re.fullmatch(
        r"lead is \d+ days old; the model was trained on leads up to 180 days old",
        card["warnings"][0],
    )
    assert card["as_of"] > "2024-03-01"
    r = client.post(
        "/score",
        json={
            "lead": {"lead_id": "M-1", "created_at": "2024-03-01T00:00:00"},
            "as_of": "2024-03-15T00:00:00",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["warnings"] == []


def test_unknown_categories_are_scored_as_unknown_and_reported(client, payload):
    odd = copy.deepcopy(payload)
    odd["lead"]["seniority"] = "Galactic Overlord"
    odd["account"] = {**(odd.get("account") or {}), "industry": "Alchemy"}
    missing = copy.deepcopy(payload)
    missing["lead"]["seniority"] = None
    missing["account"] = {**(missing.get("account") or {}), "industry": None}
    card = client.post("/score", json=odd).json()
    assert any("lead.seniority 'Galactic Overlord'" in w for w in card["warnings"])
    assert any("account.industry 'Alchemy'" in w for w in card["warnings"])
    assert card["raw_score"] == client.post("/score", json=missing).json()["raw_score"]


def test_unknown_activity_types_count_as_other(client, payload):
    odd = copy.deepcopy(payload)
    odd["activities"].append({"occurred_at": odd["as_of"], "activity_type": "carrier_pigeon"})
    other = copy.deepcopy(payload)
    other["activities"].append({"occurred_at": other["as_of"], "activity_type": "other"})
    card = client.post("/score", json={**odd, "include_contributions": True}).json()
    assert any("unknown type counted as 'other'" in w for w in card["warnings"])
    expected = client.post("/score", json={**other, "include_contributions": True}).json()
    assert card["contributions"] == expected["contributions"]


def test_activities_after_as_of_are_ignored_and_reported(client, payload):
    later = copy.deepcopy(payload)
    later["activities"] += [
        {"occurred_at": "2199-01-01T00:00:00Z", "activity_type": "demo_request"}
    ] * 3
    card = client.post("/score", json=later).json()
    assert "3 activities after as_of ignored" in card["warnings"]
    base = client.post("/score", json=payload).json()
    assert card["raw_score"] == base["raw_score"]


def test_time_zones_are_converted_to_utc(client, payload):
    shifted = copy.deepcopy(payload)
    as_of = pd.Timestamp(payload["as_of"])
    shifted["as_of"] = (
        as_of.tz_convert("Europe/Berlin")
        if as_of.tzinfo
        else as_of.tz_localize("UTC").tz_convert("Europe/Berlin")
    ).isoformat()
    a = client.post("/score", json=payload).json()
    b = client.post("/score", json=shifted).json()
    assert a["raw_score"] == b["raw_score"] and a["as_of"] == b["as_of"]


def test_blank_text_counts_as_missing(client, payload):
    blank = copy.deepcopy(payload)
    blank["lead"]["department"] = "   "
    none = copy.deepcopy(payload)
    none["lead"]["department"] = None
    assert (
        client.post("/score", json=blank).json()["raw_score"]
        == client.post("/score", json=none).json()["raw_score"]
    )


# --- validation: 4xx naming the field, never 500 -------------------------------------


def _set(payload: dict, path: str, value: object) -> dict:
    out = copy.deepcopy(payload)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if value is _DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


_DELETE = object()

BAD_INPUT = [
    ("lead", _DELETE, "lead"),
    ("lead.lead_id", _DELETE, "lead_id"),
    ("lead.lead_id", "   ", "lead_id"),
    ("lead.lead_id", "x" * 500, "lead_id"),
    ("lead.created_at", "last tuesday", "created_at"),
    ("lead.created_at", "1850-01-01", "created_at"),
    ("lead.created_at", "2199-01-01T00:00:00Z", "created_at"),
    ("lead.region", 42, "region"),
    ("lead.senority", "VP", "senority"),
    ("account.employee_count", -5, "employee_count"),
    ("account.annual_revenue", "lots", "annual_revenue"),
    ("account.account_id", "SOMEONE-ELSE", "account_id"),
    ("activities", "many", "activities"),
    ("activities.0", {"activity_type": "page_view"}, "occurred_at"),
    ("activities.0", {"occurred_at": "2024-01-01"}, "activity_type"),
    ("activities.0.lead_id", "ANOTHER-LEAD", "lead_id"),
    ("as_of", "soon", "as_of"),
    ("top_reasons", 0, "top_reasons"),
    ("include_contributions", "maybe", "include_contributions"),
]


@pytest.mark.parametrize(
    ("path", "value", "field"),
    BAD_INPUT,
    ids=[f"{p}={v if v is not _DELETE else 'missing'}"[:40] for p, v, _ in BAD_INPUT],
)
def test_bad_input_is_a_400_naming_the_field(client, payload, path, value, field):
    body = copy.deepcopy(payload)
    body.setdefault("account", {"account_id": body["lead"].get("account_id")})
    if not body["activities"]:
        body["activities"] = [{"occurred_at": body["as_of"], "activity_type": "page_view"}]
    if path == "account.account_id":
        body["lead"]["account_id"] = "MINE"
    r = client.post("/score", json=_set(body, path, value))
    assert r.status_code == 400, r.text
    assert field in r.text


def test_too_many_activities_is_a_400(client, payload):
    body = copy.deepcopy(payload)
    body["activities"] = [{"occurred_at": payload["as_of"], "activity_type": "page_view"}] * (
        MAX_ACTIVITIES + 1
    )
    r = client.post("/score", json=body)
    assert r.status_code == 400 and "activities" in r.text


@pytest.mark.parametrize(
    "body", [b"", b"not json", b"[1, 2]", b'{"lead": ', b"null", "\u00e9".encode("latin-1")]
)
def test_malformed_bodies_are_a_400(client, body):
    r = client.post("/score", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text


def test_a_non_json_content_type_is_not_a_500(client, payload):
    r = client.post("/score", content=json.dumps(payload), headers={"content-type": "text/plain"})
    assert r.status_code == 200
    r = client.post(
        "/score", content=b"lead=1", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert 400 <= r.status_code < 500


def test_bad_batches_are_a_400_naming_the_lead(client, payload, monkeypatch):
    r = client.post("/score_batch", json={"leads": [payload, {"lead": {"lead_id": "x"}}]})
    assert r.status_code == 400 and "leads" in r.text and "created_at" in r.text
    r = client.post("/score_batch", json={"leads": payload})
    assert r.status_code == 400 and "leads" in r.text
    small = {"lead": {"lead_id": "S", "created_at": "2024-01-01"}, "as_of": "2024-02-01"}
    r = client.post("/score_batch", json={"leads": [small] * (MAX_BATCH + 1)})
    assert r.status_code == 400 and "leads" in r.text
    r = client.post("/score_batch", json={"leads": []})
    assert r.status_code == 200 and r.json() == []
    monkeypatch.setattr("serving.schemas.MAX_BATCH_ACTIVITIES", 10)
    busy = {
        **small,
        "activities": [{"occurred_at": "2024-01-05", "activity_type": "page_view"}] * 4,
    }
    r = client.post("/score_batch", json={"leads": [busy] * 3})
    assert r.status_code == 400 and "split it" in r.text
    assert MAX_BATCH_ACTIVITIES >= MAX_BATCH * 100


# --- the request union: one body, two forms, errors at the field ---------------------

LEAD_BODY = {
    "lead": {"lead_id": "L-1", "created_at": "2024-01-01T00:00:00Z"},
    "activities": [{"occurred_at": "2024-01-02T00:00:00Z", "activity_type": "page_view"}],
    "as_of": "2024-02-01T00:00:00Z",
}
FEATURES_BODY = {
    "lead_id": "F-1",
    "features": {"time_on_website": 1500, "origin": "Ad"},
    "as_of": "2019-01-01T00:00:00Z",
}
FORM_ERRORS = [
    ({}, ("lead",), "lead_or_features", "or `features`"),
    (
        {"as_of": "2024-02-01T00:00:00Z", "features": None},
        ("lead",),
        "lead_or_features",
        "give `lead`",
    ),
    ({**LEAD_BODY, "features": {"x": 1}}, ("features",), "lead_and_features", "not both"),
    ({**LEAD_BODY, "lead_id": "L-1"}, ("lead_id",), "lead_id_in_lead_form", "`lead.lead_id`"),
    (
        {**FEATURES_BODY, "account": {"industry": "Software"}},
        ("account",),
        "features_form",
        "belongs to the lead form",
    ),
    (
        {**LEAD_BODY, "lead": {"lead_id": "L-1", "created_at": "soon"}},
        ("lead", "created_at"),
        "datetime_from_date_parsing",
        "datetime",
    ),
    (
        {**LEAD_BODY, "as_of": "2023-01-01T00:00:00Z"},
        ("lead", "created_at"),
        "created_after_as_of",
        "cannot be scored before it exists",
    ),
    ({"features": {"x": [1]}}, ("features", "x"), "feature_value", "got a list"),
    ([], (), "model_type", "Input should be"),
]


def test_each_form_parses_into_its_own_model():
    lead = parse_request(LEAD_BODY)
    assert isinstance(lead, LeadFormRequest) and lead.form == "lead"
    assert lead.scored_id == "L-1" and len(lead.activities) == 1
    features = parse_request(FEATURES_BODY)
    assert isinstance(features, FeaturesFormRequest) and features.form == "features"
    assert features.scored_id == "F-1" and features.features["time_on_website"] == 1500
    # keys of the other form sent empty are accepted, as before
    quiet = parse_request({"features": {}, "lead": None, "account": None, "activities": []})
    assert quiet.form == "features" and quiet.scored_id == "" and quiet.as_of is not None
    assert parse_request({**LEAD_BODY, "lead_id": " ", "features": None}).form == "lead"
    for body in (LEAD_BODY, FEATURES_BODY):  # the service's fast path reads the same request
        text = json.dumps(body)
        for form in (None, "lead", "features"):
            assert parse_request_json(text, form) == parse_request(body)


@pytest.mark.parametrize(
    ("body", "loc", "kind", "words"), FORM_ERRORS, ids=[e[2] for e in FORM_ERRORS]
)
def test_request_errors_name_the_field_whatever_form_is_tried_first(body, loc, kind, words):
    """The union's member tag never shows in a location: each error sits at the field, as
    when both forms were one model, and the served model's form changes nothing."""
    for parse in (
        lambda: parse_request(body),
        *(lambda f=f: parse_request_json(json.dumps(body), f) for f in (None, "lead", "features")),
    ):
        with pytest.raises(ValidationError) as caught:
            parse()
        assert caught.value.title == "ScoreRequest"
        (error,) = caught.value.errors()
        assert (error["loc"], error["type"]) == (loc, kind) and words in error["msg"]


def test_batch_errors_name_the_lead_and_the_field():
    body = json.dumps({"leads": [LEAD_BODY, {}, {**FEATURES_BODY, "activities": [{}]}]})
    for form in (None, "lead", "features"):
        with pytest.raises(ValidationError) as caught:
            parse_batch_json(body, form)
        assert [(e["loc"], e["type"]) for e in caught.value.errors()] == [
            (("leads", 1, "lead"), "lead_or_features"),
            (("leads", 2, "activities"), "features_form"),
        ]
    leads = parse_batch_json(json.dumps({"leads": [LEAD_BODY, FEATURES_BODY]}), "lead")
    assert [lead.form for lead in leads] == ["lead", "features"]


def _mutations(payload: dict, rng: np.random.Generator, n: int) -> list[object]:
    """Random damage to a valid payload: wrong types, missing and extra keys, odd values."""
    odd_values = [
        None,
        "",
        " ",
        0,
        -1,
        1e308,
        True,
        [],
        {},
        "2024-13-45",
        "\u0000",
        "9" * 300,
        [None],
        {"x": 1},
        -1e-9,
        "NaN",
        "2024-01-01T00:00:00+25:00",
    ]
    out: list[object] = []
    for _ in range(n):
        body = copy.deepcopy(payload)
        for _ in range(int(rng.integers(1, 4))):
            node, parents = body, []
            while isinstance(node, dict | list) and node and rng.random() < 0.7:
                key = (
                    list(node)[int(rng.integers(len(node)))]
                    if isinstance(node, dict)
                    else int(rng.integers(len(node)))
                )
                parents.append((node, key))
                node = node[key]
            if not parents:
                continue
            container, key = parents[-1]
            action = rng.random()
            if action < 0.6:
                container[key] = odd_values[int(rng.integers(len(odd_values)))]
            elif action < 0.8 and isinstance(container, dict):
                del container[key]
            elif isinstance(container, dict):
                container["unexpected_" + str(key)] = 1
        out.append(body)
    return out


def test_random_damage_never_causes_a_500(client, payload):
    """Whatever is wrong with a request, the answer is 200 (handled) or 400 (named)."""
    rng = np.random.default_rng(4)
    seen = set()
    for body in _mutations(payload, rng, 150):
        r = client.post("/score", json=body)
        assert r.status_code in (200, 400), (body, r.text)
        seen.add(r.status_code)
    assert seen == {200, 400}


def test_samples_are_valid_requests_of_both_kinds(champion, samples):
    conv = champion.tables["conversions"].set_index("lead_id")["converted_at"]
    kinds = []
    for body in samples:
        request = parse_request(body)
        assert all(
            pd.Timestamp(a.occurred_at).tz_convert(None) <= request.as_of
            for a in request.activities
        )  # activities keep their offset ("Z")
        converted = conv.get(request.lead.lead_id)
        kinds.append(converted is not None and converted > pd.Timestamp(request.as_of))
    assert kinds == [True, True, True, False, False, False]


# --- model info, samples, page, health, OpenAPI --------------------------------------


def test_model_info(client, champion, served):
    info = client.get("/model").json()
    assert info["name"] == "lead-scoring" and info["version"] == champion.version
    assert info["alias"] == "champion" and info["source"] == "registry"
    assert info["run_id"]
    assert set(info["trained_on"]["periods"]) == {"train", "valid", "test"}
    assert info["trained_on"]["horizon_days"] == 60
    assert info["metrics"]["model"]["roc_auc"] == pytest.approx(
        independent_test_roc_auc(champion, served), abs=1e-12
    )
    assert info["policy"]["threshold"] == pytest.approx(served.bundle.policy.threshold)
    assert info["policy"]["rule"] in ("capacity", "precision")
    assert info["features"] == served.bundle.spec.names


def independent_test_roc_auc(champion, served) -> float:
    """The champion's test ROC AUC recomputed from its data: the training set rebuilt,
    its test period cut again at the recorded boundaries, scored and ranked by sklearn."""
    from sklearn.metrics import roc_auc_score

    from features.pipeline import PipelineConfig, build_training_set
    from training.split import Boundaries, apply_boundaries

    meta = served.bundle.metadata
    frame = build_training_set(
        champion.tables, PipelineConfig(horizon_days=meta.horizon_days)
    ).frame
    test = apply_boundaries(frame, Boundaries.from_dict(meta.boundaries.model_dump())).test
    assert len(test) == meta.window.test.rows
    return float(roc_auc_score(test["label"], served.bundle.predict_proba(test)))


def test_samples_are_listed_and_score(client, samples):
    listed = client.get("/samples").json()
    assert len(listed) == 6
    assert {s["label"].split(":")[0] for s in listed} == {"Likely converter", "Cold lead"}
    first = client.get(f"/samples/{listed[0]['name']}").json()
    assert first == samples[0]
    assert client.post("/score", json=first).status_code == 200


@pytest.mark.parametrize("name", ["nope", "index", "%2e%2e%2fsecret", "..%2Fx", "a b"])
def test_unknown_samples_are_404(client, name):
    assert client.get(f"/samples/{name}").status_code == 404


def test_try_page_is_served(client):
    r = client.get("/try")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert 'id="score-btn"' in r.text
    assert "http://" not in r.text and "https://" not in r.text and "<link" not in r.text


def test_ready_only_when_loaded(client):
    assert client.get("/readyz").status_code == 200
    assert client.get("/livez").status_code == 200


OUR_SCHEMAS = (
    "LeadFormRequest",
    "FeaturesFormRequest",
    "Lead",
    "Account",
    "Activity",
    "ScoreResponseIODescriptor",
    "Reason",
    "Reasons",
    "ModelRef",
    "ModelInfo",
    "SampleInfo",
)


def test_openapi_describes_every_field(client):
    doc = client.get("/docs.json").json()
    schemas = doc["components"]["schemas"]
    for name in OUR_SCHEMAS:
        props = schemas[name]["properties"]
        undocumented = [p for p, spec in props.items() if not spec.get("description")]
        assert not undocumented, f"{name}: {undocumented}"
    batch = doc["paths"]["/score_batch"]["post"]["requestBody"]["content"]["application/json"]
    assert batch["schema"]["properties"]["leads"]["description"]
    for path in ("/score", "/score_batch", "/model", "/samples", "/samples/{name}"):
        assert path in doc["paths"]


# --- start-up: where the model comes from --------------------------------------------


def test_no_champion_is_a_clear_error(root, tmp_path):
    empty = Settings(
        tracking_uri=testing.session_empty_registry(root), bentoml_home=tmp_path / "bentoml"
    )
    with pytest.raises(ModelNotAvailableError, match="no registered model named"):
        resolve_model(empty)


def test_missing_alias_is_a_clear_error(settings, tmp_path):
    other = Settings(
        tracking_uri=settings.tracking_uri, model_alias="gold", bentoml_home=tmp_path / "bentoml"
    )
    with pytest.raises(ModelNotAvailableError, match="alias 'gold'"):
        resolve_model(other)


def test_broken_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="LEADSCORE_MODEL_DIR"):
        resolve_model(Settings(model_dir=tmp_path))


def test_import_is_idempotent_and_records_the_registry_version(settings, champion):
    first = import_champion(settings.tracking_uri, bentoml_home=settings.bentoml_home)
    again = import_champion(settings.tracking_uri, bentoml_home=settings.bentoml_home)
    assert first.tag == again.tag and first.tag.name == BENTO_MODEL_NAME
    meta = first.info.metadata
    assert meta["registered_version"] == champion.version and meta["alias"] == "champion"
    assert (Path(first.path) / "bundle" / "model.txt").is_file()


def test_workers_load_the_version_pinned_at_deployment(settings, champion):
    tag = import_champion(settings.tracking_uri, bentoml_home=settings.bentoml_home).tag
    served = resolve_model(settings, pinned=str(tag))
    assert (served.version, served.alias, served.source) == (
        champion.version,
        "champion",
        "registry",
    )
    with pytest.raises(ModelNotAvailableError, match="LEADSCORE_PINNED_MODEL"):
        resolve_model(settings, pinned=f"{BENTO_MODEL_NAME}:v999")


def test_settings_come_from_the_environment(tmp_path):
    env = {
        "LEADSCORE_TRACKING_URI": "sqlite:///x.db",
        "MLFLOW_TRACKING_URI": "ignored",
        "LEADSCORE_MODEL_ALIAS": "challenger",
        "LEADSCORE_SAMPLES_DIR": str(tmp_path),
        "LEADSCORE_TOP_REASONS": "3",
        "BENTOML_HOME": str(tmp_path),
    }
    s = Settings.from_env(env)
    assert s.tracking_uri == "sqlite:///x.db" and s.model_alias == "challenger"
    assert s.samples_dir == tmp_path and s.top_reasons == 3 and s.model_name == "lead-scoring"
    assert Settings.from_env(s.to_env()) == s
    assert (
        Settings.from_env({"MLFLOW_TRACKING_URI": "http://mlflow"}).tracking_uri == "http://mlflow"
    )
    with pytest.raises(ValueError, match="LEADSCORE_TOP_REASONS"):
        Settings.from_env({"LEADSCORE_TOP_REASONS": "lots"})


def test_lead_payload_matches_the_data(champion):
    leads = champion.tables["leads"]
    lead_id = str(leads["lead_id"].iloc[0])
    as_of = pd.Timestamp(leads["created_at"].iloc[0]) + pd.Timedelta(days=30)
    payload = lead_payload(champion.tables, lead_id, as_of)
    acts = champion.tables["activities"]
    mine = acts[(acts["lead_id"] == lead_id) & (acts["occurred_at"] <= as_of)]
    assert len(payload["activities"]) == len(mine)
    assert payload["lead"]["lead_id"] == lead_id
    with pytest.raises(KeyError):
        lead_payload(champion.tables, "no-such-lead", as_of)

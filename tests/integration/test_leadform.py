"""The service's array path for lead-form requests, and the ``/score`` hot route.

``serving.leadform`` builds a request's features from NumPy arrays instead of one-lead
tables. These tests hold it to the tables: every card it produces must equal the card
computed from the same payload loaded as a data folder would be (the contract's
``validate``, ``compute_features``, ``ModelBundle.score``), awkward input included.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import serving_support as testing

from features.contract import validate
from features.pipeline import (
    Icp,
    PipelineConfig,
    build_training_set,
    compute_features,
    feature_values,
    icp_of,
)
from runtime.bundle import ModelBundle
from serving import hot_route
from serving.batch import open_leads, score_frame
from serving.leadform import request_arrays, score_lead_form, unknown_categories
from serving.model_store import resolve_model
from serving.samples import lead_payload
from serving.schemas import parse_request
from serving.scorer import score_cards
from serving.settings import Settings


@pytest.fixture(scope="module")
def settings(root, champion) -> Settings:
    return testing.session_settings(root)


@pytest.fixture(scope="module")
def served(settings):
    model = resolve_model(settings)
    model.bundle.warmup()
    return model


@pytest.fixture(scope="module")
def payloads(champion) -> list[dict]:
    """Forty open leads of the champion's data, at two different dates."""
    tables = champion.tables
    end = tables["activities"]["occurred_at"].max()
    out = []
    for days in (20, 75):
        as_of = end - pd.Timedelta(days=days)
        leads = open_leads(tables, as_of)["lead_id"]
        for lead_id in leads.iloc[np.linspace(0, len(leads) - 1, 20).astype(int)]:
            out.append(lead_payload(tables, lead_id, as_of))
    return out


def awkward(payloads: list[dict]) -> list[dict]:
    """Payloads with the input the service must handle the way the data contract does."""
    out = []
    p = copy.deepcopy(payloads[0])  # unknown activity types, and activities after as_of
    p["activities"] += [
        {"occurred_at": p["as_of"], "activity_type": "carrier_pigeon"},
        {"occurred_at": "2199-01-01T00:00:00Z", "activity_type": "demo_request"},
    ]
    out.append(p)
    p = copy.deepcopy(payloads[1])  # no account, unknown categories
    p.pop("account", None)
    p["lead"]["seniority"] = "Galactic Overlord"
    p["lead"]["region"] = "Atlantis"
    out.append(p)
    p = copy.deepcopy(payloads[2])  # offsets instead of Z, and no activities at all
    p["lead"]["created_at"] = (
        pd.Timestamp(p["lead"]["created_at"]).tz_convert("Asia/Kolkata").isoformat()
    )
    p["activities"] = []
    out.append(p)
    p = copy.deepcopy(payloads[3])  # offsets on activities, duplicates, any order
    acts = p["activities"]
    p["activities"] = [
        {
            **a,
            "occurred_at": pd.Timestamp(a["occurred_at"])
            .tz_convert("America/Los_Angeles")
            .isoformat(),
        }
        for a in acts[::-1]
    ] + acts[:3]
    out.append(p)
    return out


def from_tables(served, payload: dict) -> dict:
    """The card of ``payload`` computed the batch way: its rows loaded as a data folder."""
    lead = {k: v for k, v in payload["lead"].items()}
    account = {
        "company_name": None,
        "industry": None,
        "employee_count": None,
        "annual_revenue": None,
        "country": None,
        **(payload.get("account") or {}),
    }
    lead["account_id"] = "acct"
    tables = validate(
        {
            "leads": pd.DataFrame([lead]),
            "accounts": pd.DataFrame([{**account, "account_id": "acct"}]),
            "activities": pd.DataFrame(
                [
                    {"activity_id": f"a{i}", "lead_id": lead["lead_id"], **a}
                    for i, a in enumerate(payload["activities"])
                ],
                columns=["activity_id", "lead_id", "occurred_at", "activity_type", "detail"],
            ),
            "conversions": pd.DataFrame(columns=["lead_id", "converted_at"]),
        },
        unknown_activity="other",
    )
    as_of = pd.Timestamp(payload["as_of"]).tz_convert(None).as_unit("us")
    snaps = pd.DataFrame({"lead_id": [lead["lead_id"]], "as_of": [as_of]})
    frame = compute_features(tables["leads"], tables["accounts"], tables["activities"], snaps)
    _, cards = score_cards(served, frame, 5, True)
    values = {name: frame[name].astype(object).to_numpy() for name in frame.columns}
    cards[0]["unknown"] = unknown_categories(served.bundle, values, 1)[0]
    return cards[0]


def test_array_path_equals_the_batch_path(served, payloads):
    cases = payloads + awkward(payloads)
    requests = [parse_request({**p, "include_contributions": True}) for p in cases]
    cards = score_lead_form(served.bundle, served.ref(), requests, 5)
    for payload, card in zip(cases, cards, strict=True):
        expected = from_tables(served, payload)
        assert card["probability"] == pytest.approx(expected["probability"], abs=1e-12)
        assert card["raw_score"] == pytest.approx(expected["raw_score"], abs=1e-12)
        assert (card["score"], card["grade"], card["mql"]) == (
            expected["score"],
            expected["grade"],
            expected["mql"],
        )
        assert card["threshold"] == expected["threshold"]
        assert card["threshold_region"] == expected["threshold_region"]
        assert (
            testing.card_differences(card["contributions"], expected["contributions"], tol=1e-12)
            == []
        )
        assert testing.card_differences(card["reasons"], expected["reasons"], tol=1e-12) == []
        assert all(w in card["warnings"] for w in expected["unknown"])


REGION_THRESHOLDS = {"NA": 1e-9, "EMEA": 1.0 - 1e-9, "APAC": 0.0123}
"""Regional thresholds unlike the global one and each other (LATAM keeps the global)."""


@pytest.fixture(scope="module")
def regional(served, tmp_path_factory):
    """The champion saved with ``REGION_THRESHOLDS`` in its policy, served from the folder."""
    from dataclasses import replace

    from runtime.bundle import ModelBundle
    from serving.model_store import load_folder

    bundle = served.bundle
    policy = replace(bundle.policy, region_thresholds=dict(REGION_THRESHOLDS))
    folder = ModelBundle(
        bundle.margin, bundle.spec, bundle.calibration, policy, bundle.metadata
    ).save(tmp_path_factory.mktemp("regional") / "bundle")
    return load_folder(folder)


def test_array_path_applies_each_regions_threshold_as_the_batch_path(regional, payloads):
    global_threshold = regional.bundle.policy.threshold
    assert global_threshold not in REGION_THRESHOLDS.values()
    cases = []
    for i, region in enumerate([*REGION_THRESHOLDS, "LATAM", None, "Atlantis"]):
        p = copy.deepcopy(payloads[i])
        p["lead"]["region"] = region
        cases.append((p, REGION_THRESHOLDS.get(region, global_threshold)))
    cards = score_lead_form(
        regional.bundle, regional.ref(), [parse_request(p) for p, _ in cases], 5
    )
    for (payload, threshold), card in zip(cases, cards, strict=True):
        region = payload["lead"]["region"]
        expected = from_tables(regional, payload)
        assert card["threshold"] == expected["threshold"] == threshold, region
        own = region if region in REGION_THRESHOLDS else None
        assert card["threshold_region"] == expected["threshold_region"] == own, region
        assert card["mql"] == expected["mql"] == (card["probability"] >= threshold), region
    assert [c["mql"] for c in cards[:2]] == [True, False]


def test_awkward_input_is_reported(served, payloads):
    cards = score_lead_form(
        served.bundle, served.ref(), [parse_request(p) for p in awkward(payloads)], 5
    )
    assert "1 activity of an unknown type counted as 'other'" in cards[0]["warnings"]
    assert "1 activity after as_of ignored" in cards[0]["warnings"]
    assert any("'Galactic Overlord' was not seen in training" in w for w in cards[1]["warnings"])
    assert cards[2]["probability"] > 0


def test_batches_mix_leads_with_the_same_id_without_mixing_them(served, payloads):
    a, b = copy.deepcopy(payloads[0]), copy.deepcopy(payloads[5])
    b["lead"]["lead_id"] = a["lead"]["lead_id"]
    alone = [score_lead_form(served.bundle, served.ref(), [parse_request(p)], 5)[0] for p in (a, b)]
    together = score_lead_form(served.bundle, served.ref(), [parse_request(p) for p in (a, b)], 5)
    assert [c["probability"] for c in together] == [c["probability"] for c in alone]


def test_a_key_the_model_does_not_take_is_a_400_naming_it(served, payloads):
    """The lead accepts a ``tables`` model's extra lead columns by name; the simulator's
    champion has none, so any further key is refused at ``lead.<key>``, in a batch with
    the lead's position and never with the value sent."""
    assert served.info()["inputs"] is None, "a lead-form model without extra columns"
    p = copy.deepcopy(payloads[0])
    p["lead"]["newsletter"] = "secret-value"
    request = parse_request(p)  # the schema cannot know the model: it keeps the key
    assert request.lead.model_extra == {"newsletter": "secret-value"}
    with pytest.raises(ValueError) as caught:
        score_lead_form(served.bundle, served.ref(), [parse_request(payloads[1]), request], 5)
    (error,) = caught.value.errors()
    assert error["loc"] == ("lead", "newsletter") and error["type"] == "extra_forbidden"
    assert "lead #1 of the batch" in error["msg"] and "no extra lead columns" in error["msg"]
    assert "secret-value" not in error["msg"]
    p["lead"]["newsletter"] = {"nested": 1}  # not a value at all: refused by the schema
    with pytest.raises(ValueError) as caught:
        parse_request(p)
    assert [e["loc"] for e in caught.value.errors()] == [("lead", "newsletter")]


def test_activity_timestamps_are_bounded_with_their_offsets(payloads):
    p = copy.deepcopy(payloads[0])
    p["activities"][0]["occurred_at"] = "1970-01-01T00:30:00+01:00"  # 1969 in UTC
    p["activities"][2]["occurred_at"] = "1969-12-31T23:00:00"
    p["activities"][4]["occurred_at"] = "9999-12-31T23:59:59-01:00"
    with pytest.raises(ValueError) as caught:
        parse_request(p)
    errors = caught.value.errors()
    assert [e["loc"] for e in errors] == [("activities", i, "occurred_at") for i in (0, 2, 4)]
    assert all("1970-01-01" in e["msg"] or "2200-01-01" in e["msg"] for e in errors)


@pytest.fixture(scope="module")
def client(settings):
    with testing.service_client(settings) as c:
        yield c


def test_score_is_answered_by_the_hot_route_with_the_api_methods_card(
    client, payloads, monkeypatch
):
    fast = client.post("/score", json=payloads[0])
    assert fast.status_code == 200
    monkeypatch.delitem(hot_route._HANDLERS, "/score")  # now BentoML's own route answers
    slow = client.post("/score", json=payloads[0])
    assert slow.status_code == 200
    assert fast.json() == slow.json()


def test_hot_route_errors_are_400s_naming_the_field_without_echoing_input(client, payloads):
    p = copy.deepcopy(payloads[0])
    p["lead"]["email"] = "secret.person@example.com" + "x" * 300
    p["activities"][1]["activity_type"] = ""
    r = client.post("/score", content=json.dumps(p))
    assert r.status_code == 400
    body = r.json()
    locs = [tuple(d["loc"]) for d in body["detail"]]
    assert ("lead", "email") in locs and ("activities", 1, "activity_type") in locs
    assert "secret.person" not in r.text
    assert body["error"].startswith("2 validation error")
    p = copy.deepcopy(payloads[0])
    p["lead"]["unexpected"] = "secret.person"
    r = client.post("/score", content=json.dumps(p))
    assert r.status_code == 400 and r.json()["detail"][0]["loc"] == ["lead", "unexpected"]
    assert "secret.person" not in r.text
    for bad in (b"{", b"[]", b'{"lead": 5}'):
        assert client.post("/score", content=bad).status_code == 400


def test_an_unexpected_failure_is_a_500_that_says_nothing(payloads):
    def broken(body: bytes) -> bytes:
        raise RuntimeError("secret internals")

    status, body = hot_route.answer(broken, b"{}")
    assert status == 500 and b"secret" not in body


@pytest.mark.parametrize(
    ("occurred_at", "counted"),
    [
        ("2024-07-01T00:00:00Z", 1),
        ("2024-07-01T00:00:00.400000Z", 0),
        ("2024-07-01T00:00:00.000001Z", 0),
        ("2024-06-30T23:59:59.999999Z", 1),
    ],
)
def test_lead_form_compares_times_to_the_microsecond_like_the_tables(occurred_at, counted):
    """An activity at ``as_of`` counts; one a fraction of a second after it does not, as in
    training's features and labels (``tests/unit/features/test_pipeline.py``)."""
    payload = {
        "lead": {"lead_id": "L1", "created_at": "2024-05-02T09:30:00.250000Z"},
        "activities": [{"occurred_at": occurred_at, "activity_type": "demo_request"}],
        "as_of": "2024-07-01T00:00:00Z",
    }
    arrays, warnings = request_arrays([parse_request(payload)])
    when = pd.Timestamp(occurred_at).tz_convert(None).as_unit("us")
    assert arrays.act_t.tolist() == [when.value // 1_000]
    assert arrays.created_t.tolist() == [pd.Timestamp("2024-05-02 09:30:00.25").value // 1_000]
    values = feature_values(arrays)
    assert values["n_demo_request_7d"].tolist() == [counted]
    assert ("1 activity after as_of ignored" in warnings[0]) == (not counted)


def _old_lead(champion, days: int) -> dict:
    """The payload of a lead scored ``days`` after its creation."""
    tables = champion.tables
    row = tables["leads"].sort_values("created_at").iloc[0]
    return lead_payload(tables, row["lead_id"], row["created_at"] + pd.Timedelta(days=days))


def test_a_lead_outside_the_population_is_scored_with_a_warning(served, champion, client):
    assert served.bundle.metadata.population.max_lead_age_days == 180
    old, young = _old_lead(champion, 240), _old_lead(champion, 30)
    cards = score_lead_form(served.bundle, served.ref(), [parse_request(old)], 5)
    expected = "lead is 240 days old; the model was trained on leads up to 180 days old"
    assert expected in cards[0]["warnings"] and 0 < cards[0]["probability"] < 1
    answer = client.post("/score", json=old).json()
    assert expected in answer["warnings"]
    assert answer["probability"] == pytest.approx(cards[0]["probability"], abs=1e-12)
    young_card = score_lead_form(served.bundle, served.ref(), [parse_request(young)], 5)[0]
    assert not any("days old" in w for w in young_card["warnings"])
    info = client.get("/model").json()
    assert info["trained_on"]["population"] == {"max_lead_age_days": 180}


CUSTOM_ICP = Icp(
    industries=frozenset({"Software"}),
    size_bands=frozenset({"5000+"}),
    seniorities=frozenset({"C-Level", "VP"}),
)


@pytest.fixture(scope="module")
def icp_model(champion):
    """A model trained on the champion's data with a custom ideal customer profile."""
    from training.config import TrainConfig
    from training.train import fit_bundle

    ts = build_training_set(champion.tables, PipelineConfig(horizon_days=60, icp=CUSTOM_ICP))
    config = TrainConfig(
        num_boost_round=60, early_stopping_rounds=10, num_threads=1, params={"num_leaves": 15}
    )
    return ts, fit_bundle(ts, config).bundle


@pytest.fixture(scope="module")
def icp_rows(champion, icp_model) -> pd.DataFrame:
    """Training rows whose ``icp_*`` features differ under the default profile."""
    ts, _ = icp_model
    tables = champion.tables
    frame = ts.frame
    default = compute_features(
        tables["leads"], tables["accounts"], tables["activities"], frame[["lead_id", "as_of"]]
    )
    icp = ["icp_industry", "icp_size", "icp_seniority", "icp_score"]
    differs = (frame[icp].to_numpy() != default[icp].to_numpy()).any(axis=1)
    rows = frame.loc[differs]
    assert len(rows) > 100
    return rows.iloc[np.linspace(0, len(rows) - 1, 12).astype(int)].reset_index(drop=True)


def test_a_custom_icp_is_recorded_and_used_by_the_service(champion, icp_model, icp_rows):
    ts, bundle = icp_model
    assert bundle.metadata.icp == ts.metadata.icp == CUSTOM_ICP.record()
    ref = {"name": "icp", "version": "local", "alias": None}
    payloads = [
        lead_payload(champion.tables, row.lead_id, row.as_of) for row in icp_rows.itertuples()
    ]
    requests = [parse_request({**p, "include_contributions": True}) for p in payloads]
    cards = score_lead_form(bundle, ref, requests, 5)
    expected = bundle.score(icp_rows)
    icp = ["icp_industry", "icp_size", "icp_seniority", "icp_score"]
    for i, card in enumerate(cards):
        assert card["probability"] == pytest.approx(expected.probability[i], abs=1e-12)
        for name in icp:  # the service's icp_* features are the training row's
            j = bundle.spec.names.index(name)
            assert card["contributions"][name] == pytest.approx(expected.shap[i, j], abs=1e-12)
    arrays, _ = request_arrays(requests)
    values = feature_values(arrays, icp_of(bundle.metadata.icp))
    by_default = feature_values(arrays, Icp())
    for name in icp:
        np.testing.assert_array_equal(values[name], icp_rows[name].to_numpy())
    assert (np.stack([values[n] != by_default[n] for n in icp]).any(axis=0)).all()
    default = ModelBundle(
        bundle.margin,
        bundle.spec,
        bundle.calibration,
        bundle.policy,
        bundle.metadata.model_copy(update={"icp": None}),
    )
    other = score_lead_form(default, ref, requests, 5)
    assert [c["probability"] for c in other] != [c["probability"] for c in cards]


def test_a_custom_icp_is_used_by_batch_scoring(champion, icp_model, icp_rows):
    _, bundle = icp_model
    scored = score_frame(champion.tables, icp_rows[["lead_id", "as_of"]], bundle)
    np.testing.assert_allclose(
        scored["probability"], bundle.score(icp_rows).probability, rtol=0, atol=1e-12
    )

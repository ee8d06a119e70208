"""Next best actions are the scores of the lead re-scored with the action, exactly.

For the lead form, batch scoring of a data folder (and ``leadscore score``) and a
``lead_snapshot`` config's feature actions, every action returned must carry the
probability (to 1e-12), score, MQL flag and grade that scoring the changed lead the
ordinary way gives: its activities with one more appended at ``as_of``, or its feature
values with one changed. The ranking must be the top gains among all the model's actions.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import yaml

from features.actions import ACTIONS, activity_action
from features.contract import TIMESTAMP_UNIT
from features.dataset_config import load_dataset
from features.io import load_tables
from features.metadata import DatasetInfo
from features.pipeline import compute_features, icp_of, lead_arrays
from runtime.actions import DEFAULT_ACTIONS, plan_for
from runtime.bundle import ModelBundle
from serving.batch import OUTPUT_COLUMNS, load_champion, open_leads, score_run
from serving.leadform import score_lead_form
from serving.samples import lead_payload
from serving.schemas import parse_request
from serving.scorer import ServedModel, score_cards, score_requests, snapshot_request_frame

pytestmark = pytest.mark.slow

EXACT = 1e-12


@pytest.fixture(scope="module")
def served(champion) -> ServedModel:
    model = load_champion(champion.tracking_uri)
    model.bundle.warmup()
    return model


@pytest.fixture(scope="module")
def payloads(champion) -> list[dict]:
    """Sixteen open leads of the champion's data, at two dates."""
    tables = champion.tables
    end = tables["activities"]["occurred_at"].max()
    out = []
    for days in (10, 60):
        as_of = end - pd.Timedelta(days=days)
        leads = open_leads(tables, as_of)["lead_id"]
        for lead_id in leads.iloc[np.linspace(0, len(leads) - 1, 8).astype(int)]:
            out.append(lead_payload(tables, lead_id, as_of))
    return out


def _appended(payload: dict, activity_type: str) -> dict:
    now = {"occurred_at": payload["as_of"], "activity_type": activity_type}
    return {**payload, "activities": [*payload["activities"], now], "next_best_actions": 0}


def _same(action: dict, card: dict, base: dict) -> None:
    """``action`` equals the re-scored ``card`` of the changed lead (``base``: the lead's)."""
    assert abs(action["probability"] - card["probability"]) <= EXACT
    assert abs(action["gain"] - (card["probability"] - base["probability"])) <= EXACT
    assert (action["score"], action["mql"], action["grade"]) == (
        card["score"],
        card["mql"],
        card["grade"],
    )


def test_lead_form_actions_equal_rescoring_with_the_activity_appended(served, payloads):
    bundle, ref = served.bundle, served.ref()
    cards = score_lead_form(
        bundle, ref, [parse_request({**p, "next_best_actions": 20}) for p in payloads], 5
    )
    defaults = score_lead_form(bundle, ref, [parse_request(p) for p in payloads], 5)
    assert sum(len(c["next_best_actions"]) for c in cards) > len(cards)
    for payload, card, default in zip(payloads, cards, defaults, strict=True):
        rescored = score_lead_form(
            bundle, ref, [parse_request(_appended(payload, a.name)) for a in ACTIONS], 5
        )
        gains = {
            a.name: again["probability"] - card["probability"]
            for a, again in zip(ACTIONS, rescored, strict=True)
        }
        ranked = sorted((n for n in gains if gains[n] > 0), key=lambda n: -gains[n])
        assert [a["action"] for a in card["next_best_actions"]] == ranked
        by_name = dict(zip(gains, rescored, strict=True))
        for action in card["next_best_actions"]:
            _same(action, by_name[action["action"]], card)
            assert action["sentence"].startswith(
                next(a.phrase for a in ACTIONS if a.name == action["action"]) + " now would"
            )
        assert default["next_best_actions"] == card["next_best_actions"][:DEFAULT_ACTIONS]


def test_leads_ranked_in_chunks_get_the_same_actions(served, payloads, monkeypatch):
    """A large batch is ranked ``CHUNK_ROWS`` leads at a time, with the same answers."""
    import runtime.actions

    requests = [parse_request(p) for p in payloads]
    whole = score_lead_form(served.bundle, served.ref(), requests, 5)
    monkeypatch.setattr(runtime.actions, "CHUNK_ROWS", 3)
    chunked = score_lead_form(served.bundle, served.ref(), requests, 5)
    for a, b in zip(whole, chunked, strict=True):
        assert [x["action"] for x in a["next_best_actions"]] == [
            x["action"] for x in b["next_best_actions"]
        ]
        for x, y in zip(a["next_best_actions"], b["next_best_actions"], strict=True):
            assert abs(x["probability"] - y["probability"]) <= EXACT and x["score"] == y["score"]


def test_no_actions_asked_none_computed(served, payloads):
    request = parse_request({**payloads[0], "next_best_actions": 0})
    card = score_lead_form(served.bundle, served.ref(), [request], 5)[0]
    assert card["next_best_actions"] == []


def test_a_tables_configs_actions_replace_the_built_in_ones(served, payloads):
    bundle = served.bundle
    dataset = DatasetInfo(
        name="crm", kind="tables", actions=(activity_action("webinar_attended", "A webinar"),)
    )
    declared = ModelBundle(
        bundle.booster,
        bundle.spec,
        bundle.calibration,
        bundle.policy,
        bundle.metadata.model_copy(update={"dataset": dataset}),
    )
    assert [a.name for a in plan_for(declared).actions] == ["webinar_attended"]
    cards = score_lead_form(declared, served.ref(), [parse_request(p) for p in payloads], 5)
    for payload, card in zip(payloads, cards, strict=True):
        assert {a["action"] for a in card["next_best_actions"]} <= {"webinar_attended"}
        for action in card["next_best_actions"]:
            again = score_lead_form(
                declared, served.ref(), [parse_request(_appended(payload, "webinar_attended"))], 5
            )[0]
            _same(action, again, card)
            assert action["sentence"].startswith("A webinar now would")


@pytest.fixture(scope="module")
def batch(champion, served, tmp_path_factory):
    """``score_run`` of the champion's data folder, and the moment it scored at."""
    out = tmp_path_factory.mktemp("actions") / "scores.csv"
    run = score_run(champion.data_dir, out, None, served)
    return run, out


def test_batch_actions_equal_rescoring_the_tables_with_the_activity_appended(
    champion, served, batch
):
    run, _ = batch
    bundle = served.bundle
    tables = load_tables(champion.data_dir)
    rows = run.scores.iloc[np.linspace(0, len(run.scores) - 1, 12).astype(int)]
    snaps = pd.DataFrame(
        {"lead_id": rows["lead_id"].to_numpy(), "as_of": rows["as_of"].astype(TIMESTAMP_UNIT)}
    )
    parts = (tables["leads"], tables["accounts"], tables["activities"], snaps)
    frame = compute_features(*parts, icp_of(bundle.metadata.icp))
    _, cards = score_cards(served, frame, 3, actions=3, arrays=lead_arrays(*parts))
    checked = 0
    for (_, row), card in zip(rows.iterrows(), cards, strict=True):
        names = row["next_best_actions"].split(";") if row["next_best_actions"] else []
        assert names == [a["action"] for a in card["next_best_actions"]]
        assert row["next_best_action_scores"] == ";".join(
            str(a["score"]) for a in card["next_best_actions"]
        ) or (not names and pd.isna(row["next_best_action_scores"]))
        for action in card["next_best_actions"]:
            new = pd.DataFrame(
                {
                    "activity_id": ["now"],
                    "lead_id": [row["lead_id"]],
                    "occurred_at": np.asarray([row["as_of"]], dtype=TIMESTAMP_UNIT),
                    "activity_type": [action["action"]],
                    "detail": [None],
                }
            )
            activities = pd.concat([tables["activities"], new], ignore_index=True)
            one = snaps.loc[snaps["lead_id"] == row["lead_id"]].reset_index(drop=True)
            again = bundle.score(
                compute_features(
                    tables["leads"],
                    tables["accounts"],
                    activities,
                    one,
                    icp_of(bundle.metadata.icp),
                )
            )
            rescored = {
                "probability": float(again.probability[0]),
                "score": int(again.score[0]),
                "mql": bool(again.mql[0]),
                "grade": str(again.grade[0]),
            }
            _same(action, rescored, card)
            checked += 1
    assert checked > 0


def test_leadscore_score_writes_the_action_columns(champion, tmp_path):
    from typer.testing import CliRunner

    from leadscore.cli import app

    env = {
        "LEADSCORE_HOME": str(tmp_path / "home"),
        "MLFLOW_TRACKING_URI": None,
        "LEADSCORE_TRACKING_URI": champion.tracking_uri,
    }
    out = tmp_path / "scores.csv"
    shown = CliRunner().invoke(
        app, ["score", "--data", str(champion.data_dir), "--out", str(out)], env=env
    )
    assert shown.exit_code == 0, shown.output
    written = pd.read_csv(out)
    assert list(written.columns) == list(OUTPUT_COLUMNS)
    named = written["next_best_actions"].dropna()
    assert len(named) > len(written) / 2
    for names, scores, sentences, score in zip(
        named,
        written.loc[named.index, "next_best_action_scores"],
        written.loc[named.index, "next_best_action_sentences"],
        written.loc[named.index, "score"],
        strict=True,
    ):
        names, scores = names.split(";"), [int(s) for s in str(scores).split(";")]
        assert 1 <= len(names) == len(scores) == len(sentences.split(" | ")) <= 3
        assert set(names) <= {a.name for a in ACTIONS}
        assert all(s >= score for s in scores)

    one, none = tmp_path / "one.csv", tmp_path / "none.csv"
    for path, count in ((one, "1"), (none, "0")):
        shown = CliRunner().invoke(
            app,
            ["score", "--data", str(champion.data_dir), "--out", str(path), "--actions", count],
            env=env,
        )
        assert shown.exit_code == 0, shown.output
    firsts = pd.read_csv(one)["next_best_actions"].dropna()
    assert firsts.tolist() == [names.split(";")[0] for names in named]
    assert pd.read_csv(none)["next_best_actions"].isna().all()


# --- a lead_snapshot config's feature actions ------------------------------------------


@pytest.fixture(scope="module")
def snapshot_model(tmp_path_factory) -> ServedModel:
    """A model trained on a synthetic one-row-per-lead export whose config declares
    feature actions (``add`` to numbers, ``set`` a category and a boolean)."""
    from training.config import train_config_from_dataset
    from training.train import fit_bundle

    rng = np.random.default_rng(0)
    n = 2000
    data = pd.DataFrame(
        {
            "Id": [f"L{i}" for i in range(n)],
            "Source": rng.choice(["web", "ads", "partner", "event"], n),
            "Visits": rng.poisson(3, n),
            "Seconds": rng.integers(0, 1500, n),
            "Optin": rng.choice(["Yes", "No"], n),
            "Last": rng.choice(["Email Opened", "SMS Sent", "Page Visited"], n),
        }
    )
    logit = (
        -2.5
        + 0.3 * data["Visits"]
        + 0.002 * data["Seconds"]
        + 0.8 * (data["Optin"] == "Yes")
        + 0.7 * (data["Last"] == "SMS Sent")
    )
    data["Converted"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    folder = tmp_path_factory.mktemp("snapshot_actions")
    data.to_csv(folder / "leads.csv", index=False)

    def feature(name: str, column: str, dtype: str, group: str = "engagement") -> dict:
        return {
            "name": name,
            "column": column,
            "dtype": dtype,
            "group": group,
            "template": f"{name}: {{value}}",
            "description": column,
        }

    config = {
        "kind": "lead_snapshot",
        "name": "synthetic",
        "source": {"file": "leads.csv"},
        "id": "Id",
        "outcome": {"column": "Converted", "positive": [1]},
        "as_of": "2024-01-01",
        "features": [
            feature("source", "Source", "category", "fit"),
            feature("visits", "Visits", "float"),
            feature("seconds", "Seconds", "float"),
            feature("optin", "Optin", "bool"),
            feature("last_activity", "Last", "category"),
        ],
        "actions": [
            {"feature": "visits", "add": 1, "phrase": "One more visit"},
            {"feature": "seconds", "add": 300},
            {"feature": "optin", "set": "yes", "phrase": "Opting in", "name": "opt_in"},
            {"feature": "last_activity", "set": "SMS Sent", "phrase": "A text message"},
        ],
        "train": {"min_rows": 200, "params": {"min_data_in_leaf": 20}},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    training_set = load_dataset(folder / "config.yaml")
    fitted = fit_bundle(
        training_set, train_config_from_dataset(training_set, num_threads=1, num_boost_round=80)
    )
    bundle = ModelBundle.load(fitted.bundle.save(folder / "bundle"))  # actions survive a save
    return ServedModel(bundle, "synthetic", "1", None, "folder")


SNAPSHOT_ROWS = [
    {"source": "web", "visits": 2, "seconds": 100, "optin": False, "last_activity": "Page Visited"},
    {"source": "partner", "visits": 5, "seconds": 900, "optin": "no"},
    {"source": "ads", "visits": 0, "seconds": 0},
    {"visits": None, "last_activity": "Email Opened"},
    {"source": "event", "visits": 9, "seconds": 1400, "optin": True, "last_activity": "SMS Sent"},
]
CHANGES = {
    "visits_add_1": ("visits", lambda v: None if v is None else v + 1),
    "seconds_add_300": ("seconds", lambda v: None if v is None else v + 300),
    "opt_in": ("optin", lambda v: "yes"),
    "last_activity_set_SMS Sent": ("last_activity", lambda v: "SMS Sent"),
}


def test_snapshot_config_actions_equal_rescoring_with_the_feature_changed(snapshot_model):
    model = snapshot_model
    assert [a.name for a in plan_for(model.bundle).actions] == list(CHANGES)
    assert [a["name"] for a in model.info()["next_best_actions"]] == list(CHANGES)
    requests = [
        parse_request({"lead_id": str(i), "features": row, "next_best_actions": 4})
        for i, row in enumerate(SNAPSHOT_ROWS)
    ]
    cards = score_requests(model, requests, 5)
    assert sum(len(c["next_best_actions"]) for c in cards) >= len(cards)
    for row, card in zip(SNAPSHOT_ROWS, cards, strict=True):
        changed = []
        for feature, change in CHANGES.values():
            values = {**row, feature: change(row.get(feature))}
            changed.append(parse_request({"features": values, "next_best_actions": 0}))
        rescored = dict(zip(CHANGES, score_requests(model, changed, 5), strict=True))
        gains = {n: c["probability"] - card["probability"] for n, c in rescored.items()}
        ranked = sorted((n for n in gains if gains[n] > 0), key=lambda n: -gains[n])
        assert [a["action"] for a in card["next_best_actions"]] == ranked
        for action in card["next_best_actions"]:
            _same(action, rescored[action["action"]], card)
    # the frame path (values snapshot_frame types) answers the same actions
    frame, _ = snapshot_request_frame(model.bundle, requests)
    _, slow = score_cards(model, frame, 5, actions=4)
    for fast, other in zip(cards, slow, strict=True):
        assert len(fast["next_best_actions"]) == len(other["next_best_actions"])
        for a, b in zip(fast["next_best_actions"], other["next_best_actions"], strict=True):
            assert a["action"] == b["action"] and a["score"] == b["score"]
            assert abs(a["probability"] - b["probability"]) <= EXACT


def test_a_model_without_declared_actions_has_none(snapshot_model):
    bundle = snapshot_model.bundle
    dataset = bundle.metadata.dataset
    assert dataset is not None
    bare = ModelBundle(
        bundle.booster,
        bundle.spec,
        bundle.calibration,
        replace(bundle.policy),
        bundle.metadata.model_copy(
            update={"dataset": dataset.model_copy(update={"actions": None})}
        ),
    )
    model = ServedModel(bare, "bare", "1", None, "folder")
    card = score_requests(model, [parse_request({"features": SNAPSHOT_ROWS[0]})], 5)[0]
    assert card["next_best_actions"] == [] and card["probability"] > 0

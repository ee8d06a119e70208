"""Next best actions as data: the declaration, the variant leads and the config's ``actions:``.

The variant leads must have exactly the features of the lead re-computed with the activity
appended to its log: ``feature_values`` of the variants is compared with ``feature_values``
of the appended arrays, column by column, for awkward logs (unsorted, ties, activities
after ``as_of``, old high-intent activities, leads without any, several snapshots of one
lead).
"""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from features.actions import ACTIONS, ActionSpec, activity_action, activity_codes, feature_action
from features.catalogue import ACTIVITY_TYPES, HIGH_INTENT_TYPES
from features.dataset_config.schema import config_actions, validate_config
from features.engagement import DAY
from features.pipeline import LeadArrays, feature_values
from features.variants import activity_variants

T0 = 1_700_000_000 * 1_000_000  # µs since the epoch


def _arrays(seed: int, n_leads: int = 7, n_acts: int = 400) -> LeadArrays:
    """Leads with random logs (unsorted, with ties and activities after the snapshots)
    and 2 snapshots each, one of them before some of the lead's activities."""
    rng = np.random.default_rng(seed)
    act_lead = rng.integers(0, n_leads - 1, n_acts)  # the last lead has no activity at all
    act_t = T0 + rng.integers(-400, 60, n_acts) * DAY // 2
    act_t[:20] = act_t[20:40]  # ties
    act_type = rng.integers(0, len(ACTIVITY_TYPES), n_acts)
    profile = {
        "seniority": np.asarray(["VP", None, "Manager"] * 3, dtype=object)[:n_leads],
        "department": np.full(n_leads, "Sales", dtype=object),
        "region": np.asarray(["NA", "EMEA", None] * 3, dtype=object)[:n_leads],
        "lead_source": np.full(n_leads, "webinar", dtype=object),
        "email": np.full(n_leads, "a@b.example", dtype=object),
        "industry": np.full(n_leads, "Software", dtype=object),
        "employee_count": np.linspace(5, 9000, n_leads),
        "annual_revenue": np.full(n_leads, np.nan),
    }
    snap_lead = np.repeat(np.arange(n_leads), 2)
    snap_t = T0 + np.tile([0, -30 * DAY], n_leads) + rng.integers(0, DAY, 2 * n_leads)
    return LeadArrays(
        profile=profile,
        created_t=np.full(n_leads, T0 - 500 * DAY),
        act_lead=act_lead,
        act_t=act_t,
        act_type=act_type,
        snap_lead=snap_lead,
        snap_t=snap_t,
    )


def _appended(arrays: LeadArrays, row: int, code: int) -> LeadArrays:
    """One snapshot's lead, alone, with an activity of type ``code`` appended at its as_of."""
    lead, t = int(arrays.snap_lead[row]), int(arrays.snap_t[row])
    mine = arrays.act_lead == lead
    return LeadArrays(
        profile={k: v[[lead]] for k, v in arrays.profile.items()},
        created_t=arrays.created_t[[lead]],
        act_lead=np.zeros(int(mine.sum()) + 1, dtype=np.int64),
        act_t=np.append(arrays.act_t[mine], t),
        act_type=np.append(arrays.act_type[mine], code),
        snap_lead=np.zeros(1, dtype=np.int64),
        snap_t=np.asarray([t]),
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_variants_have_the_features_of_the_lead_with_the_activity_appended(seed):
    arrays = _arrays(seed)
    rows = np.asarray([0, 3, 5, 6, 8, 12, 13])
    codes = np.arange(len(ACTIVITY_TYPES))
    variants = feature_values(activity_variants(arrays, rows, codes))
    for k, row in enumerate(rows):
        for a, code in enumerate(codes):
            expected = feature_values(_appended(arrays, int(row), int(code)))
            for name, column in expected.items():
                got = variants[name][k * len(codes) + a]
                assert got == column[0] or (got != got and column[0] != column[0]), (
                    row,
                    ACTIVITY_TYPES[code],
                    name,
                )


def test_variants_of_a_lead_without_activities_and_of_no_rows():
    arrays = _arrays(3)
    empty = LeadArrays(
        **{
            **arrays.__dict__,
            "act_lead": np.empty(0, np.int64),
            "act_t": np.empty(0, np.int64),
            "act_type": np.empty(0, np.int64),
        }
    )
    codes = activity_codes(ACTIONS)
    values = feature_values(activity_variants(empty, np.asarray([1, 2]), codes))
    assert (values["days_since_last_activity"] == 0).all()
    demo = ACTIVITY_TYPES.index("demo_request")
    assert values["n_demo_request_7d"][list(codes).index(demo)] == 1
    assert len(activity_variants(arrays, np.empty(0, np.int64), codes).snap_t) == 0


def test_built_in_actions_are_prompts_a_rep_can_make():
    names = [a.name for a in ACTIONS]
    assert len(set(names)) == len(names)
    assert {"demo_request", "pricing_page_view", "webinar_attended", "trial_signup"} <= set(names)
    assert not {"unsubscribe", "email_bounce", "other"} & set(names)
    assert all(a.activity in ACTIVITY_TYPES and a.phrase[0].isupper() for a in ACTIONS)
    assert set(names) - set(HIGH_INTENT_TYPES) == {
        "webinar_attended",
        "content_download",
        "email_click",
    }
    assert activity_action("demo_page_view").phrase == "A demo page view"


def test_an_action_is_one_activity_or_one_feature_change():
    assert activity_action("email_click").phrase == "A click in a marketing email"
    assert feature_action("visits", "Website visits", add=1).name == "visits_add_1"
    with pytest.raises(ValidationError, match="unknown activity type"):
        ActionSpec(name="x", phrase="X", activity="carrier_pigeon")
    with pytest.raises(ValidationError, match="give `activity`, or `feature`"):
        ActionSpec(name="x", phrase="X", feature="visits")
    with pytest.raises(ValidationError, match="give `activity`, or `feature`"):
        ActionSpec(name="x", phrase="X", feature="visits", set=1, add=2)
    with pytest.raises(ValidationError, match="changes no feature"):
        ActionSpec(name="x", phrase="X", activity="demo_request", feature="visits")


SNAPSHOT = {
    "kind": "lead_snapshot",
    "source": {"file": "leads.csv"},
    "id": None,
    "outcome": {"column": "converted"},
    "as_of": "2024-01-01",
    "features": [
        {"name": "visits", "dtype": "float", "description": "Website visits"},
        {"name": "last_activity", "dtype": "category"},
        {"name": "opted_in", "dtype": "bool"},
    ],
}
TABLES = {
    "kind": "tables",
    "tables": {
        "leads": {"file": "leads.csv"},
        "activities": {"file": "activities.csv"},
        "conversions": {"file": "conversions.csv"},
    },
}


def _problems(base: dict, actions: list) -> list[str]:
    return validate_config({**base, "actions": actions})[1]


@pytest.mark.parametrize(
    ("actions", "problem"),
    [
        (
            [{"feature": "visit", "add": 1}],
            "actions[0] (visit): feature 'visit' is not a "
            "declared feature (did you mean 'visits'?)",
        ),
        (
            [{"feature": "last_activity", "add": 1}],
            "actions[0] (last_activity): add: "
            "last_activity is a category feature, not a number: use `set`",
        ),
        ([{"feature": "visits"}], "give exactly one of `set` (a value) and `add` (a number)"),
        ([{"feature": "visits", "set": 3, "add": 1}], "give exactly one of `set`"),
        (
            [{"feature": "opted_in", "set": "maybe"}],
            "actions[0] (opted_in): set: 'maybe' is "
            "not a bool value (true/false or yes/no) for opted_in",
        ),
        ([{"feature": "visits", "set": "many"}], "set: 'many' is not a float value"),
        ([{"feature": "visits", "add": "one"}], "actions[0]: add must be a number, got 'one'"),
        ([{"activity": "demo_request"}], "a lead_snapshot config has no activity log"),
        (
            [{"feautre": "visits", "add": 1}],
            "actions[0]: unknown key 'feautre' (did you mean 'feature'?)",
        ),
        (
            [{"feature": "visits", "add": 1}, {"feature": "visits", "add": 1}],
            "actions[1] (visits): duplicate action 'visits_add_1'",
        ),
    ],
)
def test_a_snapshot_configs_bad_action_is_named(actions, problem):
    problems = _problems(SNAPSHOT, actions)
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize(
    ("actions", "problem"),
    [
        (
            [{"activity": "demo_requst"}],
            "actions[0]: activity 'demo_requst' is not a known "
            "activity type (did you mean 'demo_request'?)",
        ),
        ([{"feature": "visits", "add": 1}], "a tables config's action is an activity"),
        ([{"phrase": "A call"}], "actions[0]: give `activity`"),
    ],
)
def test_a_tables_configs_bad_action_is_named(actions, problem):
    problems = _problems(TABLES, actions)
    assert any(problem in p for p in problems), problems


def test_good_actions_become_the_models_actions():
    config, problems = validate_config(
        {
            **SNAPSHOT,
            "actions": [
                {"feature": "visits", "add": 2},
                {"feature": "opted_in", "set": True, "phrase": "Opting in", "name": "opt_in"},
                {"feature": "last_activity", "set": "SMS Sent"},
            ],
        }
    )
    assert problems == []
    visits, opt_in, sms = config_actions(config)
    assert (visits.name, visits.phrase, visits.add) == ("visits_add_2", "Website visits: +2", 2)
    assert (opt_in.name, opt_in.phrase, opt_in.set) == ("opt_in", "Opting in", True)
    assert sms.set == "SMS Sent" and sms.phrase == "last_activity set to SMS Sent"
    config, problems = validate_config({**TABLES, "actions": [{"activity": "webinar_attended"}]})
    assert problems == []
    assert config_actions(config) == (activity_action("webinar_attended"),)
    assert config_actions(validate_config(TABLES)[0]) is None

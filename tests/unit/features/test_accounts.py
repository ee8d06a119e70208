"""Account features: point in time, rolled up from people, unattached leads reported."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.accounts import (
    AccountInputError,
    account_catalogue,
    account_features,
    account_labels,
    account_snapshots,
    feature_names,
    missing_personas,
    next_contacts,
)
from features.contract import validate
from features.simulate import simulate

T = pd.Timestamp


def _tables() -> dict[str, pd.DataFrame]:
    """Two accounts: A1 with a VP of Marketing and an engineer, A2 with one student;
    a lead without an account and one whose account is unknown."""
    leads = pd.DataFrame(
        {
            "lead_id": ["L1", "L2", "L3", "L4", "L5"],
            "account_id": ["A1", "A1", "A2", None, "A9"],
            "created_at": [
                T("2024-01-01"),
                T("2024-02-01"),
                T("2024-01-15"),
                T("2024-01-02"),
                T("2024-01-03"),
            ],
            "seniority": ["VP", "Individual Contributor", "Student", "VP", "VP"],
            "department": ["Marketing", "Engineering", "Other", "Sales", "Sales"],
            "region": ["NA", "NA", "EMEA", "NA", "NA"],
        }
    )
    accounts = pd.DataFrame(
        {
            "account_id": ["A1", "A2"],
            "industry": ["Software", "Education"],
            "employee_count": [300, 20],
            "annual_revenue": [5e7, 1e6],
        }
    )
    activities = pd.DataFrame(
        {
            "lead_id": ["L1", "L1", "L2", "L3", "L4"],
            "occurred_at": [
                T("2024-02-25"),
                T("2024-02-28"),
                T("2024-02-10"),
                T("2024-02-27"),
                T("2024-02-27"),
            ],
            "activity_type": [
                "pricing_page_view",
                "email_open",
                "page_view",
                "page_view",
                "demo_request",
            ],
        }
    )
    conversions = pd.DataFrame({"lead_id": ["L2"], "converted_at": [T("2024-04-01")]})
    return {
        "leads": leads,
        "accounts": accounts,
        "activities": activities,
        "conversions": conversions,
    }


AS_OF = T("2024-03-01")


def test_features_roll_up_people_personas_and_momentum():
    tables = _tables()
    snaps = pd.DataFrame({"account_id": ["A1", "A2"], "as_of": [AS_OF, AS_OF]})
    scores = pd.DataFrame(
        {"lead_id": ["L1", "L2", "L3"], "as_of": [AS_OF] * 3, "probability": [0.2, 0.5, 0.1]}
    )
    out = account_features(tables, snaps, scores)
    a1, a2 = out.frame.iloc[0], out.frame.iloc[1]
    assert list(out.frame.columns) == ["account_id", "as_of", *feature_names()]
    assert (a1["people"], a1["engaged_30d"], a1["engaged_7d"]) == (2, 2, 1)
    assert (a1["senior_people"], a1["personas_present"], a1["personas_engaged"]) == (1, 2, 2)
    assert a1["engaged_economic_buyer"] == 1 and a1["engaged_technical_evaluator"] == 1
    assert a1["high_intent_30d"] == 1  # the pricing view; the email open is not engagement
    assert a1["activities_7d"] == 2 and a1["activities_prior_21d"] == 1
    assert a1["activity_momentum"] == pytest.approx(2 - 1 / 3)
    assert a1["days_since_last_activity"] == pytest.approx(5.0)  # the pricing view
    assert a1["best_lead_probability"] == 0.5
    assert a1["summed_lead_probability"] == pytest.approx(0.7)
    assert a1["rollup_probability"] == pytest.approx(1 - 0.8 * 0.5)
    assert (a1["industry"], a1["region"], a1["employee_count"]) == ("Software", "NA", 300)
    assert (a2["people"], a2["personas_present"], a2["student_people"]) == (1, 0, 1)
    assert missing_personas(out.frame) == [
        ["champion", "end_user"],
        ["economic_buyer", "technical_evaluator", "champion", "end_user"],
    ]
    assert [f.name for f in account_catalogue()] == feature_names()


def test_nothing_after_as_of_reaches_a_feature():
    tables = _tables()
    snaps = pd.DataFrame({"account_id": ["A1", "A2"], "as_of": [AS_OF, AS_OF]})
    before = account_features(tables, snaps).frame
    later = _tables()
    later["leads"] = pd.concat(
        [
            later["leads"],
            pd.DataFrame(
                {
                    "lead_id": ["L6"],
                    "account_id": ["A1"],
                    "created_at": [AS_OF + pd.Timedelta(seconds=1)],
                    "seniority": ["Director"],
                    "department": ["Sales"],
                    "region": ["NA"],
                }
            ),
        ],
        ignore_index=True,
    )
    later["activities"] = pd.concat(
        [
            later["activities"],
            pd.DataFrame(
                {
                    "lead_id": ["L1", "L6", "L3"],
                    "occurred_at": [
                        AS_OF + pd.Timedelta(microseconds=1),
                        T("2024-03-02"),
                        T("2024-05-01"),
                    ],
                    "activity_type": ["demo_request"] * 3,
                }
            ),
        ],
        ignore_index=True,
    )
    later["conversions"] = pd.concat(
        [
            later["conversions"],
            pd.DataFrame({"lead_id": ["L1"], "converted_at": [T("2024-03-05")]}),
        ],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(account_features(later, snaps).frame, before)


def test_activity_exactly_at_as_of_counts():
    tables = _tables()
    tables["activities"].loc[len(tables["activities"])] = ["L3", AS_OF, "trial_signup"]
    snaps = pd.DataFrame({"account_id": ["A2"], "as_of": [AS_OF]})
    assert account_features(tables, snaps).frame["high_intent_30d"].iat[0] == 1


def test_unattached_leads_are_reported_never_dropped_silently():
    tables = _tables()
    snaps = account_snapshots(tables["leads"], tables["accounts"], tables["conversions"], [AS_OF])
    assert sorted(snaps["account_id"]) == ["A1", "A2"]
    out = account_features(tables, snaps)
    assert out.unattached == ("L4", "L5")  # no account_id; an account_id nobody knows
    # L4's demo request belongs to no account: A1 and A2 do not see it.
    assert out.frame["high_intent_30d"].tolist() == [1, 0]


def test_label_is_any_conversion_of_the_account_within_the_horizon():
    tables = _tables()
    snaps = pd.DataFrame(
        {"account_id": ["A1", "A2", "A1"], "as_of": [AS_OF, AS_OF, T("2024-04-01")]}
    )
    # L2 converts 2024-04-01: inside (as_of, as_of + 90d] for March, not after April 1.
    assert account_labels(snaps, tables["leads"], tables["conversions"], 90).tolist() == [1, 0, 0]
    assert account_labels(snaps, tables["leads"], tables["conversions"], 30).tolist() == [0, 0, 0]
    # A person who arrives after as_of and converts counts, unless only known people do.
    tables["leads"].loc[5] = ["L6", "A2", T("2024-03-10"), "VP", "Sales", "EMEA"]
    tables["conversions"].loc[1] = ["L6", T("2024-04-15")]
    args = (snaps, tables["leads"], tables["conversions"], 90)
    assert account_labels(*args).tolist() == [1, 1, 0]
    assert account_labels(*args, known_only=True).tolist() == [1, 0, 0]


def test_missing_columns_are_named():
    tables = _tables()
    tables["leads"] = tables["leads"].drop(columns="department")
    with pytest.raises(AccountInputError, match="leads: missing column"):
        account_features(tables, pd.DataFrame({"account_id": ["A1"], "as_of": [AS_OF]}))


def test_simulated_accounts_have_finite_features_and_a_plausible_label_rate():
    sim = simulate(1500, seed=2)
    tables = validate(sim.tables())
    snaps = account_snapshots(
        tables["leads"],
        tables["accounts"],
        tables["conversions"],
        pd.date_range("2024-04-01", "2025-01-01", freq="MS"),
    )
    out = account_features(tables, snaps)
    numeric = out.frame[feature_names(with_scores=False)].drop(columns=["industry", "region"])
    assert np.isfinite(numeric.drop(columns="days_since_last_activity").to_numpy()).all()
    y = account_labels(snaps, tables["leads"], tables["conversions"], 90)
    assert 0.03 < y.mean() < 0.4 and out.unattached == ()


def test_next_contacts_are_the_known_people_of_the_missing_personas():
    tables = _tables()
    more = pd.DataFrame(
        {
            "lead_id": ["L7", "L8", "L9"],
            "account_id": ["A1", "A1", "A1"],
            "created_at": [T("2024-01-05"), T("2024-01-06"), T("2024-03-02")],
            "seniority": ["Individual Contributor", "Manager", "Director"],
            "department": ["Sales", "Marketing", "Sales"],
            "region": ["NA", "NA", "NA"],
        }
    )
    tables["leads"] = pd.concat([tables["leads"], more], ignore_index=True)
    tables["activities"].loc[len(tables["activities"])] = ["L7", T("2024-01-10"), "page_view"]
    snaps = pd.DataFrame({"account_id": ["A1", "A2"], "as_of": [AS_OF, AS_OF]})
    contacts = next_contacts(tables, snaps)
    # L8 (a marketing manager: champion) before L7 (an end user, quiet for 50 days); L9
    # arrives after as_of; A2's only person is a student, who is no persona.
    assert contacts == [
        [{"lead_id": "L8", "persona": "champion"}, {"lead_id": "L7", "persona": "end_user"}],
        [],
    ]

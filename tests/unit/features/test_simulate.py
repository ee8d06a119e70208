"""The lead simulator: deterministic, well-formed, plausible, and an honest oracle."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from features.catalogue import ACTIVITY_TYPES, HIGH_INTENT_TYPES, LEAD_SOURCES, REGIONS
from features.simulate import Simulation, oracle_probability, simulate

START = pd.Timestamp("2024-01-01")
END = pd.Timestamp("2025-07-01")  # start + 18 months
HORIZON = pd.Timedelta(days=90)
EMAIL_TYPES = ("email_open", "email_click")


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate(4000, seed=11)


@pytest.fixture(scope="module")
def snapshots(sim: Simulation) -> pd.DataFrame:
    """Monthly snapshots of unconverted leads with a mature 90-day label."""
    leads = sim.leads[["lead_id", "created_at"]]
    converted = leads["lead_id"].map(sim.conversions.set_index("lead_id")["converted_at"])
    rows = []
    for as_of in pd.date_range("2024-02-01", END - HORIZON, freq="MS"):
        alive = (leads["created_at"] < as_of) & ~(converted <= as_of)
        label = (converted > as_of) & (converted <= as_of + HORIZON)
        rows.append(
            pd.DataFrame(
                {
                    "lead_id": leads["lead_id"][alive],
                    "as_of": as_of,
                    "label": label[alive].astype(int),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def window_counts(
    sim: Simulation, refs: pd.DataFrame, days: int, types: tuple[str, ...] | None = None
) -> pd.Series:
    """Activities of each lead in ``(ref - days, ref]``, for ``refs`` (lead_id, ref)."""
    acts = sim.activities
    if types is not None:
        acts = acts[acts["activity_type"].isin(types)]
    merged = acts.merge(refs, on="lead_id")
    inside = (merged["occurred_at"] <= merged["ref"]) & (
        merged["occurred_at"] > merged["ref"] - pd.Timedelta(days=days)
    )
    counts = merged[inside].groupby("lead_id").size()
    return refs["lead_id"].map(counts).fillna(0).set_axis(refs.index)


# --- Determinism -------------------------------------------------------------------------


def test_same_seed_gives_identical_tables():
    first, second = simulate(800, seed=5), simulate(800, seed=5)
    for name in ("leads", "accounts", "activities", "conversions", "ground_truth"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(second, name))


def test_different_seeds_differ():
    first, second = simulate(800, seed=5), simulate(800, seed=6)
    assert not first.leads["created_at"].equals(second.leads["created_at"])
    assert len(first.activities) != len(second.activities)


# --- Schema and integrity ----------------------------------------------------------------


def test_tables_and_columns(sim: Simulation):
    tables = sim.tables()
    assert set(tables) == {"leads", "accounts", "activities", "conversions"}
    assert list(sim.leads.columns) == [
        "lead_id",
        "account_id",
        "created_at",
        "job_title",
        "seniority",
        "department",
        "country",
        "region",
        "lead_source",
        "email",
    ]
    assert list(sim.accounts.columns) == [
        "account_id",
        "company_name",
        "industry",
        "employee_count",
        "annual_revenue",
        "country",
    ]
    assert list(sim.activities.columns) == ["lead_id", "occurred_at", "activity_type", "detail"]
    assert list(sim.conversions.columns) == ["lead_id", "converted_at"]
    for column in ("lead_id", "p_convert", "fit_score", "intent", "is_bot"):
        assert column in sim.ground_truth


def test_dtypes(sim: Simulation):
    timestamps = [
        (sim.leads, "created_at"),
        (sim.activities, "occurred_at"),
        (sim.conversions, "converted_at"),
    ]
    for frame, column in timestamps:
        assert frame[column].dtype == np.dtype("datetime64[us]"), column
    assert sim.accounts["employee_count"].dtype == np.int64
    assert sim.accounts["annual_revenue"].dtype == np.float64
    assert sim.ground_truth["is_bot"].dtype == bool
    text = {
        "leads": [
            "lead_id",
            "account_id",
            "job_title",
            "seniority",
            "department",
            "country",
            "region",
            "lead_source",
            "email",
        ],
        "accounts": ["account_id", "company_name", "industry", "country"],
        "activities": ["lead_id", "activity_type", "detail"],
    }
    for table, columns in text.items():
        for column in columns:
            assert pd.api.types.is_string_dtype(sim.tables()[table][column]), (table, column)


def test_ids_and_keys(sim: Simulation):
    assert sim.leads["lead_id"].str.fullmatch(r"L\d{6}").all()
    assert sim.accounts["account_id"].str.fullmatch(r"A\d{5}").all()
    assert sim.leads["lead_id"].is_unique and sim.accounts["account_id"].is_unique
    assert sim.conversions["lead_id"].is_unique
    assert sim.leads["account_id"].isin(sim.accounts["account_id"]).all()
    assert sim.activities["lead_id"].isin(sim.leads["lead_id"]).all()
    assert sim.conversions["lead_id"].isin(sim.leads["lead_id"]).all()
    assert sim.ground_truth["lead_id"].equals(sim.leads["lead_id"])


def test_vocabularies(sim: Simulation):
    types = set(sim.activities["activity_type"].unique())
    assert types <= set(ACTIVITY_TYPES) and "other" not in types
    assert set(sim.leads["region"].unique()) == set(REGIONS)
    assert set(sim.leads["lead_source"].unique()) <= set(LEAD_SOURCES)
    assert sim.activities["detail"].notna().mean() > 0.9


def test_times_within_each_lead_life(sim: Simulation):
    acts = sim.activities.merge(sim.leads[["lead_id", "created_at"]], on="lead_id")
    assert (acts["occurred_at"] >= acts["created_at"]).all()
    assert (sim.activities["occurred_at"] < END).all()
    assert (sim.leads["created_at"] >= START).all() and (sim.leads["created_at"] < END).all()
    conv = sim.conversions.merge(sim.leads[["lead_id", "created_at"]], on="lead_id")
    assert (conv["converted_at"] > conv["created_at"]).all()
    assert (conv["converted_at"] < END).all()


def test_activities_sorted_by_lead_then_time(sim: Simulation):
    expected = sim.activities.sort_values(["lead_id", "occurred_at"], kind="stable")
    assert expected.index.equals(sim.activities.index)


# --- Plausibility -------------------------------------------------------------------------


def test_volumes_and_conversion_rate(sim: Simulation):
    per_lead = len(sim.activities) / len(sim.leads)
    assert 20 <= per_lead <= 70
    assert 0.06 <= len(sim.conversions) / len(sim.leads) <= 0.16
    p = sim.ground_truth["p_convert"]
    assert p.between(0, 1).all() and 0.08 < p.mean() < 0.2
    assert 0.3 < len(sim.accounts) / len(sim.leads) * 4 < 1.5


def test_firmographics_are_skewed(sim: Simulation):
    employees = sim.accounts["employee_count"]
    assert employees.min() >= 1 and employees.median() < 200 and employees.max() > 5000
    assert sim.leads["region"].value_counts().idxmax() == "NA"
    revenue = np.log(sim.accounts["annual_revenue"].clip(lower=1))
    assert np.corrcoef(np.log(employees), revenue)[0, 1] > 0.8


def test_seasonality_and_weekdays(sim: Simulation):
    created = sim.leads["created_at"]
    per_month = created.dt.to_period("M").value_counts()
    assert per_month[pd.Period("2024-08")] < per_month[pd.Period("2024-10")]
    weekend = created.dt.day_of_week >= 5
    assert weekend.mean() < 0.15  # 2/7 = 0.29 if flat


def test_titles_and_emails_are_consistent(sim: Simulation):
    leads = sim.leads
    vp = leads[leads["seniority"] == "VP"]["job_title"]
    assert vp.str.contains("VP|Vice President").all()
    director = leads[leads["seniority"] == "Director"]["job_title"]
    assert director.str.contains("Director").all()
    free = leads["email"].str.contains("@(?:gmail|yahoo|outlook|hotmail|icloud|proton)\\.")
    students = leads["seniority"] == "Student"
    assert free[students].mean() > free[~students].mean() + 0.3
    assert leads["email"].str.fullmatch(r"[a-z0-9.]+@[a-z0-9.]+\.[a-z]+").all()


def test_bots_never_convert_and_are_noisy(sim: Simulation):
    bots = sim.ground_truth.loc[sim.ground_truth["is_bot"], "lead_id"]
    assert 0.01 < len(bots) / len(sim.leads) < 0.05
    assert not sim.conversions["lead_id"].isin(bots).any()
    assert (sim.ground_truth.loc[sim.ground_truth["is_bot"], "p_convert"] == 0).all()
    views = sim.activities[sim.activities["activity_type"] == "page_view"]
    per_lead = views.groupby("lead_id").size()
    assert per_lead[per_lead.index.isin(bots)].mean() > 3 * per_lead.mean()


def test_no_email_engagement_after_bounce_or_unsubscribe(sim: Simulation):
    acts = sim.activities
    for stopper in ("email_bounce", "unsubscribe"):
        first = acts[acts["activity_type"] == stopper].groupby("lead_id")["occurred_at"].min()
        assert len(first) > 0, stopper
        email = acts[acts["activity_type"].isin(EMAIL_TYPES)]
        after = email["occurred_at"] > email["lead_id"].map(first)
        assert not after.any(), stopper


def test_converters_show_more_intent_before_converting(sim: Simulation):
    """High-intent activity intensifies in the 30 days before conversion."""
    converters = sim.conversions.rename(columns={"converted_at": "ref"})
    others = sim.leads[
        ~sim.leads["lead_id"].isin(converters["lead_id"])
        & ~sim.leads["lead_id"].isin(sim.ground_truth.loc[sim.ground_truth["is_bot"], "lead_id"])
    ]
    median_delay = converters.merge(sim.leads, on="lead_id").pipe(
        lambda d: (d["ref"] - d["created_at"]).median()
    )
    others = pd.DataFrame(
        {"lead_id": others["lead_id"], "ref": others["created_at"] + median_delay}
    )
    others = others[others["ref"] < END]
    hot = window_counts(sim, converters, 30, HIGH_INTENT_TYPES).mean()
    cold = window_counts(sim, others, 30, HIGH_INTENT_TYPES).mean()
    assert hot > 3 * cold


# --- Oracle -------------------------------------------------------------------------------


def test_oracle_is_a_probability_and_ranks_positives_higher(sim, snapshots):
    p = oracle_probability(sim.ground_truth, snapshots[["lead_id", "as_of"]])
    assert p.shape == (len(snapshots),) and p.dtype == np.float64
    assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    positive = snapshots["label"].to_numpy() == 1
    assert p[positive].mean() > 3 * p[~positive].mean()
    assert roc_auc_score(snapshots["label"], p) > 0.75


def test_oracle_is_calibrated(sim, snapshots):
    """Expected positives under the oracle match the realised ones (model consistency)."""
    p = oracle_probability(sim.ground_truth, snapshots[["lead_id", "as_of"]])
    expected, observed = p.sum(), snapshots["label"].sum()
    assert abs(expected - observed) < 4 * np.sqrt(expected) + 0.05 * expected


def test_oracle_zero_for_bots_and_converted(sim: Simulation):
    gt = sim.ground_truth
    bot = gt.loc[gt["is_bot"], "lead_id"].iloc[:5]
    conv = sim.conversions.iloc[:5]
    snaps = pd.DataFrame(
        {
            "lead_id": pd.concat([bot, conv["lead_id"]], ignore_index=True),
            "as_of": [pd.Timestamp("2025-01-01")] * len(bot)
            + list(conv["converted_at"] + pd.Timedelta(days=1)),
        }
    )
    assert (oracle_probability(gt, snaps) == 0).all()


def test_oracle_uses_leads_when_ground_truth_lacks_created_at(sim, snapshots):
    snaps = snapshots[["lead_id", "as_of"]].head(500)
    full = oracle_probability(sim.ground_truth, snaps)
    slim = oracle_probability(sim.ground_truth.drop(columns="created_at"), snaps, leads=sim.leads)
    np.testing.assert_allclose(full, slim)
    with pytest.raises(KeyError):
        oracle_probability(sim.ground_truth, pd.DataFrame({"lead_id": ["nope"], "as_of": [START]}))


def test_model_on_simple_counts_beats_random_and_stays_below_oracle(sim, snapshots):
    """A small LightGBM on observable counts learns something, but not more than the oracle."""
    snaps = snapshots.rename(columns={"as_of": "ref"})
    features = pd.DataFrame(
        {
            f"{kind}_{days}": window_counts(sim, snaps[["lead_id", "ref"]], days, (kind,))
            for kind in ("page_view", "pricing_page_view", "demo_request", "email_open")
            for days in (30, 90)
        }
    )
    created = snaps["lead_id"].map(sim.leads.set_index("lead_id")["created_at"])
    features["age_days"] = (snaps["ref"] - created).dt.days
    train = snaps["ref"] < pd.Timestamp("2024-11-01")
    model = lgb.LGBMClassifier(
        n_estimators=80,
        learning_rate=0.05,
        num_leaves=15,
        min_child_samples=50,
        verbose=-1,
        random_state=0,
    )
    model.fit(features[train], snaps["label"][train])
    y = snaps["label"][~train]
    auc = roc_auc_score(y, model.predict_proba(features[~train])[:, 1])
    oracle = roc_auc_score(
        y, oracle_probability(sim.ground_truth, snapshots.loc[~train, ["lead_id", "as_of"]])
    )
    assert 0.62 < auc < oracle


# --- Package layout ----------------------------------------------------------------------

SIMULATOR_MODULES = (
    "errors",
    "world",
    "arrays",
    "timeline",
    "population",
    "drift",
    "outcomes",
    "events",
    "web",
    "campaigns",
    "activities",
    "simulation",
    "sales",
    "presets",
)
"""The package's modules in dependency order (as its docstring lists them)."""


def test_package_exports_what_callers_import():
    """Callers (CLI, training, tests, notebooks, benchmarks) import these from the package."""
    import features.simulate as package
    from features.simulate.outcomes import oracle_probability as oracle_in_module
    from features.simulate.simulation import Simulation as simulation_in_module
    from features.simulate.simulation import simulate as simulate_in_module

    assert sorted(package.__all__) == [
        "Drift",
        "LowFitFlood",
        "SalesProcess",
        "Simulation",
        "SimulationInputError",
        "SourceShift",
        "oracle_mqls",
        "oracle_probability",
        "simulate",
        "simulate_sales",
    ]
    assert package.simulate is simulate is simulate_in_module
    assert package.Simulation is Simulation is simulation_in_module
    assert package.oracle_probability is oracle_probability is oracle_in_module


def test_simulator_modules_import_only_earlier_ones():
    """No import cycles inside the package: each module imports only those before it."""
    import ast
    import pathlib

    import features.simulate as package

    root = pathlib.Path(package.__file__).parent
    found = {p.stem for p in root.glob("*.py")} - {"__init__"}
    assert found == set(SIMULATOR_MODULES)
    for rank, name in enumerate(SIMULATOR_MODULES):
        tree = ast.parse((root / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            assert node.level == 0, f"{name}: use absolute imports"
            module = node.module or ""
            assert module != "features.simulate", f"{name} imports the package itself"
            if module.startswith("features.simulate."):
                used = module.removeprefix("features.simulate.")
                assert SIMULATOR_MODULES.index(used) < rank, f"{name} imports {used}"

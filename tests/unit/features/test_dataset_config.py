"""Dataset configs: every problem reported at once, clean configs load as training sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from features.catalogue import CATALOGUE
from features.dataset_config import (
    DatasetConfigError,
    catalogue_from_metadata,
    check_dataset,
    lead_column,
    load_dataset,
)
from features.io import load_tables, write_tables
from features.pipeline import features_frame, icp_of, lead_arrays
from features.simulate import simulate
from leadscore.cli import app
from training.baselines import RulePoints
from training.split import split_from_spec


@pytest.fixture()
def export(tmp_path: Path) -> Path:
    """A tiny one-row-per-lead export with the quirks of real ones (trailing comma, Select)."""
    rows = ["Id,Signed Up,Source,Visits,Seconds,Converted,"]
    for i in range(400):
        source = ["web", "ads", "Select", "partner"][i % 4]
        converted = int(i % 3 == 0 or (source == "partner" and i % 2 == 0))
        day = f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}"
        rows.append(f"L{i},{day},{source},{i % 9},{(i * 37) % 900},{converted},")
    path = tmp_path / "leads.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _config(tmp_path: Path, export: Path, **changes) -> Path:
    cfg = {
        "kind": "lead_snapshot",
        "name": "tiny",
        "source": {"file": export.name, "na_values": ["Select"]},
        "id": "Id",
        "outcome": {"column": "Converted", "positive": [1]},
        "time": {"column": "Signed Up", "format": "%Y-%m-%d"},
        "split": {"kind": "time", "at": "2024-10-01"},
        "exclude": [{"column": "Seconds", "reason": "recorded after the sales call"}],
        "features": [
            {
                "name": "source",
                "column": "Source",
                "group": "fit",
                "dtype": "category",
                "template": "Came from {value}",
                "description": "Lead source",
            },
            {
                "name": "visits",
                "column": "Visits",
                "group": "engagement",
                "dtype": "float",
                "template": "Visited {value:.0f} times",
                "description": "Visits",
            },
        ],
        "points": {
            "threshold": 5,
            "rules": [
                {"feature": "visits", "per": 1, "cap": 8},
                {"feature": "source", "values": {"partner": 5}},
            ],
        },
    }
    cfg.update(changes)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_clean_config_loads(tmp_path: Path, export: Path) -> None:
    ts = load_dataset(_config(tmp_path, export))
    frame = ts.frame
    assert list(frame.columns) == ["lead_id", "as_of", "source", "visits", "label"]
    assert len(frame) == 400 and frame["label"].isin([0, 1]).all()
    assert frame["source"].isna().sum() == 100, "'Select' means not answered"
    assert "Unnamed" not in " ".join(frame.columns), "trailing-comma column dropped"
    catalogue = catalogue_from_metadata(ts.metadata)
    assert [f.name for f in catalogue] == ["source", "visits"]
    assert catalogue[1].sentence(3.0) == "Visited 3 times"
    assert ts.metadata.split.kind == "time"


def test_toml_config(tmp_path: Path, export: Path) -> None:
    yaml_path = _config(tmp_path, export)
    cfg = yaml.safe_load(yaml_path.read_text())
    toml = tmp_path / "tiny.toml"
    lines = [
        f'kind = "{cfg["kind"]}"',
        f'id = "{cfg["id"]}"',
        'as_of = "2024-12-31"',
        "[source]",
        f'file = "{export.name}"',
        "[outcome]",
        'column = "Converted"',
        "positive = [1]",
        "[split]",
        'kind = "stratified"',
        "test_fraction = 0.25",
        "[[features]]",
        'name = "visits"',
        'column = "Visits"',
        'group = "engagement"',
        'dtype = "float"',
        'template = "Visited {value:.0f} times"',
    ]
    toml.write_text("\n".join(lines) + "\n")
    ts = load_dataset(toml)
    assert ts.frame["as_of"].nunique() == 1 and ts.metadata.split.kind == "stratified"


def test_every_problem_is_reported_at_once(tmp_path: Path, export: Path) -> None:
    path = _config(
        tmp_path,
        export,
        id="ID",
        time={"column": "Signed Up", "format": "%d/%m/%Y"},
        outcome={"column": "Converted", "positive": ["won"]},
        features=[
            {
                "name": "x",
                "column": "Nope",
                "group": "who",
                "dtype": "text",
                "template": "no placeholder",
            },
            {"name": "visits", "column": "Seconds", "dtype": "float"},
        ],
        points={"rules": [{"feature": "missing_feature", "per": 1}]},
    )
    with pytest.raises(DatasetConfigError) as info:
        load_dataset(path)
    text = "\n".join(info.value.problems)
    assert "'ID' is not in leads.csv (did you mean 'Id'?)" in text
    assert "'Nope' is not in leads.csv" in text
    assert "group must be one of" in text and "dtype must be one of" in text
    assert "template must contain {value}" in text
    assert "400 of 400 timestamp(s) cannot be parsed with format %d/%m/%Y" in text
    assert "same class" in text
    assert "both a feature and excluded" in text
    assert "'missing_feature' is not a declared feature" in text
    assert len(info.value.problems) >= 8


def test_missing_file_and_unknown_kind(tmp_path: Path, export: Path) -> None:
    path = _config(tmp_path, export, source={"file": "nowhere.csv"})
    assert any("does not exist" in p for p in check_dataset(path))
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: crm\n")
    assert any("kind must be one of" in p for p in check_dataset(bad))


def test_split_specs(tmp_path: Path, export: Path) -> None:
    frame = load_dataset(_config(tmp_path, export)).frame
    cut = split_from_spec(frame, {"kind": "time", "at": "2024-10-01", "valid_fraction": 0.2})
    assert (cut.test["as_of"] >= pd.Timestamp("2024-10-01")).all()
    assert cut.valid["as_of"].min() >= cut.train["as_of"].max()
    assert cut.valid["as_of"].max() < pd.Timestamp("2024-10-01")
    strat = split_from_spec(frame, {"kind": "stratified", "test_fraction": 0.25, "seed": 0})
    assert len(strat.test) == 100
    ids = set(strat.train["lead_id"]) | set(strat.valid["lead_id"]) | set(strat.test["lead_id"])
    assert len(ids) == 400


def test_rule_points() -> None:
    frame = pd.DataFrame({"visits": [0, 3, 20], "source": ["web", "partner", None]})
    points = RulePoints.from_dict(
        {
            "threshold": 5,
            "rules": [
                {"feature": "visits", "per": 1, "cap": 8},
                {"feature": "source", "values": {"partner": 5}},
                {"feature": "visits", "at_least": 10, "points": -1},
            ],
        }
    )
    assert points.points(frame).tolist() == [0.0, 8.0, 7.0]
    assert points.mql(frame).tolist() == [False, True, True]


def test_cli_check(tmp_path: Path, export: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["check", "--config", str(_config(tmp_path, export))])
    assert ok.exit_code == 0, ok.output
    assert "400 rows" in ok.output
    bad = _config(tmp_path, export, id="ID", features=[{"name": "v", "column": "Nope"}])
    result = runner.invoke(app, ["check", "--config", str(bad)])
    assert result.exit_code == 2
    assert "'ID' is not in leads.csv" in result.output and "'Nope'" in result.output


def test_tables_kind_maps_an_export_onto_the_contract(tmp_path: Path) -> None:
    """Renamed columns, day-first timestamps and CRM activity names map onto the contract."""
    from features.simulate import simulate

    sim = simulate(1500, seed=1)
    t = sim.tables()
    fmt = "%d/%m/%Y %H:%M"
    leads = t["leads"].rename(
        columns={
            "lead_id": "Id",
            "account_id": "Company",
            "created_at": "Created",
            "lead_source": "Source",
        }
    )
    leads["Created"] = leads["Created"].dt.strftime(fmt)
    leads["Score Band"] = ["A", "B", "C"] * (len(leads) // 3) + ["A"] * (len(leads) % 3)
    crm_names = {"email_open": "Email Opened", "page_view": "Page Visited"}
    acts = t["activities"].assign(activity_type=t["activities"]["activity_type"].replace(crm_names))
    acts = acts.rename(columns={"lead_id": "Who", "occurred_at": "When", "activity_type": "What"})
    acts["When"] = acts["When"].dt.strftime(fmt)
    conv = t["conversions"].rename(columns={"lead_id": "Who", "converted_at": "Won"})
    conv["Won"] = conv["Won"].dt.strftime(fmt)
    for name, frame in (
        ("leads", leads),
        ("accounts", t["accounts"]),
        ("acts", acts),
        ("won", conv),
    ):
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    cfg = {
        "kind": "tables",
        "tables": {
            "leads": {
                "file": "leads.csv",
                "timestamp_format": fmt,
                "columns": {
                    "lead_id": "Id",
                    "account_id": "Company",
                    "created_at": "Created",
                    "lead_source": "Source",
                },
            },
            "accounts": {"file": "accounts.csv"},
            "activities": {
                "file": "acts.csv",
                "timestamp_format": fmt,
                "columns": {"lead_id": "Who", "occurred_at": "When", "activity_type": "What"},
                "activity_types": {"Email Opened": "email_open", "Page Visited": "page_view"},
            },
            "conversions": {
                "file": "won.csv",
                "timestamp_format": fmt,
                "columns": {"lead_id": "Who", "converted_at": "Won"},
            },
        },
        "features": [
            {
                "name": "score_band",
                "column": "Score Band",
                "group": "fit",
                "dtype": "category",
                "template": "Marketing band {value}",
            }
        ],
    }
    path = tmp_path / "crm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    ts = load_dataset(path)
    assert len(ts.frame) > 1000 and ts.frame["label"].sum() > 0
    assert "score_band" in ts.frame.columns
    assert ts.frame["n_email_open_90d"].sum() > 0, "CRM activity names were mapped"
    assert catalogue_from_metadata(ts.metadata)[-1].name == "score_band"
    assert ts.metadata.dataset.lead_columns == {"score_band": "Score Band"}
    by_lead = leads.set_index("Id")["Score Band"]
    assert (ts.frame["score_band"].astype(str) == ts.frame["lead_id"].map(by_lead)).all()

    cfg["tables"]["activities"]["timestamp_format"] = "%Y-%m-%d"
    cfg["tables"]["activities"]["activity_types"]["Webinar"] = "webinar_watched"
    cfg["tables"]["conversions"]["columns"]["lead_id"] = "Lead"
    path.write_text(yaml.safe_dump(cfg))
    problems = "\n".join(check_dataset(path))
    assert "cannot be parsed with format %Y-%m-%d" in problems
    assert "'webinar_watched' is not a known activity type" in problems
    assert "'Lead' is not in won.csv" in problems


def test_tables_config_rows_are_the_batch_features_of_the_same_moments(tmp_path: Path) -> None:
    """Training on a ``tables`` config reads the export's timestamps, here to the minute.
    The contract's tables holding those moments, written and re-read the way batch
    scoring reads them, give the training rows' features exactly. The simulator's own
    sub-minute moments are other data: their ``days_since_*`` move by up to a minute
    (the skew the tables-config integration test once blamed on batch scoring)."""
    t = simulate(400, seed=3).tables()
    fmt = "%Y-%m-%d %H:%M"
    times = {"leads": "created_at", "activities": "occurred_at", "conversions": "converted_at"}
    for name, frame in t.items():
        column = times.get(name)
        out = frame.assign(**{column: frame[column].dt.strftime(fmt)}) if column else frame
        out.to_csv(tmp_path / f"{name}.csv", index=False)
    specs = {
        n: {"file": f"{n}.csv", **({"timestamp_format": fmt} if n in times else {})} for n in t
    }
    path = tmp_path / "crm.yaml"
    path.write_text(yaml.safe_dump({"kind": "tables", "tables": specs}))
    ts = load_dataset(path)
    rows = ts.frame.sample(150, random_state=0).reset_index(drop=True)

    def batch_features(tables: dict[str, pd.DataFrame], folder: Path) -> pd.DataFrame:
        write_tables(tables, folder)
        read = load_tables(folder)
        snapshots = rows[["lead_id", "as_of"]]
        arrays = lead_arrays(read["leads"], read["accounts"], read["activities"], snapshots)
        return features_frame(arrays, snapshots, icp_of(ts.metadata.icp))

    minutes = {
        n: f.assign(**{times[n]: f[times[n]].dt.floor("min")}) if n in times else f
        for n, f in t.items()
    }
    batch = batch_features(minutes, tmp_path / "minutes")
    # The config reads its export with pandas' NA tokens (a config may add its own), so its
    # training rows hold the region "NA" (North America) as missing, while contract tables
    # keep it (features.io.CSV_NA_VALUES): a category the model never learned is scored as
    # missing, so the scores agree; the region column itself is compared in test_pipeline.
    for spec in (s for s in CATALOGUE if s.name != "region"):
        left, right = batch[spec.name], rows[spec.name]
        if spec.dtype == "category":
            left, right = left.astype("string"), right.astype("string")
        pd.testing.assert_series_equal(
            left, right, check_dtype=False, check_exact=True, check_names=False
        )
    days = [c for c in rows.columns if c.startswith("days_since_")]
    assert days
    seconds = batch_features(t, tmp_path / "seconds")
    moved = np.nanmax(np.abs(seconds[days].to_numpy(float) - rows[days].to_numpy(float)))
    assert 0 < moved <= 1 / 1440


@pytest.mark.parametrize("when", ["as_of", "time"])
def test_model_card_states_what_the_snapshot_config_says(
    tmp_path: Path, export: Path, when: str
) -> None:
    """No "label horizon (not recorded)": the card says the fixed as_of or the time
    column, the outcome column and its positive values, and the kind of split."""
    from training.card import render_card
    from training.config import train_config_from_dataset
    from training.train import fit_bundle

    changes = (
        {
            "time": None,
            "as_of": "2024-12-31",
            "split": {"kind": "stratified", "test_fraction": 0.25, "seed": 3},
        }
        if when == "as_of"
        else {"split": {"kind": "time", "at": "2024-10-01", "valid_fraction": 0.4}}
    )
    ts = load_dataset(_config(tmp_path, export, **changes))
    fitted = fit_bundle(
        ts,
        train_config_from_dataset(
            ts, min_rows=100, min_positives=10, num_boost_round=20, num_threads=1
        ),
    )
    card = render_card(
        fitted.bundle.metadata, {"model": {"roc_auc": 0.7}}, {}, fitted.bundle.policy
    )
    assert "not recorded" not in card
    assert "- Outcome: converted when column `Converted` is `1`." in card
    assert "id column `Id`" in card
    if when == "as_of":
        assert "- Scoring time: a fixed `as_of` of 2024-12-31 for every lead" in card
        assert "- Split: stratified random hold-out of 25% (seed 3)" in card
        assert "## Test results (stratified hold-out" in card
    else:
        assert "- Scoring time: each lead's `Signed Up`" in card
        assert "- Split: by time: test = leads scored on or after 2024-10-01" in card
        assert "## Test-period results" in card


def test_problems_name_their_place_and_suggest(tmp_path: Path, export: Path) -> None:
    """Wrong words and unknown keys: the place (``features[1] (visits)``), what is allowed
    and the closest allowed word."""
    path = _config(
        tmp_path,
        export,
        nme="tiny",
        split={"kind": "tme", "at": "2024-10-01"},
        features=[
            {"name": "source", "column": "Source", "templte": "From {value}"},
            {"name": "visits", "column": "Visits", "dtype": "flot"},
        ],
        tables={"leads": {}},
    )
    problems = check_dataset(path)
    assert (
        "features[1] (visits): dtype must be one of category, float, int, bool, "
        "got 'flot' (did you mean 'float'?)"
    ) in problems
    assert "features[0] (source): unknown key 'templte' (did you mean 'template'?)" in problems
    assert "unknown key 'nme' (did you mean 'name'?)" in problems
    assert any(
        p.startswith(
            "split: kind must be one of time, stratified, got 'tme' (did you mean 'time'?)"
        )
        for p in problems
    )
    assert any(p.startswith("unknown key 'tables'") for p in problems)


def test_tables_config_words(tmp_path: Path) -> None:
    cfg = {
        "kind": "tables",
        "tables": {
            "leads": {"file": "leads.csv", "columns": {"lead": "Id"}},
            "activites": {"file": "acts.csv"},
            "activities": {"file": "acts.csv", "activity_types": {"Webinar": "webinar_watched"}},
        },
    }
    path = tmp_path / "crm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    problems = check_dataset(path)
    assert any(
        p.startswith("tables.leads.columns: 'lead' is not one of lead_id,")
        and p.endswith("(did you mean 'lead_id'?)")
        for p in problems
    )
    assert "tables: unknown key 'activites' (did you mean 'activities'?)" in problems
    assert any(p.startswith("tables.conversions: give `file`") for p in problems)
    assert any("'webinar_watched' is not a known activity type" in p for p in problems)


def test_train_settings_are_typed_by_train_config(tmp_path: Path, export: Path) -> None:
    """``train:`` is checked by ``TrainConfig`` itself, together with every other problem."""
    from training.config import TrainConfigError, check_training_dataset, train_problems
    from training.train import TrainConfig

    path = _config(
        tmp_path,
        export,
        id="ID",
        train={"min_row": 10, "num_boost_round": "many", "calibration": "platt"},
    )
    problems = check_training_dataset(path)
    assert "train: unknown key 'min_row' (did you mean 'min_rows'?)" in problems
    assert "train: num_boost_round must be a whole number, got 'many'" in problems
    assert any("'ID' is not in leads.csv" in p for p in problems)
    assert train_problems({"num_boost_round": 0}) == [
        "train: num_boost_round and early_stopping_rounds must be at least 1"
    ]
    assert (
        train_problems({"min_rows": 200, "params": {"num_leaves": 7}, "valid_fraction": 0.2}) == []
    )
    with pytest.raises(TrainConfigError, match="calibration must be one of auto"):
        TrainConfig(calibration="magic")
    runner = CliRunner()
    result = runner.invoke(app, ["check", "--config", str(path)])
    assert result.exit_code == 2 and "did you mean 'min_rows'" in result.output


def test_one_value_typing(tmp_path: Path) -> None:
    """Request values typed one by one agree exactly with the frame typing, and values the
    one-by-one typing is unsure of are left to the frame (None)."""
    import numpy as np

    from features.dataset_config import snapshot_frame, type_column, type_series
    from features.dataset_config.values import TRUE_TEXT

    cases = {
        "bool": [True, False, None, "yes", "NO", "t", "0"],
        "float": [1, 2.5, None, 0],
        "int": [3, None],
        "category": ["a", None, "b c"],
    }
    for dtype, values in cases.items():
        fast = type_column(values, dtype)
        frame, problem = type_series(pd.Series(values, dtype=object), dtype, "x")
        assert problem is None
        expected = np.asarray(frame.astype(object).where(frame.notna(), None), dtype=object)
        got = np.asarray(pd.Series(fast, dtype=object).where(pd.notna(fast), None))
        assert list(got) == list(expected), dtype
    assert type_column([1], "category") is None and type_column(["x"], "float") is None
    assert type_column(["maybe"], "bool") is None and "y" in TRUE_TEXT

    class F:
        def __init__(self, name: str, dtype: str) -> None:
            self.name, self.dtype = name, dtype

    with pytest.raises(ValueError, match="not yes/no"):
        snapshot_frame([F("flag", "bool")], [{"lead_id": "a", "flag": "maybe"}])


def test_lead_column_is_one_computation_for_every_path() -> None:
    """``lead_column``: each snapshot takes its lead's value, typed like any export value;
    a column the table lacks and values that do not type are problems naming the place."""
    leads = pd.DataFrame({"lead_id": ["a", "b", "c"], "News": [" yes", "NO", None]})
    snaps = pd.Series(["c", "a", "a", "b", "zz"], index=[10, 11, 12, 13, 14])
    values, problem = lead_column(snaps, leads, "News", "bool", "features (news)")
    assert problem is None and list(values.index) == [10, 11, 12, 13, 14]
    assert values.tolist()[1:4] == [1.0, 1.0, 0.0]
    assert values.isna().tolist() == [True, False, False, False, True]
    text, _ = lead_column(snaps, leads, "News", "category", "x")
    assert text.tolist()[1:4] == ["yes", "yes", "NO"]
    _, problem = lead_column(snaps, leads.assign(News=["maybe", "yes", None]), "News", "bool", "x")
    assert problem == "x: 2 value(s) are not yes/no/true/false/1/0 (e.g. ['maybe'])"
    values, problem = lead_column(snaps, leads, "Newsletter", "float", "features (news)")
    assert problem == "features (news): column 'Newsletter' is not in the leads file"
    assert values.isna().all() and len(values) == len(snaps)

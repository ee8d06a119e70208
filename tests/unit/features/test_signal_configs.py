"""Signals declared in a dataset config: carried to the model, checked with clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from features.catalogue import SignalSpec
from features.dataset_config import DatasetConfigError, load_dataset
from runtime.encoding import InputSpec
from runtime.reasons import signal_reasons

TEMPLATE = "Visited {visits_7d:.0f} time(s) this week, {visits_30d:.0f} this month"


def _config(tmp_path: Path, **changes) -> Path:
    rows = ["Id,Day,Source,Visits7,Visits30,Converted"]
    for i in range(300):
        recent = i % 4
        rows.append(f"L{i},2024-{1 + i % 12:02d}-{1 + i % 28:02d},s{i % 3},{recent},")
        rows[-1] += f"{recent + i % 5},{int(i % 3 == 0)}"
    (tmp_path / "leads.csv").write_text("\n".join(rows) + "\n")
    cfg = {
        "kind": "lead_snapshot",
        "source": {"file": "leads.csv"},
        "id": "Id",
        "outcome": {"column": "Converted", "positive": [1]},
        "time": "Day",
        "features": [
            {"name": "source", "column": "Source"},
            {
                "name": "visits_7d",
                "column": "Visits7",
                "group": "engagement",
                "dtype": "float",
                "template": "Visited {value:.0f} time(s) in 7 days",
            },
            {
                "name": "visits_30d",
                "column": "Visits30",
                "group": "engagement",
                "dtype": "float",
                "template": "Visited {value:.0f} time(s) in 30 days",
            },
        ],
        "signals": [
            {
                "name": "visits",
                "features": ["visits_7d", "visits_30d"],
                "template": TEMPLATE,
                "direction": "increasing",
            }
        ],
    }
    cfg.update(changes)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_declared_signals_reach_the_model_and_its_reasons(tmp_path: Path) -> None:
    ts = load_dataset(_config(tmp_path))
    assert ts.metadata.signals == (
        SignalSpec(
            name="visits",
            features=("visits_7d", "visits_30d"),
            template=TEMPLATE,
            direction="increasing",
        ),
    )
    spec = InputSpec(ts.metadata.catalogue, ts.metadata.signals).fit(ts.frame)
    assert [s.name for s in spec.signals_] == ["source", "visits"]
    again = InputSpec.from_dict(spec.to_dict())
    assert again.signals_ == spec.signals_
    x = spec.transform(ts.frame.head(1))[0]
    shap = np.array([0.25, 0.5, -0.125])
    reasons = signal_reasons(shap, x, spec, 5)
    (visits,) = [r for r in reasons["positive"] if r["signal"] == "visits"]
    assert visits["contribution"] == 0.375
    assert visits["sentence"] == "Visited 0 times this week, 0 this month"
    assert [m["feature"] for m in visits["features"]] == ["visits_7d", "visits_30d"]


def test_no_declared_signal_means_one_per_feature(tmp_path: Path) -> None:
    ts = load_dataset(_config(tmp_path, signals=[]))
    spec = InputSpec(ts.metadata.catalogue, ts.metadata.signals).fit(ts.frame)
    assert [s.features for s in spec.signals_] == [("source",), ("visits_7d",), ("visits_30d",)]


@pytest.mark.parametrize(
    ("signal", "problem"),
    [
        (
            {"name": "v", "features": ["visits_7", "visits_30d"]},
            "signals[0] (v): feature 'visits_7' is not a declared feature "
            "(did you mean 'visits_7d'?)",
        ),
        (
            {"name": "v", "features": ["visits_7d"], "directoin": "increasing"},
            "signals[0] (v): unknown key 'directoin' (did you mean 'direction'?)",
        ),
        (
            {"name": "v", "features": ["visits_7d"], "direction": "up"},
            "signals[0] (v): direction must be one of increasing, decreasing, got 'up'",
        ),
        (
            {"name": "v", "features": ["visits_7d", "source"]},
            "signals[0] (v): mixes fit and engagement features",
        ),
        (
            {"name": "v", "features": ["visits_7d"], "template": "Visited {visits_30d}"},
            "signals[0] (v): template names ['visits_30d']",
        ),
        (
            {"name": "v", "features": ["visits_7d"], "opposite": ["visits_30d"]},
            "signals[0] (v): opposite names ['visits_30d'], not among its features",
        ),
        ({"name": "v", "features": []}, "signals[0] (v): features"),
    ],
)
def test_a_bad_signal_is_named_with_its_key(tmp_path: Path, signal: dict, problem: str) -> None:
    with pytest.raises(DatasetConfigError) as caught:
        load_dataset(_config(tmp_path, signals=[signal]))
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_a_feature_in_two_signals_is_refused(tmp_path: Path) -> None:
    signals = [
        {"name": "a", "features": ["visits_7d"]},
        {"name": "b", "features": ["visits_7d", "visits_30d"]},
    ]
    with pytest.raises(DatasetConfigError) as caught:
        load_dataset(_config(tmp_path, signals=signals))
    assert "signals[1] (b): feature 'visits_7d' is already in signal 'a'" in caught.value.problems

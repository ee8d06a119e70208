"""Signals and grammar: feature families declared as data, and sentences that agree.

Every feature belongs to exactly one signal; windowed counts of one activity read as one
sentence; and every template of the catalogue says "1 day", never "1 days".
"""

from __future__ import annotations

import re

import pandas as pd
import pytest
from pydantic import ValidationError

from features.catalogue import (
    CATALOGUE,
    CATALOGUE_SIGNALS,
    FeatureSpec,
    SignalError,
    SignalSpec,
    by_name,
    pluralise,
    signals_for,
)
from runtime.encoding import InputSpec

PLURALS = r"(days|times|pages|emails|links|pieces|webinars|forms|activities|interactions)"
SINGULARS = r"(day|time|page|email|link|piece|webinar|form|activity|interaction)"
ONE_WITH_PLURAL = re.compile(rf"(?<![\d.])1 (?:[A-Za-z-]+ ){{0,2}}?{PLURALS}\b")
MANY_WITH_SINGULAR = re.compile(rf"(?<![\d.])(0|2) (?:[A-Za-z-]+ ){{0,2}}?{SINGULARS}\b")


def test_pluralise_follows_the_number_shown_before_each_token():
    assert pluralise("1 day(s)") == "1 day"
    assert pluralise("2 day(s)") == "2 days"
    assert pluralise("0 day(s)") == "0 days"
    assert pluralise("-1 day(s)") == "-1 day"
    assert pluralise("1.5 day(s)") == "1.5 days"
    assert pluralise("1 [piece|pieces] of 2 [thing|things]") == "1 piece of 2 things"
    assert (
        pluralise("Visited 1 time(s) in the last 7 day(s)") == "Visited 1 time in the last 7 days"
    )
    assert pluralise("no number: day(s)") == "no number: days"
    assert pluralise("11 time(s), 1,000 time(s)") == "11 times, 1,000 times"


def _sentences(value: float) -> list[str]:
    """Every catalogue sentence (features and signals) for one value of every feature."""
    out = []
    features = by_name()
    for f in CATALOGUE:
        if f.dtype == "category":
            continue
        out.append(f.sentence(value))
        if f.zero_template:
            out.append(pluralise(f.zero_template))
    for signal in CATALOGUE_SIGNALS:
        for position in range(len(signal.features)):
            members = [
                (features[n], value if k == position else 0.0, 1.0 if k == position else 0.0)
                for k, n in enumerate(signal.features)
            ]
            if any(features[n].dtype == "category" for n in signal.features):
                continue
            out.append(signal.sentence(members)[0])
        out.append(signal.sentence([(features[n], value, 0.1) for n in signal.features])[0])
    return out


@pytest.mark.parametrize("value", [0.0, 1.0, 2.0, 1.5])
def test_every_catalogue_template_agrees_with_its_number(value):
    for sentence in _sentences(value):
        assert "(s)" not in sentence and "[" not in sentence and "{" not in sentence, sentence
        assert not ONE_WITH_PLURAL.search(sentence), sentence
        assert not MANY_WITH_SINGULAR.search(sentence), sentence


def test_one_of_each_reads_in_the_singular():
    f = by_name()
    assert f["days_since_last_activity"].sentence(1.0) == "Last interaction was 1 day ago"
    assert f["days_since_last_activity"].sentence(1.5) == "Last interaction was 2 days ago"
    assert f["n_webinar_attended_30d"].sentence(1.0) == "Attended 1 webinar in the last 30 days"
    assert f["n_content_download_7d"].sentence(1.0) == (
        "Downloaded 1 piece of content in the last 7 days"
    )
    assert f["n_pricing_page_view_30d"].sentence(4.0) == (
        "Visited the pricing page 4 times in the last 30 days"
    )


def _pricing(values: tuple[float | None, ...]) -> tuple[str, object]:
    f = by_name()
    signal = next(s for s in CATALOGUE_SIGNALS if s.name == "pricing_page_view")
    return signal.sentence([(f[n], v, 0.1) for n, v in zip(signal.features, values, strict=True)])


def test_a_windowed_signal_merges_its_windows_into_one_sentence():
    assert _pricing((22.0, 50.0, 87.0)) == (
        "Visited the pricing page 22 times in the last 7 days (87 in 90 days)",
        22.0,
    )
    assert _pricing((0.0, 3.0, 3.0)) == (
        "Visited the pricing page 3 times in the last 30 days",
        3.0,
    )
    assert _pricing((1.0, 1.0, 2.0)) == (
        "Visited the pricing page 1 time in the last 7 days (2 in 90 days)",
        1.0,
    )
    assert _pricing((0.0, 0.0, 1.0))[0] == "Visited the pricing page 1 time in the last 90 days"
    assert _pricing((0.0, 0.0, 0.0)) == ("Has not visited the pricing page in 90 days", 0.0)
    assert _pricing((None, None, None))[1] is None


def test_every_catalogue_feature_is_in_exactly_one_signal():
    signals = signals_for(CATALOGUE)
    members = [n for s in signals for n in s.features]
    assert sorted(members) == sorted(f.name for f in CATALOGUE)
    assert len({s.name for s in signals}) == len(signals)
    names = {s.name for s in signals}
    assert {"pricing_page_view", "demo_request", "buying_intent", "seniority"} <= names
    by_signal = {s.name: s for s in signals}
    assert by_signal["pricing_page_view"].features == (
        "n_pricing_page_view_7d",
        "n_pricing_page_view_30d",
        "n_pricing_page_view_90d",
    )
    assert by_signal["demo_request"].direction == "increasing"
    assert by_signal["unsubscribe"].direction == "decreasing"
    assert by_signal["page_view"].direction is None
    intent = by_signal["buying_intent"]
    assert intent.feature_direction("n_high_intent_30d") == 1
    assert intent.feature_direction("days_since_last_high_intent") == -1
    assert by_signal["unsubscribe"].feature_direction("n_unsubscribe_7d") == -1
    assert by_signal["recent_activity"].feature_direction("n_activities_30d") == 0


def test_features_without_a_family_are_signals_of_their_own():
    own = FeatureSpec("visits", "engagement", "float", "Visited {value:.0f} time(s)", "Visits")
    signals = signals_for((own, *CATALOGUE[:3]))
    assert [s.features for s in signals] == [
        ("visits",),
        ("seniority",),
        ("department",),
        ("industry",),
    ]
    assert signals[0].name == "visits"


def test_declared_signals_are_checked_and_named():
    a = FeatureSpec("a", "engagement", "float", "A {value}", "A")
    b = FeatureSpec("b", "engagement", "float", "B {value}", "B")
    c = FeatureSpec("c", "fit", "float", "C {value}", "C")
    ab = SignalSpec(name="ab", features=("a", "b"), direction="increasing")
    assert [s.name for s in signals_for((a, b, c), (ab,))] == ["ab", "c"]
    with pytest.raises(SignalError, match=r"signal 'x': feature 'bb' is not a model feature"):
        signals_for((a, b), (SignalSpec(name="x", features=("a", "bb")),))
    with pytest.raises(SignalError, match="already belongs to signal 'ab'"):
        signals_for((a, b), (ab, SignalSpec(name="y", features=("b",))))
    with pytest.raises(SignalError, match="mixes fit and engagement"):
        signals_for((a, c), (SignalSpec(name="z", features=("a", "c")),))
    with pytest.raises(ValidationError, match="opposite names"):
        SignalSpec(name="w", features=("a",), opposite=("b",))
    with pytest.raises(ValidationError, match="template names"):
        SignalSpec(name="w", features=("a",), template="A is {nope}")


def _pricing_lowering(values: tuple[float, ...], enforced: bool = True) -> str:
    f = by_name()
    signal = next(s for s in CATALOGUE_SIGNALS if s.name == "pricing_page_view")
    signal = signal.model_copy(update={"enforced": enforced})
    members = [(f[n], v, -0.1) for n, v in zip(signal.features, values, strict=True)]
    return signal.sentence(members)[0]


def test_a_positive_intent_signal_that_lowers_the_score_says_what_is_missing():
    assert _pricing_lowering((0.0, 2.0, 9.0)) == (
        "Has not visited the pricing page in 7 days (2 in 30 days, 9 in 90 days)"
    )
    assert _pricing_lowering((0.0, 0.0, 1.0)) == (
        "Has not visited the pricing page in 30 days (1 in 90 days)"
    )
    assert _pricing_lowering((1.0, 1.0, 1.0)) == (
        "Visited the pricing page 1 time in the last 7 days, less than typical"
    )
    assert _pricing_lowering((0.0, 0.0, 0.0)) == "Has not visited the pricing page in 90 days"
    # Without monotone constraints a lowering count may not mean "less": no such claim.
    assert _pricing_lowering((1.0, 1.0, 1.0), enforced=False) == (
        "Visited the pricing page 1 time in the last 7 days"
    )
    assert _pricing_lowering((0.0, 2.0, 2.0), enforced=False) == (
        "Has not visited the pricing page in 7 days (2 in 30 days)"
    )
    f = by_name()
    intent = next(s for s in CATALOGUE_SIGNALS if s.name == "buying_intent")
    intent = intent.model_copy(update={"enforced": True})
    members = [(f["n_high_intent_30d"], 2.0, -0.2), (f["days_since_last_high_intent"], 3.0, 0.1)]
    assert intent.sentence(members)[0] == (
        "Showed buying intent 2 times in the last 30 days, less than typical"
    )
    members = [(f["n_high_intent_30d"], 1.0, 0.01), (f["days_since_last_high_intent"], 20.0, -0.1)]
    assert intent.sentence(members)[0] == "Last showed buying intent 20 days ago"


def test_a_spec_written_before_signals_gets_the_catalogues_families():
    frame = pd.DataFrame({f.name: ["x" if f.dtype == "category" else 0.0] for f in CATALOGUE})
    spec = InputSpec().fit(frame)
    payload = spec.to_dict()
    assert [s["name"] for s in payload["signals"]] == [s.name for s in spec.signals_]
    old = InputSpec.from_dict({"features": payload["features"]})
    assert old.signals_ == signals_for(CATALOGUE) == spec.signals_

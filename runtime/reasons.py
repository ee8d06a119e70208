"""Reasons per signal: the exact SHAP values of a signal's features summed, in one sentence.

The 7/30/90-day counts of one activity describe one behaviour, and TreeSHAP splits the
model's credit between them, often with opposite signs. Told feature by feature, a rep
reads "Visited the pricing page 87 times in the last 90 days −0.108" right under "22
times in the last 7 days +0.494" and concludes that visiting pricing is bad. A reason is
therefore one *signal* (``features.catalogue.SignalSpec``): its members' SHAP values
summed (still exact: the base value plus every signal's sum is the raw margin), told in
one sentence that merges the windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from features.catalogue import SignalSpec
from runtime.encoding import InputSpec


@dataclass(frozen=True)
class SignalIndex:
    """Where each signal's features sit among the model's columns.

    Attributes:
        signals: Every signal, in ``InputSpec.signals_`` order.
        order: Model columns grouped by signal (the members of signal 0, then 1, ...).
        starts: Position in ``order`` where each signal's members start.
        columns: Each signal's member columns.
        groups: Each signal's group (``fit`` or ``engagement``).
    """

    signals: tuple[SignalSpec, ...]
    order: np.ndarray
    starts: np.ndarray
    columns: tuple[tuple[int, ...], ...]
    groups: tuple[str, ...]

    def sums(self, shap: np.ndarray) -> np.ndarray:
        """Per-signal SHAP sums of one row (1-D) or of every row (2-D) of SHAP values."""
        return np.add.reduceat(shap[..., self.order], self.starts, axis=-1)


def signal_index(spec: InputSpec) -> SignalIndex:
    """The fitted spec's ``SignalIndex``, built once per spec (a request scores one lead)."""
    cached = spec.__dict__.get("_signal_index_")
    if cached is not None and cached[0] is spec.signals_:
        return cached[1]  # type: ignore[no-any-return]
    position = {f.name: j for j, f in enumerate(spec.features_)}
    columns = tuple(tuple(position[n] for n in s.features) for s in spec.signals_)
    sizes = [len(c) for c in columns]
    index = SignalIndex(
        signals=spec.signals_,
        order=np.array([j for c in columns for j in c], dtype=np.intp),
        starts=np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp),
        columns=columns,
        groups=tuple(spec.features_[c[0]].group for c in columns),
    )
    spec.__dict__["_signal_index_"] = (spec.signals_, index)
    return index


def signal_reasons(
    shap: np.ndarray, x: np.ndarray, spec: InputSpec, top: int
) -> dict[str, list[dict[str, Any]]]:
    """Top positive and negative signals of one row, strongest first.

    Each item keeps the shape a reason always had (``feature``, ``group``, ``value``,
    ``contribution``, ``sentence``), with ``feature`` the signal's name and ``value`` the
    value its sentence quotes, and adds ``signal`` and ``features``: each member's name,
    value and own SHAP value (which sum to ``contribution``).

    Args:
        shap: SHAP values of the row, one per model column.
        x: The row's encoded features.
        spec: The fitted input spec (features and signals).
        top: Reasons per direction.
    """
    index = signal_index(spec)
    contrib = index.sums(shap)
    order = np.argsort(-contrib)
    ranked = contrib[order]
    pos = order[ranked > 0][:top].tolist()
    neg = order[::-1][ranked[::-1] < 0][:top].tolist()

    def item(k: int) -> dict[str, Any]:
        signal = index.signals[k]
        members = [
            (spec.features_[j], spec.decode(j, x[j]), float(shap[j])) for j in index.columns[k]
        ]
        sentence, value = signal.sentence(members)
        return {
            "feature": signal.name,
            "signal": signal.name,
            "group": index.groups[k],
            "value": value,
            "contribution": float(contrib[k]),
            "sentence": sentence,
            "features": [{"feature": f.name, "value": v, "contribution": c} for f, v, c in members],
        }

    return {"positive": [item(k) for k in pos], "negative": [item(k) for k in neg]}


def positive_intent_held_back(reasons: dict[str, list[dict[str, Any]]], spec: InputSpec) -> bool:
    """Whether a lead's "holds it back" reasons include a positive-intent signal (declared
    ``increasing``) with a non-zero count: the reason a rep is most likely to disbelieve.

    Args:
        reasons: ``signal_reasons`` (or ``Scores.reasons``) output of one lead.
        spec: The fitted input spec the reasons were told with.
    """
    signals = {s.name: s for s in spec.signals_}
    for reason in reasons["negative"]:
        signal = signals.get(reason.get("signal", ""))
        if signal is None or signal.direction != "increasing":
            continue
        counts = signal.counts()
        if any(
            m["feature"] in counts and isinstance(m["value"], int | float) and m["value"] > 0
            for m in reason["features"]
        ):
            return True
    return False

"""A hand-set points score as a bundle's margin model, explained by the rules that fired.

Marketing teams score leads with points they set by hand: so many for a VP, so many per
pricing-page visit up to a cap, a penalty for going quiet. With few outcomes, that score
can be the best model there is (``training.choice`` lets it compete), so it is scored with
the same card as a learned model: calibrated probability with its interval, grade, MQL
policy and reasons.

The margin is ``offset + scale · Σ_r points_r(x)``: the rules' points, turned into log-odds
by a one-feature logistic fit (``scale > 0`` keeps the hand-set order). Its explanation is
exact and needs no Shapley arithmetic: the base value is ``offset`` (a lead that earns no
points), and a feature's contribution is ``scale`` times the points its rules gave the row.
A rule that did not fire contributes 0, so the reasons (``runtime.reasons``, summed per
signal) are exactly the rules that fired, and ``base + Σ contributions == raw``.

Rules read the encoded matrix (``runtime.encoding.InputSpec``), in the form a dataset
config's ``points`` section writes them (``training.baselines.RulePoints``): a rule names a
``feature`` and gives ``values`` (points per value), ``per`` (points per unit, optional
``cap``), ``at_least`` or ``above`` with ``points`` (points when the value reaches or
passes the bar). A missing value counts as 0, as ``RulePoints`` fills it, unless the rule
gives ``if_missing`` (its points when the value is missing). The model is stored as JSON
(``points_model.json``): the rules as given and as compiled against the spec.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from leadscore.errors import LeadscoreError
from runtime.encoding import InputSpec

FloatArray = npt.NDArray[np.float64]

RULE_KINDS = ("values", "per", "at_least", "above")
"""What a rule gives points for: a value, each unit, reaching a bar, passing a bar."""


class PointsRuleError(LeadscoreError, ValueError):
    """A points rule cannot be applied to the model's features (unknown feature, bad form)."""


@dataclass(frozen=True)
class CompiledRule:
    """One points rule, bound to a column of the encoded matrix.

    Attributes:
        feature: The feature it reads.
        column: Its position in the encoded matrix.
        kind: ``values``, ``per``, ``at_least`` or ``above``.
        table: For ``values``: (encoded value, points) pairs (category codes for a
            categorical feature, the numbers themselves for a numeric one).
        per: For ``per``: points per unit.
        cap: For ``per``: the most (or, for negative points, the least) it gives.
        bar: For ``at_least`` / ``above``: the bar.
        points: For ``at_least`` / ``above``: points when the bar is met.
        if_missing: Points when the value is missing (None: the value counts as 0).
        rule: The rule as given (the config's or the default's form), for display.
    """

    feature: str
    column: int
    kind: str
    table: tuple[tuple[float, float], ...] = ()
    per: float = 0.0
    cap: float | None = None
    bar: float = 0.0
    points: float = 0.0
    if_missing: float | None = None
    rule: Mapping[str, Any] | None = None

    def apply(self, X: FloatArray) -> FloatArray:
        """Points of this rule for every row of ``X``."""
        x = X[:, self.column]
        missing = np.isnan(x)
        if self.kind == "values":
            out = np.zeros(len(x), dtype=np.float64)
            for value, pts in self.table:
                out[x == value] = pts
        else:
            x0 = np.where(missing, 0.0, x)
            if self.kind == "per":
                out = self.per * x0
                if self.cap is not None:
                    out = np.minimum(out, self.cap) if self.cap >= 0 else np.maximum(out, self.cap)
            elif self.kind == "at_least":
                out = np.where(x0 >= self.bar, self.points, 0.0)
            else:
                out = np.where(x0 > self.bar, self.points, 0.0)
        if self.if_missing is not None:
            out = np.where(missing, self.if_missing, out)
        return np.asarray(out, dtype=np.float64)

    def describe(self) -> str:
        """The rule in a few words (``seniority = VP: +15``), for the card."""
        if self.kind == "per":
            cap = f", cap {self.cap:+g}" if self.cap is not None else ""
            text = f"{self.feature}: {self.per:+g} each{cap}"
        elif self.kind in ("at_least", "above"):
            op = ">=" if self.kind == "at_least" else ">"
            text = f"{self.feature} {op} {self.bar:g}: {self.points:+g}"
        else:
            values = dict((self.rule or {}).get("values") or {})
            text = f"{self.feature}: " + ", ".join(f"{k} {float(v):+g}" for k, v in values.items())
        if self.if_missing is not None:
            text += f" (missing: {self.if_missing:+g})"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "feature": self.feature,
            "column": self.column,
            "kind": self.kind,
            "table": [list(pair) for pair in self.table],
            "per": self.per,
            "cap": self.cap,
            "bar": self.bar,
            "points": self.points,
            "if_missing": self.if_missing,
            "rule": dict(self.rule) if self.rule is not None else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CompiledRule:
        """Inverse of ``to_dict``.

        Raises:
            KeyError, TypeError, ValueError: on a malformed entry.
        """
        kind = str(d["kind"])
        if kind not in RULE_KINDS:
            raise ValueError(f"unknown points rule kind {kind!r}")
        cap, missing, rule = d.get("cap"), d.get("if_missing"), d.get("rule")
        return cls(
            feature=str(d["feature"]),
            column=int(d["column"]),
            kind=kind,
            table=tuple((float(v), float(p)) for v, p in d.get("table", ())),
            per=float(d.get("per", 0.0)),
            cap=None if cap is None else float(cap),
            bar=float(d.get("bar", 0.0)),
            points=float(d.get("points", 0.0)),
            if_missing=None if missing is None else float(missing),
            rule=dict(rule) if rule is not None else None,
        )


def _number(rule: Mapping[str, Any], key: str) -> float:
    value = rule.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PointsRuleError(
            f"points rule on {rule.get('feature')!r}: {key} must be a finite number, got {value!r}"
        )
    return float(value)


def compile_rule(rule: Mapping[str, Any], spec: InputSpec) -> CompiledRule:
    """Bind one rule (the dataset config's form) to the spec's columns.

    Raises:
        PointsRuleError: naming the rule's feature and what is wrong with it.
    """
    if not isinstance(rule, Mapping) or not isinstance(rule.get("feature"), str):
        raise PointsRuleError(f"a points rule must be a mapping with a feature, got {rule!r}")
    name = str(rule["feature"])
    if name not in spec.names:
        raise PointsRuleError(
            f"points rule on {name!r}: the model has no such feature "
            f"(features: {', '.join(spec.names)})"
        )
    column = spec.names.index(name)
    feature = spec.features_[column]
    kinds = [k for k in RULE_KINDS if k in rule]
    if len(kinds) != 1:
        raise PointsRuleError(
            f"points rule on {name!r}: give exactly one of {', '.join(RULE_KINDS)}, "
            f"got {', '.join(kinds) or 'none'}"
        )
    kind = kinds[0]
    if_missing = _number(rule, "if_missing") if rule.get("if_missing") is not None else None
    common: dict[str, Any] = {
        "feature": name,
        "column": column,
        "kind": kind,
        "if_missing": if_missing,
        "rule": dict(rule),
    }
    if kind == "values":
        values = rule["values"]
        if not isinstance(values, Mapping):
            raise PointsRuleError(f"points rule on {name!r}: values must map value -> points")
        table: list[tuple[float, float]] = []
        if feature.dtype == "category":
            codes = {str(c): float(i) for i, c in enumerate(feature.categories)}
            for value, pts in values.items():
                if str(value) in codes:
                    table.append(
                        (codes[str(value)], _number({"feature": name, "points": pts}, "points"))
                    )
        else:
            for value, pts in values.items():
                try:
                    table.append(
                        (float(value), _number({"feature": name, "points": pts}, "points"))
                    )
                except ValueError as exc:
                    raise PointsRuleError(
                        f"points rule on {name!r}: {name} is a number, so its values must "
                        f"be numbers, got {value!r}"
                    ) from exc
        return CompiledRule(**common, table=tuple(table))
    if feature.dtype == "category":
        raise PointsRuleError(
            f"points rule on {name!r}: {kind} needs a numeric feature, and {name} is a "
            "category: give values instead"
        )
    if kind == "per":
        cap = _number(rule, "cap") if rule.get("cap") is not None else None
        return CompiledRule(**common, per=_number(rule, "per"), cap=cap)
    return CompiledRule(**common, bar=_number(rule, kind), points=_number(rule, "points"))


class PointsMargin:
    """Hand-set points on the log-odds scale: ``offset + scale · Σ rule points``.

    Args:
        rules: Compiled rules (``compile_rule``).
        n_features: Columns of the encoded matrix.
        scale: Log-odds per point (> 0, so more points never lower the score).
        offset: Log-odds of a lead with no points (the SHAP base value).
        threshold: The points' own MQL threshold (recorded for the card).
        source: Where the rules came from (``config`` or ``default``).

    Raises:
        ValueError: when ``scale`` is not positive or a rule's column is out of range.
    """

    kind = "points"

    def __init__(
        self,
        rules: Sequence[CompiledRule],
        n_features: int,
        scale: float = 1.0,
        offset: float = 0.0,
        threshold: float | None = None,
        source: str = "config",
    ):
        self.rules = tuple(rules)
        self.n_features = int(n_features)
        self.scale = float(scale)
        self.offset = float(offset)
        self.threshold = None if threshold is None else float(threshold)
        self.source = source
        if not (self.scale > 0 and math.isfinite(self.scale)):
            raise ValueError(f"points scale must be a positive number, got {scale}")
        if not math.isfinite(self.offset):
            raise ValueError(f"points offset must be finite, got {offset}")
        bad = [r.column for r in self.rules if not 0 <= r.column < self.n_features]
        if bad:
            raise ValueError(
                f"points rules must name columns in 0..{self.n_features - 1}, got {bad}"
            )

    @classmethod
    def from_rules(
        cls,
        rules: Sequence[Mapping[str, Any]],
        spec: InputSpec,
        *,
        scale: float = 1.0,
        offset: float = 0.0,
        threshold: float | None = None,
        source: str = "config",
    ) -> PointsMargin:
        """Compile rules in the dataset config's form against a fitted spec.

        Raises:
            PointsRuleError: naming the first rule that cannot be applied.
        """
        if not rules:
            raise PointsRuleError("a points model needs at least one rule")
        compiled = [compile_rule(rule, spec) for rule in rules]
        return cls(compiled, len(spec.names), scale, offset, threshold, source)

    @property
    def expected_value(self) -> float:
        """The base value: the margin of a lead that earns no points."""
        return self.offset

    @cached_property
    def _columns(self) -> npt.NDArray[np.intp]:
        return np.array([r.column for r in self.rules], dtype=np.intp)

    def _check(self, X: npt.ArrayLike) -> FloatArray:
        rows = np.asarray(X, dtype=np.float64)
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if rows.ndim != 2 or rows.shape[1] != self.n_features:
            raise ValueError(
                f"the points model expects {self.n_features} columns, got shape {rows.shape}"
            )
        return rows

    def rule_points(self, X: npt.ArrayLike) -> FloatArray:
        """Points of every rule (columns, in rule order) for every row."""
        rows = self._check(X)
        if not self.rules:
            return np.zeros((rows.shape[0], 0), dtype=np.float64)
        return np.column_stack([r.apply(rows) for r in self.rules])

    def points(self, X: npt.ArrayLike) -> FloatArray:
        """Total points of every row (the hand-set score itself)."""
        return np.asarray(self.rule_points(X).sum(axis=1), dtype=np.float64)

    def predict_raw(self, X: npt.ArrayLike) -> FloatArray:
        """Raw margins: ``offset + scale · points``."""
        return np.asarray(self.offset + self.scale * self.points(X), dtype=np.float64)

    def explain(self, X: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Raw margins and each feature's scaled points (exact: they sum to raw − offset)."""
        P = self.rule_points(X)
        raw = np.asarray(self.offset + self.scale * P.sum(axis=1), dtype=np.float64)
        shap = np.zeros((P.shape[0], self.n_features), dtype=np.float64)
        for k, column in enumerate(self._columns):
            shap[:, column] += self.scale * P[:, k]
        return raw, shap

    def fired(self, x: npt.ArrayLike) -> list[tuple[CompiledRule, float]]:
        """The rules that gave one row non-zero points, with those points."""
        pts = self.rule_points(x)[0]
        return [(rule, float(p)) for rule, p in zip(self.rules, pts, strict=True) if p != 0.0]

    def warmup(self) -> None:
        """Nothing to compile: present for the margin-model protocol."""
        self.explain(np.full((1, self.n_features), np.nan))

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``points_model.json`` of a bundle)."""
        return {
            "kind": self.kind,
            "n_features": self.n_features,
            "scale": self.scale,
            "offset": self.offset,
            "threshold": self.threshold,
            "source": self.source,
            "rules": [r.to_dict() for r in self.rules],
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> PointsMargin:
        """Inverse of ``to_dict``.

        Raises:
            KeyError, TypeError, ValueError: on a malformed payload (the bundle loader
                names the file).
        """
        threshold = payload.get("threshold")
        return cls(
            [CompiledRule.from_dict(r) for r in payload["rules"]],
            int(payload["n_features"]),
            float(payload["scale"]),
            float(payload["offset"]),
            None if threshold is None else float(threshold),
            str(payload.get("source", "config")),
        )

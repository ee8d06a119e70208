"""The model artifact: a margin model (text/JSON) plus JSON, and the one scoring routine.

A bundle is a folder with its margin model (``runtime.margin``: ``model.txt`` in
LightGBM's own text format for trees, ``linear_model.json`` for a logistic regression,
both for a blend, and ``margin.json`` naming the kind), and JSON files for the input
spec, calibration, MQL policy and metadata. Nothing in it is pickled,
so loading a bundle can never execute code.

Scoring is two steps. ``CalibratedModel.predict`` is policy-free: raw margin, calibrated
probability, SHAP values and their per-group sums (``Predictions``); training fits the
MQL policy on exactly these. ``Policy.apply`` then turns predictions into 0–100 scores,
MQL flags, thresholds and grades (``Scores``). ``ModelBundle.score`` runs both and is the
only place a feature frame becomes probabilities, MQL flags, grades and reasons: training
evaluation, batch scoring and the HTTP service all call it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.io import replace_dir
from runtime.encoding import InputSpec
from runtime.margin import (
    LINEAR_FILE,
    POINTS_FILE,
    AnyMargin,
    TreeMargin,
    as_margin,
    load_margin,
    save_margin,
    tree_booster,
)
from runtime.margin import (
    load_booster_text as load_booster_text,  # re-exported: older callers import it here
)
from runtime.metadata import BUNDLE_FORMAT_VERSION, BundleMetadata, ModelArtifactError
from runtime.reasons import signal_reasons
from runtime.regional import REGIONAL_FILE
from runtime.treeshap import TreeShapExplainer

FILES = {
    "model": "model.txt",
    "spec": "input_spec.json",
    "calibration": "calibration.json",
    "policy": "policy.json",
    "metadata": "metadata.json",
}
FORMAT_VERSION = BUNDLE_FORMAT_VERSION
GRADE_LETTERS = "ABCD"
PARAMETRIC_TIE_BREAK = 1e-6
"""Total rise a ``platt`` or ``beta`` map adds beyond its supported margin range, so leads
past it keep their order while getting (within a millionth) the value at its edge."""
PARAMETRIC_EXTEND = 50.0
"""Margin scale over which that rise is spread (as the isotonic outer knots)."""
INTERVAL_Z = 1.959963984540054
"""Normal quantile of a two-sided 95% interval (delta method of ``platt`` and ``beta``)."""
_GRADES = np.array([[f"{letter}{digit}" for digit in range(1, 5)] for letter in GRADE_LETTERS])


@dataclass(frozen=True)
class Calibration:
    """Maps the model's raw margin to a calibrated conversion probability, with an interval.

    ``isotonic`` keeps the fitted blocks as (x, y) knots on the raw margin and interpolates
    between them; ``platt`` is ``sigmoid(a * raw + b)``; ``beta`` is beta calibration (Kull
    et al. 2017) of ``q = sigmoid(raw)``: ``sigmoid(c + a * ln(q) - b * ln(1 - q))`` with
    ``a, b >= 0``; ``none`` is the plain sigmoid.

    Fitted maps (``training.calibration``) also carry what backs each output: ``low`` and
    ``high`` (per isotonic knot, the 95% Beta-posterior interval of its block), ``rows``
    and ``positives`` (per knot, its block's validation leads and conversions), ``cov``
    (for ``platt`` and ``beta``, the covariance of the coefficients, for a delta-method
    interval) and ``lo``/``hi`` (for ``platt`` and ``beta``, the margin range the evidence
    supports: margins beyond it get the value at its edge, plus a rise of at most
    ``PARAMETRIC_TIE_BREAK`` so the ranking survives). All default to "absent", so a map
    written before they existed reads and scores as it always did.
    """

    method: str = "none"
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    a: float = 1.0
    b: float = 0.0
    c: float = 0.0
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()
    rows: tuple[int, ...] = ()
    positives: tuple[int, ...] = ()
    cov: tuple[float, ...] = ()
    lo: float = -math.inf
    hi: float = math.inf

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for raw margins."""
        raw = np.asarray(raw, dtype=np.float64)
        if self.method == "isotonic":
            return np.asarray(np.interp(raw, *self._knots), dtype=np.float64)
        if self.method in ("platt", "beta"):
            inside = np.clip(raw, self.lo, self.hi)
            ramp = PARAMETRIC_TIE_BREAK / 2 * np.tanh((raw - inside) / PARAMETRIC_EXTEND)
            return np.asarray(_sigmoid(self._logit(inside)) + ramp, dtype=np.float64)
        return _sigmoid(raw)

    def interval(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A 95% interval around each calibrated probability: how sure the evidence is.

        ``isotonic``: the Beta-posterior interval of the block the margin falls in,
        interpolated between neighbouring blocks exactly as the probability is. ``platt``
        and ``beta``: the delta method on the logit, ``logit ± 1.96 sd`` with ``sd`` from
        the coefficients' covariance (the uncertainty of the fitted curve at this margin,
        computed without a bootstrap). A map without that evidence (``none``, or written
        before intervals existed) gives the probability itself as both ends.

        Returns:
            ``(low, high)`` arrays with ``low <= probability <= high``.
        """
        raw = np.asarray(raw, dtype=np.float64)
        p = self(raw)
        if self.method == "isotonic" and len(self.low) == len(self.x) == len(self.high):
            x = self._knots[0]
            low = np.interp(raw, x, np.asarray(self.low, dtype=np.float64))
            high = np.interp(raw, x, np.asarray(self.high, dtype=np.float64))
        elif self.method in ("platt", "beta") and self.cov:
            inside = np.clip(raw, self.lo, self.hi)
            z = self._design(inside)
            cov = np.asarray(self.cov, dtype=np.float64).reshape(z.shape[1], z.shape[1])
            sd = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", z, cov, z), 0.0))
            logit = self._logit(inside)
            low, high = _sigmoid(logit - INTERVAL_Z * sd), _sigmoid(logit + INTERVAL_Z * sd)
        else:
            return p, p.copy()
        return np.minimum(low, p), np.maximum(high, p)

    def _logit(self, raw: np.ndarray) -> np.ndarray:
        """The calibrated log-odds of ``platt`` or ``beta`` at (already clipped) margins."""
        if self.method == "beta":
            logit = self.c + self.b * np.logaddexp(0.0, raw) - self.a * np.logaddexp(0.0, -raw)
        else:
            logit = self.a * raw + self.b
        return np.asarray(logit, dtype=np.float64)

    def _design(self, raw: np.ndarray) -> np.ndarray:
        """The regressors whose coefficients ``cov`` describes, one row per margin."""
        if self.method == "beta":
            return np.column_stack(
                [-np.logaddexp(0.0, -raw), np.logaddexp(0.0, raw), np.ones_like(raw)]
            )
        return np.column_stack([raw, np.ones_like(raw)])

    @cached_property
    def _knots(self) -> tuple[np.ndarray, np.ndarray]:
        """The isotonic knots as arrays, built once (a request scores one lead)."""
        return np.asarray(self.x, dtype=np.float64), np.asarray(self.y, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """JSON form; the evidence fields only when present (older readers ignore them)."""
        out: dict[str, Any] = {
            "method": self.method,
            "x": list(self.x),
            "y": list(self.y),
            "a": self.a,
            "b": self.b,
        }
        if self.c != 0.0:
            out["c"] = self.c
        for name in ("low", "high", "rows", "positives", "cov"):
            if getattr(self, name):
                out[name] = list(getattr(self, name))
        for name in ("lo", "hi"):
            if math.isfinite(getattr(self, name)):
                out[name] = getattr(self, name)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        """Inverse of ``to_dict``."""
        return cls(
            d["method"],
            tuple(d.get("x", ())),
            tuple(d.get("y", ())),
            float(d.get("a", 1.0)),
            float(d.get("b", 0.0)),
            float(d.get("c", 0.0)),
            tuple(float(v) for v in d.get("low", ())),
            tuple(float(v) for v in d.get("high", ())),
            tuple(int(v) for v in d.get("rows", ())),
            tuple(int(v) for v in d.get("positives", ())),
            tuple(float(v) for v in d.get("cov", ())),
            float(d.get("lo", -math.inf)),
            float(d.get("hi", math.inf)),
        )


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function."""
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


@dataclass(frozen=True)
class Policy:
    """How probabilities become MQL flags, 0–100 scores and A1–D4 grades.

    Attributes:
        rule: ``capacity`` (top share of leads become MQLs) or ``precision`` (the
            lowest threshold whose MQL→conversion rate reaches the target).
        target: The capacity share or the precision target the threshold came from.
        threshold: Global probability threshold for ``mql``.
        region_thresholds: Per-region thresholds overriding the global one.
        fit_cuts: Ascending cut points on the summed SHAP of ``fit`` features; a lead at
            or above the top cut is an A, below the lowest a D.
        engagement_cuts: Same for ``engagement`` features; 1 is the most engaged.
        score_knots: Probabilities at the 0th..100th percentile of the validation
            period, so ``score`` reads as "better than N% of leads".
        region_feature: Feature holding the region.
    """

    rule: str
    target: float
    threshold: float
    fit_cuts: tuple[float, float, float]
    engagement_cuts: tuple[float, float, float]
    score_knots: tuple[float, ...]
    region_thresholds: dict[str, float] = field(default_factory=dict)
    region_feature: str = "region"

    def __post_init__(self) -> None:
        """Refuse cut lists that are not quartiles: ``grades`` indexes by their length."""
        for name in ("fit_cuts", "engagement_cuts"):
            if len(getattr(self, name)) != 3:
                raise ValueError(
                    f"policy {name} must hold 3 cut points (quartiles), "
                    f"got {len(getattr(self, name))}"
                )

    def threshold_for(self, regions: np.ndarray) -> np.ndarray:
        """Threshold per lead, using the region's own where the policy has one."""
        out = np.full(len(regions), self.threshold, dtype=np.float64)
        for region, value in self.region_thresholds.items():
            out[regions == region] = value
        return out

    def scores(self, probability: np.ndarray) -> np.ndarray:
        """0–100 score: the percentile of the probability among validation leads."""
        knots = self._arrays["score_knots"]
        if knots.size < 2:
            return np.round(100 * probability).astype(np.int64)
        ranks = np.searchsorted(knots, probability, side="right") - 1
        return np.minimum(np.maximum(ranks, 0), 100).astype(np.int64)

    def grades(self, fit_sum: np.ndarray, engagement_sum: np.ndarray) -> np.ndarray:
        """A1–D4 from the per-group SHAP sums."""
        arrays = self._arrays
        # three cuts: searchsorted gives 0..3, i.e. letter D..A and digit 4..1
        letter = 3 - np.searchsorted(arrays["fit_cuts"], fit_sum, side="right")
        digit = 3 - np.searchsorted(arrays["engagement_cuts"], engagement_sum, side="right")
        return _GRADES[letter, digit]

    def apply(
        self, predictions: Predictions, regions: np.ndarray, lead_id: np.ndarray, as_of: np.ndarray
    ) -> Scores:
        """The policy step: scores, MQL flags, thresholds and grades for ``predictions``.

        The arrays of ``predictions`` are shared with the result, not copied.

        Args:
            predictions: Policy-free output of ``CalibratedModel.predict``.
            regions: Each row's region text ("" when unknown), for regional thresholds.
            lead_id: Passed through to the result.
            as_of: Passed through to the result.
        """
        probability = predictions.probability
        threshold = self.threshold_for(regions)
        return Scores(
            raw=predictions.raw,
            probability=probability,
            shap=predictions.shap,
            fit_sum=predictions.fit_sum,
            engagement_sum=predictions.engagement_sum,
            X=predictions.X,
            base_value=predictions.base_value,
            lead_id=lead_id,
            as_of=as_of,
            score=self.scores(probability),
            mql=probability >= threshold,
            threshold=threshold,
            grade=self.grades(predictions.fit_sum, predictions.engagement_sum),
        )

    @cached_property
    def _arrays(self) -> dict[str, np.ndarray]:
        """Knots and cuts as arrays, built once (a request scores one lead)."""
        return {
            name: np.asarray(getattr(self, name), dtype=np.float64)
            for name in ("score_knots", "fit_cuts", "engagement_cuts")
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "rule": self.rule,
            "target": self.target,
            "threshold": self.threshold,
            "region_thresholds": dict(self.region_thresholds),
            "region_feature": self.region_feature,
            "fit_cuts": list(self.fit_cuts),
            "engagement_cuts": list(self.engagement_cuts),
            "score_knots": list(self.score_knots),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Policy:
        """Inverse of ``to_dict``."""
        return cls(
            rule=d["rule"],
            target=float(d["target"]),
            threshold=float(d["threshold"]),
            fit_cuts=tuple(d["fit_cuts"]),
            engagement_cuts=tuple(d["engagement_cuts"]),
            score_knots=tuple(d.get("score_knots", ())),
            region_thresholds={k: float(v) for k, v in d.get("region_thresholds", {}).items()},
            region_feature=d.get("region_feature", "region"),
        )


@dataclass
class Predictions:
    """What the model says about a batch of snapshots, before any business rule.

    Attributes:
        raw: Raw margins (log-odds before calibration).
        probability: Calibrated conversion probabilities.
        shap: Exact SHAP values, one column per feature (rows sum to ``raw`` minus
            ``base_value``).
        fit_sum: Summed SHAP of the ``fit`` features.
        engagement_sum: Summed SHAP of the ``engagement`` features.
        X: The encoded features that were scored.
        base_value: The model's expected raw margin.
    """

    raw: np.ndarray
    probability: np.ndarray
    shap: np.ndarray
    fit_sum: np.ndarray
    engagement_sum: np.ndarray
    X: np.ndarray
    base_value: float


@dataclass
class Scores(Predictions):
    """Everything ``ModelBundle.score`` computes: the predictions plus the policy's verdict.

    Attributes:
        lead_id: Each row's lead.
        as_of: Each row's scoring date.
        score: 0–100 score (``Policy.scores``).
        mql: Whether the row is an MQL.
        threshold: The probability threshold applied to the row.
        grade: A1–D4 grade (``Policy.grades``).
    """

    lead_id: np.ndarray
    as_of: np.ndarray
    score: np.ndarray
    mql: np.ndarray
    threshold: np.ndarray
    grade: np.ndarray

    def reasons(self, i: int, spec: InputSpec, top: int = 5) -> dict[str, list[dict[str, Any]]]:
        """Top positive and negative signals of row ``i``, with plain sentences.

        One reason per signal (a family of features such as the 7/30/90-day counts of one
        activity): its exact SHAP values summed, one sentence (``runtime.reasons``).
        """
        return signal_reasons(self.shap[i], self.X[i], spec, top)

    def frame(self, spec: InputSpec, top: int = 3) -> pd.DataFrame:
        """One row per lead: the scores, the top reasons as sentences, and the signal of
        the strongest reason each way (``top_positive_signal``, ``top_negative_signal``;
        empty when there is none)."""
        out = pd.DataFrame(
            {
                "lead_id": self.lead_id,
                "as_of": self.as_of,
                "probability": self.probability,
                "score": self.score,
                "mql": self.mql,
                "threshold": self.threshold,
                "grade": self.grade,
            }
        )
        pos, neg, pos_signal, neg_signal = [], [], [], []
        for i in range(len(out)):
            r = self.reasons(i, spec, top)
            pos.append(" | ".join(x["sentence"] for x in r["positive"]))
            neg.append(" | ".join(x["sentence"] for x in r["negative"]))
            pos_signal.append(r["positive"][0]["signal"] if r["positive"] else "")
            neg_signal.append(r["negative"][0]["signal"] if r["negative"] else "")
        out["top_positive_reasons"] = pos
        out["top_negative_reasons"] = neg
        out["top_positive_signal"] = pos_signal
        out["top_negative_signal"] = neg_signal
        return out


class CalibratedModel:
    """The trained model without its MQL policy: margins, probabilities and SHAP values.

    Training fits the policy on this model's ``predict`` output, so no policy (not even
    a placeholder) exists before the policy is chosen.

    Args:
        model: The margin model (``runtime.margin``: trees, logistic regression or their
            blend); a bare LightGBM booster is wrapped as a tree model.
        spec: Fitted input spec (feature order, groups, categories).
        calibration: Raw margin → probability map.
    """

    def __init__(self, model: lgb.Booster | AnyMargin, spec: InputSpec, calibration: Calibration):
        self.margin: AnyMargin = as_margin(model)
        self.spec = spec
        self.calibration = calibration
        groups = np.array([f.group for f in spec.features_])
        self._fit_columns = groups == "fit"
        self._engagement_columns = groups == "engagement"

    @property
    def kind(self) -> str:
        """``tree``, ``linear`` or ``blend`` (``runtime.margin``)."""
        return self.margin.kind

    @property
    def booster(self) -> lgb.Booster:
        """The LightGBM booster of a tree model (the tree part of a blend).

        Raises:
            ModelArtifactError: for a logistic-regression model, which has no trees.
        """
        booster = tree_booster(self.margin)
        if booster is None:
            raise ModelArtifactError(
                f"this is a {self.margin.kind} model: it has no LightGBM booster"
            )
        return booster

    @property
    def explainer(self) -> TreeShapExplainer:
        """Exact TreeSHAP explainer of a tree model, built on first use.

        Raises:
            ModelArtifactError: for a model that is not a plain tree model.
        """
        if not isinstance(self.margin, TreeMargin):
            raise ModelArtifactError(
                f"this is a {self.margin.kind} model: use explain_matrix for its SHAP values"
            )
        return self.margin.explainer

    def warmup(self) -> None:
        """Compile and exercise the scoring path once so the first request is fast."""
        self.margin.warmup()
        self.explain_matrix(np.full((1, len(self.spec.names)), np.nan))

    def explain_matrix(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw margins and SHAP values for an encoded matrix, in one pass."""
        return self.margin.explain(np.ascontiguousarray(X, dtype=np.float64))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities for a feature frame (no explanations)."""
        raw = self.margin.predict_raw(self.spec.transform(frame))
        return self.calibration(np.asarray(raw, dtype=np.float64))

    def predict(self, frame: pd.DataFrame) -> Predictions:
        """Margins, probabilities and SHAP values (with group sums) for a feature frame."""
        return self.predict_matrix(self.spec.transform(frame))

    def predict_matrix(self, X: np.ndarray) -> Predictions:
        """``predict`` for an already encoded matrix (``InputSpec.transform`` or ``encode``)."""
        raw, shap = self.explain_matrix(X)
        return Predictions(
            raw=raw,
            probability=self.calibration(raw),
            shap=shap,
            fit_sum=shap[:, self._fit_columns].sum(axis=1),
            engagement_sum=shap[:, self._engagement_columns].sum(axis=1),
            X=X,
            base_value=float(self.margin.expected_value),
        )


def _margin_file(kind: str) -> str:
    """The artifact that states a margin's feature count (named in a mismatch error)."""
    return {"tree": FILES["model"], "points": POINTS_FILE, "regional": REGIONAL_FILE}.get(
        kind, LINEAR_FILE
    )


class ModelBundle(CalibratedModel):
    """A trained lead-scoring model with everything needed to score and explain.

    Args:
        model: The margin model (``runtime.margin``), or a bare LightGBM booster.
        spec: Fitted input spec (feature order, groups, categories).
        calibration: Raw margin → probability map.
        policy: MQL threshold(s), grade cut points and score knots.
        metadata: Trained-on window, metrics, data fingerprint, request form, ...
            (default: an empty ``BundleMetadata``).
    """

    def __init__(
        self,
        model: lgb.Booster | AnyMargin,
        spec: InputSpec,
        calibration: Calibration,
        policy: Policy,
        metadata: BundleMetadata | None = None,
    ):
        super().__init__(model, spec, calibration)
        self.policy = policy
        self.metadata = metadata if metadata is not None else BundleMetadata()
        self._region_col = (
            spec.names.index(policy.region_feature) if policy.region_feature in spec.names else None
        )

    def score(self, frame: pd.DataFrame) -> Scores:
        """Probability, score, MQL flag, grade and SHAP values for a feature frame."""
        n = len(frame)
        if self._region_col is not None:
            regions = (
                frame[self.policy.region_feature].astype("string").fillna("").to_numpy(dtype=object)
            )
        else:
            regions = np.full(n, "", dtype=object)
        return self.score_matrix(
            self.spec.transform(frame),
            regions,
            frame["lead_id"].to_numpy() if "lead_id" in frame else np.arange(n),
            frame["as_of"].to_numpy() if "as_of" in frame else np.full(n, None),
        )

    def score_matrix(
        self, X: np.ndarray, regions: np.ndarray, lead_id: np.ndarray, as_of: np.ndarray
    ) -> Scores:
        """``score`` for an already encoded matrix (``InputSpec.transform`` or ``encode``):
        the policy-free ``predict_matrix``, then ``Policy.apply``.

        Args:
            X: Encoded features, one row per snapshot.
            regions: Each row's region text ("" when unknown), for regional thresholds.
            lead_id: Passed through to the result.
            as_of: Passed through to the result.
        """
        return self.policy.apply(self.predict_matrix(X), regions, lead_id, as_of)

    def save(self, folder: str | Path) -> Path:
        """Write the bundle atomically (model text + JSON; no pickle)."""

        def fill(tmp: Path) -> None:
            save_margin(self.margin, tmp)
            for key, payload in (
                ("spec", self.spec.to_dict()),
                ("calibration", self.calibration.to_dict()),
                ("policy", self.policy.to_dict()),
                ("metadata", self.metadata.to_json()),
            ):
                (tmp / FILES[key]).write_text(json.dumps(payload, indent=2, default=str))

        return replace_dir(folder, fill)

    @classmethod
    def load(cls, folder: str | Path) -> ModelBundle:
        """Load a bundle, refusing anything that is not exactly our text + JSON format.

        Raises:
            ModelArtifactError: naming the missing or unreadable file, or saying to
                retrain when the bundle was written in another format.
        """
        root = Path(folder)
        if not root.is_dir():
            raise ModelArtifactError(f"model folder not found: {root}")
        payloads = {}
        for key in ("spec", "calibration", "policy", "metadata"):
            path = root / FILES[key]
            try:
                payloads[key] = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError as exc:
                raise ModelArtifactError(f"model artifact lacks {path.name} in {root}") from exc
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ModelArtifactError(f"{path} is not valid JSON: {exc}") from exc
        metadata = BundleMetadata.from_json(payloads["metadata"], root)
        margin = load_margin(root)
        listed = payloads["spec"].get("features") if isinstance(payloads["spec"], dict) else None
        # Before the spec is parsed: its signals would otherwise name the missing feature
        # first, hiding that the spec and the model disagree.
        if isinstance(listed, list) and margin.n_features != len(listed):
            name = _margin_file(margin.kind)
            raise ModelArtifactError(
                f"{root}: {name} expects {margin.n_features} features but "
                f"input_spec.json lists {len(listed)}"
            )
        try:
            spec = InputSpec.from_dict(payloads["spec"])
            calibration = Calibration.from_dict(payloads["calibration"])
            policy = Policy.from_dict(payloads["policy"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelArtifactError(f"{root}: malformed JSON artifact: {exc!r}") from exc
        if margin.n_features != len(spec.names):
            name = _margin_file(margin.kind)
            raise ModelArtifactError(
                f"{root}: {name} expects {margin.n_features} features but "
                f"input_spec.json lists {len(spec.names)}"
            )
        return cls(margin, spec, calibration, policy, metadata)

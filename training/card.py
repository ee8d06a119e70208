"""The model card: a markdown page a data scientist or a sales leader can read.

It states what data the model saw (the three time periods), how it compares with the
baselines on the latest period, what the MQL policy does, and what the numbers do not
say. Generated from the bundle's metadata and the evaluation, so it cannot disagree
with what was logged.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from features.metadata import DatasetInfo
from features.sufficiency import PURPOSES, RULES, SufficiencyReport, sufficiency_of_training_set
from runtime.bundle import Policy
from runtime.metadata import BundleMetadata, SplitWindow, request_form_of
from training.evaluate import LOGISTIC, MODEL, ORACLE, POINTS

if TYPE_CHECKING:  # issue 19 (tournament): types of the appended block only
    from runtime.points import PointsMargin
    from training.choice import RegionChoice
    from training.promote import PromotionResult

CARD_METRICS: tuple[tuple[str, str, str], ...] = (
    ("roc_auc", "ROC AUC", "{:.3f}"),
    ("pr_auc", "PR AUC", "{:.3f}"),
    ("log_loss", "Log loss", "{:.4f}"),
    ("brier", "Brier score", "{:.4f}"),
    ("ece", "Expected calibration error", "{:.4f}"),
    ("lift_top10", "Lift, top 10%", "{:.2f}"),
    ("capture_top10", "Conversions captured, top 10%", "{:.1%}"),
    ("lift_top20", "Lift, top 20%", "{:.2f}"),
    ("capture_top20", "Conversions captured, top 20%", "{:.1%}"),
    ("mql_rate", "MQL rate (new leads)", "{:.1%}"),
    ("population_mql_rate", "MQL rate (all open leads)", "{:.1%}"),
    ("precision", "MQL→conversion rate (precision)", "{:.1%}"),
    ("recall", "Recall (conversions flagged as MQL)", "{:.1%}"),
)


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _fmt(value: object, pattern: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return pattern.format(value)


def _window_table(window: SplitWindow) -> list[str]:
    lines = [
        "| Period | First snapshot | Last snapshot | Snapshots | Leads | Conversions |",
        "|---|---|---|---:|---:|---:|",
    ]
    for name, w in window:
        lines.append(
            f"| {name} | {str(w.first_as_of)[:10]} | {str(w.last_as_of)[:10]} "
            f"| {w.rows:,} | {w.leads:,} | {w.positives:,} |"
        )
    return lines


def _metrics_table(metrics: dict[str, dict[str, float]]) -> list[str]:
    scorers = [s for s in (MODEL, LOGISTIC, POINTS, ORACLE) if s in metrics]
    lines = ["| Metric | " + " | ".join(scorers) + " |", "|---|" + "---:|" * len(scorers)]
    for key, label, pattern in CARD_METRICS:
        cells = [_fmt(metrics[s].get(key), pattern) for s in scorers]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _region_table(by_region: dict[str, dict[str, float]]) -> list[str]:
    lines = [
        "| Region | Snapshots | Conversion rate | ROC AUC | Points AUC | MQL rate | "
        "MQL→conversion | Recall |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for region, m in by_region.items():
        lines.append(
            f"| {region} | {int(m['rows']):,} | {_fmt(m['base_rate'], '{:.1%}')} | "
            f"{_fmt(m['roc_auc'], '{:.3f}')} | {_fmt(m.get('points_roc_auc'), '{:.3f}')} | "
            f"{_fmt(m['mql_rate'], '{:.1%}')} | {_fmt(m['precision'], '{:.1%}')} | "
            f"{_fmt(m['recall'], '{:.1%}')} |"
        )
    return lines


CANDIDATE_NAMES = {
    "points": "Points score",
    "lightgbm": "LightGBM",
    "logistic": "Logistic regression",
    "blend": "Blend",
}


def _model_words(metadata: BundleMetadata) -> str:
    """The registered model in a few words, for the card's first paragraph."""
    return {
        "linear": "A regularised logistic regression",
        "blend": "A blend of LightGBM and a regularised logistic regression",
        "points": "A hand-set points score (only its log-odds per point fitted)",
    }.get(metadata.model_choice.kind, "LightGBM")


def _choice_lines(metadata: BundleMetadata) -> list[str]:
    """Every candidate side by side, the winner marked, and why it won."""
    model_choice = metadata.model_choice
    if not model_choice.candidates:
        return []
    where = (
        f"{model_choice.folds}-fold cross-fitting over train + validation (out of fold)"
        if model_choice.scheme == "crossfit"
        else "the validation period"
    )
    lines = [
        "## Model choice",
        "",
        f"Candidates judged on {where}; log loss after a Platt map cross-fitted on those "
        "rows, so margins of different models compare fairly. Test columns are reported "
        "only: the test period never took part in the choice.",
        "",
        "| Candidate | How | Choice log loss | Choice ROC AUC | Choice Brier | Test log loss "
        "| Test ROC AUC | Test Brier |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in model_choice.candidates:
        mark = " **(registered)**" if c.name == model_choice.chosen else ""
        lines.append(
            f"| {CANDIDATE_NAMES.get(c.name, c.name)}{mark} | {c.detail} "
            f"| {_fmt(c.valid_log_loss, '{:.4f}')} | {_fmt(c.valid_roc_auc, '{:.3f}')} "
            f"| {_fmt(c.valid_brier, '{:.4f}')} | {_fmt(c.test_log_loss, '{:.4f}')} "
            f"| {_fmt(c.test_roc_auc, '{:.3f}')} | {_fmt(c.test_brier, '{:.4f}')} |"
        )
    lines += ["", model_choice.reason, ""]
    return lines


def _policy_lines(policy: Policy) -> list[str]:
    if policy.rule == "capacity":
        rule = (
            f"capacity: the top {policy.target:.0%} of open leads (all snapshots dated in "
            "the validation period) become MQLs"
        )
    else:
        rule = f"minimum precision: MQLs must convert at least {policy.target:.0%} of the time"
    lines = [f"- Rule: {rule}.", f"- Global threshold: probability ≥ {policy.threshold:.4f}."]
    for region, value in sorted(policy.region_thresholds.items()):
        lines.append(f"- Region {region}: probability ≥ {value:.4f}.")
    lines += [
        "- Grade letter (A–D, fit) from the summed SHAP contribution of the fit features, cut "
        "at its validation quartiles: " + ", ".join(f"{c:+.3f}" for c in policy.fit_cuts) + ".",
        "- Grade digit (1–4, engagement) from the summed SHAP contribution of the engagement "
        "features, cut at: " + ", ".join(f"{c:+.3f}" for c in policy.engagement_cuts) + ".",
        "- Score 0–100: percentile of the probability among the open leads of the "
        "validation period.",
    ]
    return lines


def _is_snapshot(metadata: BundleMetadata) -> bool:
    """Whether the model was trained on a ``lead_snapshot`` dataset config."""
    return request_form_of(metadata.dataset, metadata.snapshot_rule) == "features"


def _split_kind(metadata: BundleMetadata) -> str:
    """``stratified``, ``time`` (a config's date) or ``pipeline`` (the pipeline's periods)."""
    return metadata.split_spec.kind if metadata.split_spec else "pipeline"


def _outcome_text(dataset: DatasetInfo | None) -> str:
    """The outcome a lead-snapshot config declares, in words."""
    outcome = dataset.outcome if dataset else None
    if outcome is not None and outcome.in_file is not None:
        return f"converted when its id appears in `{outcome.in_file}`, column `{outcome.column}`"
    if outcome is not None and outcome.column:
        values = ", ".join(f"`{v}`" for v in outcome.positive or ())
        return f"converted when column `{outcome.column}` is {values or 'true'}"
    return "the outcome column of the export (not recorded in this model)"


def _purpose(metadata: BundleMetadata) -> str:
    """The card's first sentence: what the probability means for this model."""
    if _is_snapshot(metadata):
        dataset = metadata.dataset
        if dataset is not None and dataset.as_of:
            when = (
                f"every lead is scored as of one fixed date, {dataset.as_of} (the "
                "export has no usable timestamps)"
            )
        elif dataset is not None and dataset.time:
            when = f"each lead is scored as of its own `{dataset.time}`"
        else:
            when = "the scoring time is not recorded"
        return (
            "Predicts the probability that a lead converts, from one row per lead with "
            f"aggregated behaviour as exported; {when}. A lead counts as "
            f"{_outcome_text(dataset)}. There is no label horizon: the outcome is "
            "whatever the export had recorded when it was taken. "
            f"{_model_words(metadata)} on real outcomes, calibrated on held-out leads."
        )
    days = metadata.horizon_days
    horizon = f"{days} days" if days else "the label horizon (not recorded)"
    return (
        f"Predicts the probability that an open lead converts within {horizon} of the "
        "moment it is scored, from who the lead is (fit) and what it did before that "
        f"moment (engagement). {_model_words(metadata)} on real outcomes, calibrated on "
        + (
            "out-of-fold predictions."
            if metadata.model_choice.scheme == "crossfit"
            else "a later period."
        )
    )


def _dataset_lines(metadata: BundleMetadata) -> list[str]:
    """Data lines of a model trained from a dataset config (``features.dataset_config``)."""
    dataset = metadata.dataset
    split = metadata.split_spec
    kind = _split_kind(metadata)
    if split is not None and kind == "stratified":
        test_fraction = split.test_fraction if split.test_fraction is not None else 0.25
        how = (
            f"stratified random hold-out of {float(test_fraction):.0%} "
            f"(seed {split.seed}); validation "
            f"({float(split.valid_fraction):.0%}) carved from the training "
            "side the same way"
        )
    elif split is not None and kind == "time":
        how = (
            f"by time: test = leads scored on or after {split.at}; validation = "
            "the latest earlier leads"
        )
    else:
        how = (
            "by time: each lead belongs to the period of its first snapshot and is "
            "dropped from later periods, so no lead is on two sides of a boundary"
        )
    name = dataset.name if dataset else "?"
    if _is_snapshot(metadata):
        rows = "one row per lead (a lead snapshot export, no activity log)" + (
            f", id column `{dataset.id}`" if dataset and dataset.id else ", rows numbered"
        )
        if dataset and dataset.as_of:
            when = (
                f"- Scoring time: a fixed `as_of` of {dataset.as_of} for every lead; "
                "label horizon: none (the outcome as exported)."
            )
        elif dataset and dataset.time:
            when = (
                f"- Scoring time: each lead's `{dataset.time}`; label horizon: none "
                "(the outcome as exported)."
            )
        else:
            when = "- Scoring time and label horizon: not recorded."
        return [
            f"- Dataset config: {name} (lead_snapshot), {rows}.",
            f"- Outcome: {_outcome_text(dataset)}.",
            when,
            f"- Split: {how}.",
        ]
    days = metadata.horizon_days
    return [
        f"- Dataset config: {name} ({dataset.kind if dataset else '?'}), "
        f"mapped onto the contract's tables; snapshot rule: "
        f"{metadata.snapshot_rule}; label horizon: "
        f"{f'{days} days' if days else 'not recorded'}.",
        f"- Split: {how}.",
    ]


def _caveats(metadata: BundleMetadata, by_region: dict) -> list[str]:
    """What the numbers do not say, for this model's kind of data and split."""
    lines = []
    if _is_snapshot(metadata):
        lines.append(
            "- The outcome is what the export recorded when it was taken: leads "
            "exported soon after they arrived had less time to convert, and the "
            "features are aggregates up to the export, so they may include "
            "behaviour after the moment a lead would have been scored."
        )
    else:
        lines += [
            "- The test period holds only leads first seen in it, so its leads are young and "
            "convert more often than the average open lead: their MQL rate is above the "
            "capacity target, while the rate over all open leads of the period (the row "
            "'MQL rate (all open leads)') is what sales would receive.",
            "- Conversions within the horizon after the data end are unknown, so the latest "
            "snapshots in the data are not in the training set at all.",
        ]
    if _split_kind(metadata) == "stratified":
        lines.append(
            "- The hold-out is a random sample of the same leads, not a later "
            "period: it measures how well the model ranks this population, not how "
            "it ages; check it again on newer leads."
        )
    lines += [
        (
            "- Out-of-fold predictions serve the number of trees, the model choice, "
            "calibration and the threshold choice at once; the test set is the only "
            "unbiased estimate."
            if metadata.model_choice.scheme == "crossfit"
            else "- Validation serves early stopping, the model choice, calibration and the "
            "threshold choice at once; the test set is the only unbiased estimate."
        ),
        "- Probabilities describe the past population of leads; re-train when lead "
        "sources, markets or the sales process change, and watch calibration over time.",
    ]
    if by_region:
        lines.append("- Metrics per region are noisy where a region has few conversions.")
    return lines


def _monotone_lines(metadata: BundleMetadata) -> list[str]:
    """Whether the booster obeys the signals' declared directions, and what it cost."""
    facts = metadata.monotone
    if facts is None:
        return []
    lines = [
        f"- Monotone constraints ({facts.mode}): {'applied' if facts.applied else 'not applied'}"
    ]
    if facts.valid_roc_auc_constrained is not None and facts.valid_roc_auc_free is not None:
        lines[0] += (
            f"; validation ROC AUC {facts.valid_roc_auc_constrained:.4f} with them, "
            f"{facts.valid_roc_auc_free:.4f} without (kept when they cost at most "
            f"{facts.tolerance})"
        )
    lines[0] += f". {facts.reason[:1].upper()}{facts.reason[1:]}."
    if facts.applied and facts.constraints:
        up = sorted(n for n, d in facts.constraints.items() if d > 0)
        down = sorted(n for n, d in facts.constraints.items() if d < 0)
        lines.append(
            f"- Never lower the score as they grow: {', '.join(f'`{n}`' for n in up) or 'none'}; "
            f"never raise it: {', '.join(f'`{n}`' for n in down) or 'none'}."
        )
    lines.append(
        "- Reasons are given per signal (a family of features such as the 7/30/90-day counts "
        "of one activity): the features' exact SHAP values summed, one sentence."
    )
    return lines


def render_card(
    metadata: BundleMetadata,
    metrics: dict[str, dict[str, float]],
    by_region: dict[str, dict[str, float]],
    policy: Policy,
    sufficiency: SufficiencyReport | None = None,
) -> str:
    """The model card as markdown.

    Args:
        metadata: The bundle's metadata (window, fingerprint, horizon, parameters...).
        metrics: Test metrics per scorer (``Evaluation.metrics``).
        by_region: Model metrics per region (``Evaluation.by_region``).
        policy: The MQL policy stored with the model.
        sufficiency: The training set's data-sufficiency report (None: no such section).
    """
    days = metadata.horizon_days
    horizon = f"{days} days" if days else "the label horizon (not recorded)"
    model = metrics[MODEL]
    results = (
        "## Test results (stratified hold-out, never used for fitting or tuning)"
        if _split_kind(metadata) == "stratified"
        else "## Test-period results (latest period, never used for fitting or tuning)"
    )
    lines = [
        f"# Model card: {metadata.model_name}",
        "",
        _purpose(metadata),
        "",
        "## Data",
        "",
        f"- Data fingerprint: `{metadata.data_fingerprint}`; "
        f"{metadata.rows_total:,} "
        f"{'leads' if _is_snapshot(metadata) else 'snapshots'} in the training set.",
        *(
            _dataset_lines(metadata)
            if metadata.split_spec or metadata.dataset
            else [
                f"- Snapshot rule: {metadata.snapshot_rule}; label horizon: {horizon}.",
                "- Split by time: each lead belongs to the period of its first snapshot and is "
                "dropped from later periods, so no lead is on two sides of a boundary.",
            ]
        ),
        "",
        *(_window_table(metadata.window) if metadata.window else []),
        "",
        results,
        "",
        *_metrics_table(metrics),
        "",
    ]
    if ORACLE in metrics:
        gap = metrics[ORACLE]["roc_auc"] - model["roc_auc"]
        lines += [
            f"The oracle (true simulated probabilities) reaches ROC AUC "
            f"{metrics[ORACLE]['roc_auc']:.3f}: the model is {gap:.3f} below the best "
            "any model of these tables could do.",
            "",
        ]
    if POINTS in metrics and _finite(metrics[POINTS].get("roc_auc")):
        lines += [
            f"Against the points-based score the model gains "
            f"{model['roc_auc'] - metrics[POINTS]['roc_auc']:+.3f} ROC AUC.",
            "",
        ]
    if by_region:
        lines += ["### By region", "", *_region_table(by_region), ""]
    lines += _sufficiency_lines(sufficiency)
    lines += _choice_lines(metadata)
    crossfit = metadata.model_choice.scheme == "crossfit"
    on = "out-of-fold predictions" if crossfit else "the validation period"
    lines += [f"## MQL policy (chosen on {on})", "", *_policy_lines(policy), ""]
    training = metadata.training
    trees = (
        f"- LightGBM trees: {training.best_iteration} (rounds chosen by "
        f"{metadata.model_choice.folds}-fold cross-fitting, then refitted on train + "
        "validation)."
        if crossfit
        else f"- LightGBM trees: {training.best_iteration} (early stopping on validation log loss)."
    )
    lines += [
        "## Training",
        "",
        f"- Registered model: {CANDIDATE_NAMES.get(metadata.model_choice.chosen, '?')} "
        f"({metadata.model_choice.kind} margin).",
        trees,
        f"- Calibration: {metadata.calibration_method} "
        f"(fitted on {'out-of-fold predictions' if crossfit else 'validation'}).",
        *(
            [f"- Calibration fallback: {metadata.calibration_fallback}."]
            if metadata.calibration_fallback
            else []
        ),
        *_calibration_lines(metadata),
        f"- Hyper-parameter trials: {training.tune_trials}.",
        *_monotone_lines(metadata),
        "",
        "## Caveats",
        "",
        *_caveats(metadata, by_region),
        "",
    ]
    return "\n".join(lines)


def _calibration_lines(metadata: BundleMetadata) -> list[str]:
    """How the calibration was chosen and how much evidence its blocks hold."""
    lines = []
    if metadata.calibration_cv_log_loss:
        scores = ", ".join(
            f"{name} {loss:.4f}" for name, loss in sorted(metadata.calibration_cv_log_loss.items())
        )
        lines.append(
            f"- Calibration candidates, cross-validated log loss: {scores} (the simplest "
            "within one standard error of the best is kept)."
        )
    if metadata.calibration_block_rows:
        rows = metadata.calibration_block_rows
        lines.append(
            f"- Evidence: {len(rows)} blocks of {min(rows):,} to {max(rows):,} rows "
            f"(at least {metadata.calibration_min_block_rows or min(rows):,}); no probability "
            "is more extreme than its block's evidence supports."
        )
    return lines


# --- issue 19: the points model and the planned switch (tournament) ------------------------

METRIC_WORDS = {"log_loss": "Log loss", "roc_auc": "ROC AUC", "brier": "Brier score"}


def points_rule_lines(margin: PointsMargin) -> list[str]:
    """The registered points model's rules, for the card of a model that is a points score.

    Its reasons are these rules when they fire (``runtime.points``), so the card lists
    them with what one point is worth.
    """
    origin = "the dataset config's points" if margin.source == "config" else "the default points"
    threshold = (
        f" The rules' own MQL threshold was {margin.threshold:g} points; the MQL policy "
        "below replaces it with one chosen on the calibrated probability."
        if margin.threshold is not None
        else ""
    )
    lines = [
        "## Points rules",
        "",
        f"The registered model is {origin}: hand-set rules, of which only the log-odds per "
        f"point ({margin.scale:.4g}) and the log-odds of a lead with no points "
        f"({margin.offset:.4g}) were fitted. A lead's reasons are the rules that gave it "
        f"points.{threshold}",
        "",
    ]
    lines += [f"- {rule.describe()}" for rule in margin.rules]
    return [*lines, ""]


def promotion_lines(result: PromotionResult) -> list[str]:
    """The planned switch's decision: both models on the challenger's test period."""
    kept = not result.promoted
    verdict = {
        "first": "became the first champion",
        "promoted": "replaced the champion",
        "forced": "replaced the champion (forced)",
        "rejected": "did not replace the champion",
        "already_champion": "is already the champion",
    }.get(result.decision, result.decision)
    challenger = f"v{result.challenger_version}" + (
        f" ({CANDIDATE_NAMES.get(result.challenger_model, result.challenger_model)})"
        if result.challenger_model
        else ""
    )
    champion = (
        f"v{result.champion_version}"
        + (
            f" ({CANDIDATE_NAMES.get(result.champion_model, result.champion_model)})"
            if result.champion_model
            else ""
        )
        if result.champion_version
        else "none"
    )
    lines = ["## Promotion", "", f"This model, {challenger}, {verdict}."]
    if result.scores and result.champion_version and result.decision != "already_champion":
        window = f", {result.window[0]} … {result.window[1]}" if result.window else ""
        lines += [
            "",
            f"Both were scored on this model's test period ({result.rows:,} snapshots"
            f"{window}); it must be better on every metric to replace the champion.",
            "",
            f"| Metric | This model {challenger} | Champion {champion} |",
            "|---|---:|---:|",
        ]
        for metric, pair in result.scores.items():
            lines.append(
                f"| {METRIC_WORDS.get(metric, metric)} | {_fmt(pair.get('challenger'), '{:.4f}')} "
                f"| {_fmt(pair.get('champion'), '{:.4f}')} |"
            )
    lines += ["", f"Decision: {result.decision}" + (f"; {result.reason}" if result.reason else "")]
    if result.warning:
        lines += ["", f"Warning: {result.warning}"]
    if kept and result.decision == "rejected":
        lines += ["", f"The champion {champion} stays in service."]
    return [*lines, ""]


def region_choice_lines(regions: list[RegionChoice]) -> list[str]:
    """Which model serves which region, and why (``training.choice.choose_by_region``)."""
    if not regions:
        return []
    from training.choice import MIN_REGION_CONVERSIONS

    lines = [
        "## Model by region",
        "",
        f"A region with at least {MIN_REGION_CONVERSIONS} conversions among the rows the "
        "choice was made on has the tournament re-run on its own rows (provisional "
        "threshold, to be replaced by the measured one of the data-sufficiency report); the "
        "others are served by the pooled model, which has the region as a feature.",
        "",
        "| Region | Rows | Conversions | Served by | Best on its own rows |",
        "|---|---:|---:|---|---|",
    ]
    for r in regions:
        own = (
            f"{CANDIDATE_NAMES.get(r.own_best, r.own_best)} "
            f"({r.scores[r.own_best].log_loss:.4f} log loss)"
            if r.own_best
            else "– (too few conversions: pooled)"
        )
        lines.append(
            f"| {r.region or '(no region)'} | {r.rows:,} | {r.conversions:,} | "
            f"{CANDIDATE_NAMES.get(r.serving, r.serving)} (pooled) | {own} |"
        )
    lines += ["", *(f"- {r.reason}." for r in regions)]
    return [*lines, ""]


# --- Data sufficiency (issue 19) ---------------------------------------------------------


def _sufficiency_lines(report: SufficiencyReport | None) -> list[str]:
    """Whether the training set was enough, overall and per region, and the rules used.

    Counted by lead (a lead that converted in any snapshot is one conversion), so the
    numbers compare with ``leadscore check --data`` and with the learning curves the
    rules come from (``docs/data-sufficiency.md``).
    """
    if report is None:
        return []
    lines = [
        "## Is the data enough?",
        "",
        "Converted leads in the training set against the conversions the learning curves "
        "show each use needs (`docs/data-sufficiency.md`); the rate's interval is Wilson 95%.",
        "",
        "| Scope | Group | Leads | Conversions | Span (days) | Conversion rate [95% CI] "
        "| Train | Calibrate | Threshold | Grade |",
        "|---|---|---:|---:|---:|---:|---|---|---|---|",
    ]
    for g in report.groups:
        span = "–" if math.isnan(g.span_days) else f"{g.span_days:.0f}"
        marks = " | ".join("yes" if v.enough else "**no**" for v in g.verdicts)
        lines.append(
            f"| {g.scope} | {g.group} | {g.leads:,} | {g.conversions:,} | {span} "
            f"| {g.rate:.1%} [{g.rate_low:.1%}, {g.rate_high:.1%}] | {marks} |"
        )
    lines.append("")
    lines += [
        f"- {purpose}: at least {report.minimum[purpose]} conversions ({RULES[purpose]})."
        for purpose in PURPOSES
    ]
    short = [g for g in report.groups if g.scope != "overall" and not g.verdict("train").enough]
    if short:
        names = ", ".join(f"{g.group} ({g.conversions})" for g in short)
        lines.append(
            f"- Below the training rule on their own: {names}; a model of their own would be "
            "measurably weaker than one fitted on all regions, and their metrics are noisy."
        )
    lines.append("")
    return lines


def training_sufficiency(frame: pd.DataFrame) -> SufficiencyReport | None:
    """The sufficiency report of a training set's frame, for ``render_card``.

    None when the frame has no ``lead_id``, ``as_of`` or ``label`` to count leads by.
    """
    if not {"lead_id", "as_of", "label"} <= set(frame.columns):
        return None
    return sufficiency_of_training_set(frame)


# --- Accounts (issue 18) ----------------------------------------------------------------

_ACCOUNT_METHOD_WORDS = {
    "account_model": "Account model (LightGBM on account features, calibrated)",
    "rollup": "Roll-up 1 − ∏(1 − pᵢ) of calibrated lead probabilities",
    "best_lead": "Best single lead's probability",
}


def _account_policy_lines(policy: Policy) -> list[str]:
    """The MQA rule in words (the lead card's ``_policy_lines`` speaks of leads and MQLs)."""
    if policy.rule == "capacity":
        rule = (
            f"capacity: the top {policy.target:.0%} of accounts with an open lead (all "
            "account snapshots dated in the validation period) become MQAs"
        )
    else:
        rule = f"minimum precision: MQAs must convert at least {policy.target:.0%} of the time"
    lines = [f"- Rule: {rule}.", f"- Global threshold: probability ≥ {policy.threshold:.4f}."]
    for region, value in sorted(policy.region_thresholds.items()):
        lines.append(f"- Region {region}: probability ≥ {value:.4f}.")
    return lines


def render_account_card(
    metrics: dict[str, dict[str, float]],
    chosen: str,
    counts: dict[str, dict[str, int]],
    unattached: int,
    mqa: Policy | None = None,
) -> str:
    """The account model's card: every account score compared on validation and test.

    Args:
        metrics: ``{method: {"valid_roc_auc": ..., "test_log_loss": ..., ...}}``
            (``training.accounts.AccountFit.metrics``).
        chosen: The method registered.
        counts: Account snapshots, accounts and positives per period.
        unattached: Leads with a missing or unknown ``account_id``.
        mqa: The account model's MQA policy, when it has one.
    """
    lines = [
        "# Account score card",
        "",
        "Probability that an account produces at least one conversion within the horizon "
        "after `as_of` (any of its leads, including people who arrive later).",
        "",
        f"Registered: **{chosen}** (lowest validation log loss of the account model and the "
        "roll-up; the test period only reports).",
        "",
        "| Score | Test ROC AUC | Test log loss | Test ECE | Valid ROC AUC | Valid log loss |",
        "|---|---|---|---|---|---|",
    ]
    for method, values in metrics.items():
        lines.append(
            f"| {_ACCOUNT_METHOD_WORDS.get(method, method)} "
            f"| {_fmt(values.get('test_roc_auc'), '{:.3f}')} "
            f"| {_fmt(values.get('test_log_loss'), '{:.4f}')} "
            f"| {_fmt(values.get('test_ece'), '{:.4f}')} "
            f"| {_fmt(values.get('valid_roc_auc'), '{:.3f}')} "
            f"| {_fmt(values.get('valid_log_loss'), '{:.4f}')} |"
        )
    lines += ["", "| Period | Account snapshots | Accounts | Positives |", "|---|---|---|---|"]
    for period, c in counts.items():
        lines.append(f"| {period} | {c['snapshots']:,} | {c['accounts']:,} | {c['positives']:,} |")
    if mqa is not None:
        model = metrics.get("account_model", {})
        lines += ["", "## MQA (marketing-qualified accounts)", ""]
        lines += _account_policy_lines(mqa)
        lines.append(
            f"On the test period {_fmt(model.get('test_mqa_share'), '{:.1%}')} of account "
            f"snapshots are MQAs, and {_fmt(model.get('test_mqa_precision'), '{:.1%}')} of "
            "them convert within the horizon. Grades A1–D4: fit letter from the "
            "firmographics' SHAP sum, engagement digit from the people's."
        )
    lines += [
        "",
        f"Leads without a known account (scored as leads only, never rolled up): {unattached:,}.",
    ]
    return "\n".join(lines) + "\n"

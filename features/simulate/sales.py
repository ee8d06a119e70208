"""The sales process behind the MQLs: reps accept or reject them, and the funnel follows.

Given the MQL episodes a scoring product handed to sales (``lead_id``, ``mql_at``),
:func:`simulate_sales` plays what the sales team does with each of them and writes the
dispositions a CRM export would contain, plus the latent quantities behind every draw
(``truth``), so tests can check funnel rates computed from the dispositions against what
the simulator counted. Parameters live in ``world`` (section "Sales process").

The process, per MQL episode (times in days; ``m`` is ``mql_at``):

Territories
    Each region has a few reps; an account always goes to the same rep of its region
    (a stable hash of the account id). Reps differ in speed (a lognormal factor).

Accept or reject
    The rep answers after a lognormal delay (median about a day, a tail past the 14-day
    SLA), times the rep's speed. Rejection reasons are competing hazards tried in a fixed
    order, each from the lead's state at ``m``: bots are spam; invalid emails cannot be
    reached (no contact); a lead that already bought is an existing customer (and,
    now and then, one whose company already bought through another lead); a few
    duplicates; low fit is a bad fit; low intent
    outside a buying episode is "not now" (no budget, more often at small firms, else
    bad timing); a few others. The lead is accepted when no hazard fires
    (``p_accept`` is the product of the complements). The rep does not know the future:
    a lead the ground truth says will win can be rejected (a missed good lead: it still
    converts in ``conversions``, but gets no won disposition).

After acceptance
    The accepted lead becomes an SQL with a probability rising with intent, fit and the
    buying episode (in one, or starting within a month). An accepted lead the ground truth
    says wins later (``won`` and ``latent_converted_at`` after ``m``) always goes SQL,
    opportunity, and won *at* ``latent_converted_at``, so the won dispositions are exactly
    the observed conversions of accepted MQLs. An SQL whose buying episode is decided as a
    loss after ``m`` (and starts before the SQL would stall) becomes an opportunity when
    the episode starts and is lost at ``decided_at``; other SQLs are lost after a stall.
    Delays scale with the company's decision scale (enterprise is slower), and
    qualification is quicker for a good fit; stages of a deal that closes are compressed
    to fit before its close. Accepted leads that never become SQLs are recycled to
    nurturing after a few weeks (no disposition).

Several MQLs of one lead
    An MQL that arrives while an earlier one of the same lead is still being worked
    (before its rejection, recycling or loss; ever after its win) is absorbed: it emits
    nothing. A lead rejected, recycled or lost earlier can be accepted on a later MQL,
    so a lead's dispositions can hold several episodes (``truth`` tells them apart).

Recording
    Reps record their own steps (accept, reject, SQL, opportunity, a stalled loss) in
    their region's working hours on weekdays; wins and losses of deals carry the ground
    truth's times. Nothing at or after ``data_end`` is emitted (a real export is
    censored too); ``truth`` keeps the uncensored times.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.catalogue import (
    REGIONS,
    REJECTION_REASONS,
    SALES_STAGES,
    SIZE_BANDS,
    SIZE_EDGES,
)
from features.simulate.arrays import _sigmoid, _text
from features.simulate.errors import SimulationInputError
from features.simulate.outcomes import oracle_probability
from features.simulate.world import (
    _ENGAGED_REJECT_FACTOR,
    _ENGAGED_WINDOW_DAYS,
    _FIT_SPEEDUP,
    _LOST_TEXT,
    _NO_BUDGET_SHARE,
    _NO_BUDGET_SHARE_LARGE,
    _OPPORTUNITY_DELAY,
    _REASON_TEXT_SHARE,
    _RECYCLE_DELAY,
    _REFERENCE_DECISION_SCALE,
    _REJECT_BAD_FIT,
    _REJECT_DUPLICATE,
    _REJECT_EXISTING_CUSTOMER,
    _REJECT_LOW_INTENT,
    _REJECT_NO_CONTACT,
    _REJECT_OTHER,
    _REJECT_SPAM_BOT,
    _REJECTION_TEXT,
    _REP_SPEED_SIGMA,
    _REPS_PER_REGION,
    _RESPONSE_MEDIAN_DAYS,
    _RESPONSE_SIGMA,
    _SLA_DAYS,
    _SQL_DELAY,
    _SQL_LOGIT,
    _STALL_DELAY,
    _STALLED_TEXT,
    _US_PER_DAY,
    _UTC_OFFSET_HOURS,
    _WORK_HOURS,
)

STAGES: tuple[str, ...] = SALES_STAGES
"""Disposition stages, in funnel order (the sort order of ties)."""
REASON_CODES: tuple[str, ...] = REJECTION_REASONS
"""Rejection reason codes (domain notes: the standard codes reps record)."""
DISPOSITION_COLUMNS: tuple[str, ...] = (
    "lead_id",
    "stage",
    "reason_code",
    "reason_text",
    "occurred_at",
    "recorded_by",
)

# Hazards in the order they are tried; "not_now" becomes no_budget or bad_timing.
_HAZARDS = ("spam", "no_contact", "existing_customer", "duplicate", "bad_fit", "not_now", "other")
_REQUIRED = {
    "leads": ("lead_id", "account_id", "region", "created_at"),
    "accounts": ("account_id", "employee_count"),
    "ground_truth": (
        "lead_id",
        "fit_score",
        "intent",
        "is_bot",
        "invalid_email",
        "episode_start_at",
        "decided_at",
        "won",
        "latent_converted_at",
        "decision_scale_days",
        "observed_until",
    ),
    "mqls": ("lead_id", "mql_at"),
}


@dataclass(frozen=True, eq=False)
class SalesProcess:
    """What sales did with the MQLs, and the latent draws behind it.

    Attributes:
        dispositions: One row per stage event (columns :data:`DISPOSITION_COLUMNS`):
            ``lead_id`` and ``stage`` (one of :data:`STAGES`), ``reason_code`` (one of
            :data:`REASON_CODES` for ``rejected``, else None), ``reason_text`` (a rep's
            note or None), ``occurred_at`` (datetime64[ns], tz-naive UTC, before
            ``data_end``) and ``recorded_by`` (``rep-NN``); sorted by
            ``(occurred_at, lead_id, stage order)``.
        truth: One row per MQL, in ``(mql_at, lead_id)`` order: ``mql_row`` (the row's
            position in the ``mqls`` argument), ``lead_id``, ``mql_at``, ``grade`` and
            ``score`` (as given, else missing), ``recorded_by``, the lead's state at the
            MQL (``fit_score``, ``intent``, ``in_episode``, ``engaged``,
            ``account_customer``, ``will_win``), ``p_accept``, ``absorbed`` (arrived while an
            earlier MQL of the lead was still worked: no events), ``reason_code``,
            ``reason_text``, ``response_days`` and ``late`` (past the SLA), ``p_sql``,
            and for each stage a bool (reached, ignoring censoring) and ``<stage>_at``
            (datetime64[ns], NaT when not reached; may lie after ``data_end``).
        data_end: Events at or after this time are censored.
    """

    dispositions: pd.DataFrame
    truth: pd.DataFrame
    data_end: pd.Timestamp

    def observed(self) -> pd.DataFrame:
        """Per MQL (``truth`` order): which stages a CRM export shows, i.e. before ``data_end``.

        Columns ``mql_row``, ``lead_id``, ``mql_at``, ``grade``, ``score``, ``absorbed``
        and one bool per stage: the counts a product should get from ``dispositions``.
        """
        t = self.truth
        seen = {stage: (t[f"{stage}_at"] < self.data_end).to_numpy() for stage in STAGES}
        keep = t[["mql_row", "lead_id", "mql_at", "grade", "score", "absorbed"]]
        return keep.assign(**seen)


# --- Inputs ----------------------------------------------------------------------------


def _check_columns(frames: dict[str, pd.DataFrame]) -> None:
    for name, frame in frames.items():
        missing = [c for c in _REQUIRED[name] if c not in frame.columns]
        if missing:
            raise SimulationInputError(f"{name}: missing column(s) {missing}")


def _naive_utc(values: pd.Series, what: str) -> pd.Series:
    """Timestamps as tz-naive UTC (tz-aware values are converted)."""
    try:
        out = pd.Series(pd.to_datetime(values.to_numpy()))
    except (ValueError, TypeError) as exc:
        raise SimulationInputError(f"{what}: not timestamps ({exc})") from exc
    if out.dt.tz is not None:
        out = out.dt.tz_convert("UTC").dt.tz_localize(None)
    return out.astype("datetime64[us]")


def _us(values: pd.Series) -> np.ndarray:
    """Microseconds since the epoch as int64; NaT becomes the int64 maximum (never)."""
    arr = values.to_numpy(dtype="datetime64[us]")
    out = arr.astype(np.int64)
    return np.where(np.isnat(arr), np.iinfo(np.int64).max, out)


def _sorted_mqls(mqls: pd.DataFrame) -> pd.DataFrame:
    """MQLs in ``(mql_at, lead_id)`` order with their input position as ``mql_row``."""
    frame = pd.DataFrame(
        {
            "mql_row": np.arange(len(mqls), dtype=np.int64),
            "lead_id": mqls["lead_id"].astype(str).to_numpy(),
            "mql_at": _naive_utc(mqls["mql_at"], "mqls.mql_at").to_numpy(),
            "grade": mqls["grade"].to_numpy(dtype=object) if "grade" in mqls else None,
            "score": mqls["score"].to_numpy(dtype=np.float64) if "score" in mqls else np.nan,
        }
    )
    if frame["mql_at"].isna().any():
        row = int(np.flatnonzero(frame["mql_at"].isna().to_numpy())[0])
        raise SimulationInputError(f"mqls row {row}: mql_at is missing")
    return frame.sort_values(["mql_at", "lead_id"], kind="stable").reset_index(drop=True)


def _data_end(ground_truth: pd.DataFrame, data_end: pd.Timestamp | str | None) -> pd.Timestamp:
    if data_end is None:
        end = _naive_utc(ground_truth["observed_until"], "ground_truth.observed_until").max()
    else:
        end = _naive_utc(pd.Series([pd.Timestamp(data_end)]), "data_end").iloc[0]
    if pd.isna(end):
        raise SimulationInputError("data_end is missing (pass it, or a ground truth with it)")
    return pd.Timestamp(end)


@dataclass(frozen=True)
class _State:
    """Per-MQL inputs: the lead's attributes and latent state, as arrays."""

    lead: np.ndarray  # code of the lead (index into the unique MQL leads)
    account: np.ndarray  # account id strings
    region: np.ndarray  # region codes
    size_band: np.ndarray
    student: np.ndarray
    fit: np.ndarray
    intent: np.ndarray
    bot: np.ndarray
    invalid: np.ndarray
    scale: np.ndarray  # decision scale in days
    m: np.ndarray  # mql_at, days since the origin
    episode_start: np.ndarray  # days; inf when none
    decided: np.ndarray
    won: np.ndarray
    converted_us: np.ndarray  # latent conversion, exact microseconds (int64 max: never)
    converted: np.ndarray  # the same in days
    decided_us: np.ndarray  # decision of the buying episode, exact microseconds
    account_customer_since: np.ndarray  # first conversion at the account, days


def _state(
    leads: pd.DataFrame,
    accounts: pd.DataFrame,
    ground_truth: pd.DataFrame,
    mql: pd.DataFrame,
    origin_us: int,
) -> _State:
    """Look each MQL's lead up in the tables; unknown ids and early MQLs are errors."""
    lead_index = pd.Index(leads["lead_id"].astype(str))
    pos = lead_index.get_indexer(pd.Index(mql["lead_id"]))
    if (pos < 0).any():
        unknown = sorted(set(mql["lead_id"][pos < 0]))[:5]
        raise SimulationInputError(f"mqls: lead_id not in leads: {unknown}")
    gt_index = pd.Index(ground_truth["lead_id"].astype(str))
    gt_pos = gt_index.get_indexer(pd.Index(mql["lead_id"]))
    if (gt_pos < 0).any():
        unknown = sorted(set(mql["lead_id"][gt_pos < 0]))[:5]
        raise SimulationInputError(f"mqls: lead_id not in ground_truth: {unknown}")
    created = _naive_utc(leads["created_at"], "leads.created_at").to_numpy()[pos]
    early = np.flatnonzero(mql["mql_at"].to_numpy() < created)
    if len(early):
        i = int(early[0])
        raise SimulationInputError(
            f"mqls row {int(mql['mql_row'][i])}: mql_at {mql['mql_at'][i]} is before lead "
            f"{mql['lead_id'][i]} was created ({pd.Timestamp(created[i])})"
        )
    region_name = leads["region"].astype(str).to_numpy()[pos]
    unknown_regions = sorted(set(region_name) - set(_REPS_PER_REGION))
    if unknown_regions:
        raise SimulationInputError(f"leads: region(s) without sales reps: {unknown_regions}")
    account = leads["account_id"].astype(str).to_numpy()[pos]
    acc_index = pd.Index(accounts["account_id"].astype(str))
    acc_pos = acc_index.get_indexer(pd.Index(account))
    if (acc_pos < 0).any():
        raise SimulationInputError(
            f"leads: account_id not in accounts: {sorted(set(account[acc_pos < 0]))[:5]}"
        )
    employees = accounts["employee_count"].to_numpy(dtype=np.float64)[acc_pos]
    seniority = (
        leads["seniority"].astype(str).to_numpy()[pos]
        if "seniority" in leads
        else np.full(len(pos), "")
    )

    never = np.iinfo(np.int64).max

    def exact(column: str) -> np.ndarray:
        return _us(_naive_utc(ground_truth[column], f"ground_truth.{column}"))

    def days(us: np.ndarray) -> np.ndarray:
        return np.where(us == never, np.inf, (us - origin_us) / _US_PER_DAY)

    won = ground_truth["won"].to_numpy(dtype=bool)
    converted_us = np.where(won, exact("latent_converted_at"), never)
    decided_us = exact("decided_at")[gt_pos]
    # The first conversion at each account, over every lead of the ground truth.
    lead_account = (
        leads.set_index(leads["lead_id"].astype(str))["account_id"].astype(str).reindex(gt_index)
    )
    first = pd.Series(converted_us).groupby(lead_account.to_numpy()).min()
    first_us = first.reindex(account).to_numpy(dtype=np.int64)
    m_us = _us(mql["mql_at"])
    return _State(
        lead=pd.factorize(mql["lead_id"])[0],
        account=account,
        region=np.array([REGIONS.index(r) for r in region_name], dtype=np.int64),
        size_band=np.searchsorted(np.asarray(SIZE_EDGES), employees, side="left"),
        student=seniority == "Student",
        fit=ground_truth["fit_score"].to_numpy(dtype=np.float64)[gt_pos],
        intent=ground_truth["intent"].to_numpy(dtype=np.float64)[gt_pos],
        bot=ground_truth["is_bot"].to_numpy(dtype=bool)[gt_pos],
        invalid=ground_truth["invalid_email"].to_numpy(dtype=bool)[gt_pos],
        scale=ground_truth["decision_scale_days"].to_numpy(dtype=np.float64)[gt_pos],
        m=(m_us - origin_us) / _US_PER_DAY,
        episode_start=days(exact("episode_start_at")[gt_pos]),
        decided=days(decided_us),
        won=won[gt_pos],
        converted_us=converted_us[gt_pos],
        converted=days(converted_us[gt_pos]),
        decided_us=decided_us,
        account_customer_since=days(first_us),
    )


# --- Reps ------------------------------------------------------------------------------


def _rep_ids() -> list[str]:
    """``rep-01``... numbered region by region in catalogue order."""
    total = sum(_REPS_PER_REGION[r] for r in REGIONS)
    return [f"rep-{i:02d}" for i in range(1, total + 1)]


def _assign_reps(account: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Rep index per MQL: the account's territory within its region (a stable hash)."""
    first = np.cumsum([0] + [_REPS_PER_REGION[r] for r in REGIONS])[:-1]
    count = np.array([_REPS_PER_REGION[r] for r in REGIONS])
    codes, uniques = pd.factorize(pd.Series(account))
    hashed = np.array([zlib.crc32(str(a).encode()) for a in uniques], dtype=np.int64)
    return np.asarray(first[region] + hashed[codes] % count[region], dtype=np.int64)


# --- The process -----------------------------------------------------------------------


def _gamma(
    rng: np.random.Generator, shape_scale: tuple[float, float], factor: np.ndarray
) -> np.ndarray:
    """Gamma delays whose scale grows with the company's decision scale."""
    shape, scale = shape_scale
    return np.asarray(rng.gamma(shape, scale, len(factor)) * factor, dtype=np.float64)


@dataclass(frozen=True)
class _Outcome:
    """Per-MQL decisions and uncensored stage times (days since the origin)."""

    rep: np.ndarray
    p_accept: np.ndarray
    accepted: np.ndarray
    reason: np.ndarray  # index into REASON_CODES, -1 when accepted
    reason_text: np.ndarray  # object, None when no note
    p_sql: np.ndarray
    times: dict[str, np.ndarray]  # stage -> days (inf when not reached)
    winning: np.ndarray  # accepted deals that close won (at the exact conversion time)
    losing: np.ndarray  # accepted deals that close lost (at the exact decision time)
    recycle: np.ndarray  # when an accepted lead that never became an SQL goes back to nurture
    in_episode: np.ndarray
    engaged: np.ndarray
    account_customer: np.ndarray
    will_win: np.ndarray
    lost_text: np.ndarray


def _reject_hazards(s: _State, engaged: np.ndarray, customer: np.ndarray) -> np.ndarray:
    """(n, hazards) probabilities, columns in ``_HAZARDS`` order."""
    n = len(s.m)
    not_now = _sigmoid(_REJECT_LOW_INTENT[0] + _REJECT_LOW_INTENT[1] * s.intent)
    return np.column_stack(
        [
            np.where(s.bot, _REJECT_SPAM_BOT, 0.0),
            np.where(s.invalid, _REJECT_NO_CONTACT[0], _REJECT_NO_CONTACT[1]),
            np.where(
                s.converted <= s.m,
                _REJECT_EXISTING_CUSTOMER[0],
                np.where(customer, _REJECT_EXISTING_CUSTOMER[1], 0.0),
            ),
            np.full(n, _REJECT_DUPLICATE),
            _sigmoid(_REJECT_BAD_FIT[0] + _REJECT_BAD_FIT[1] * s.fit),
            not_now * np.where(engaged, _ENGAGED_REJECT_FACTOR, 1.0),
            np.full(n, _REJECT_OTHER),
        ]
    )


def _pick(choices: tuple[str, ...], u: np.ndarray) -> np.ndarray:
    """One of ``choices`` per uniform draw in ``u``."""
    index = np.minimum((u * len(choices)).astype(np.int64), len(choices) - 1)
    return np.asarray(np.asarray(choices, dtype=object)[index], dtype=object)


def _only(keep: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` where ``keep``, else None (an object array)."""
    out = np.full(len(keep), None, dtype=object)
    out[keep] = np.asarray(values, dtype=object)[keep]
    return out


def _rejection_reasons(
    rng: np.random.Generator, s: _State, fired: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Reason code index (-1: accepted) and the rep's note for each MQL."""
    n = len(s.m)
    first = np.where(fired.any(axis=1), fired.argmax(axis=1), -1)
    hazard = np.asarray((*_HAZARDS, ""), dtype=object)[first]
    share = np.array([_NO_BUDGET_SHARE.get(b, _NO_BUDGET_SHARE_LARGE) for b in SIZE_BANDS])
    no_budget = rng.random(n) < share[s.size_band]
    code = np.where(hazard == "not_now", np.where(no_budget, "no_budget", "bad_timing"), hazard)
    reason = np.array([REASON_CODES.index(c) if c else -1 for c in code], dtype=np.int64)
    u_note, u_text = rng.random(n), rng.random(n)
    text = np.full(n, None, dtype=object)
    for k, name in enumerate(REASON_CODES):
        rows = reason == k
        text[rows] = _pick(_REJECTION_TEXT[name], u_text[rows])
    text = np.where(s.student & (code == "bad_fit"), "Student", text)
    text = np.where(
        (s.size_band == 0) & (code == "bad_fit") & ~s.student, "Company too small", text
    )
    keep = (reason >= 0) & ((u_note < _REASON_TEXT_SHARE) | (code == "other"))
    return reason, _only(keep, text)


def _process(rng: np.random.Generator, s: _State, n_reps: int) -> _Outcome:
    """Every draw for every MQL, in a fixed order, then the decisions they imply."""
    n = len(s.m)
    speed = np.exp(_REP_SPEED_SIGMA * rng.standard_normal(n_reps))
    rep = _assign_reps(s.account, s.region)
    in_episode = (s.episode_start <= s.m) & (s.m < s.decided)
    engaged = (s.episode_start <= s.m + _ENGAGED_WINDOW_DAYS) & (s.decided > s.m)
    customer = s.account_customer_since <= s.m
    hazards = _reject_hazards(s, engaged, customer)
    fired = rng.random(hazards.shape) < hazards
    p_accept = np.prod(1.0 - hazards, axis=1)
    accepted = np.asarray(~fired.any(axis=1), dtype=bool)
    reason, reason_text = _rejection_reasons(rng, s, fired)
    response = _RESPONSE_MEDIAN_DAYS * speed[rep] * np.exp(_RESPONSE_SIGMA * rng.standard_normal(n))

    factor = s.scale / _REFERENCE_DECISION_SCALE
    qualify = factor * np.exp(-_FIT_SPEEDUP * np.clip(s.fit, -3.0, 3.0))
    will_win = s.won & (s.converted > s.m)
    loss_ahead = ~s.won & np.isfinite(s.decided) & (s.decided > s.m)
    b0, b_intent, b_fit, b_engaged = _SQL_LOGIT
    p_sql = _sigmoid(b0 + b_intent * s.intent + b_fit * s.fit + b_engaged * engaged)
    p_sql = np.where(s.bot, 0.0, np.where(will_win, 1.0, p_sql))
    sql = accepted & (rng.random(n) < p_sql)
    decision_at = s.m + response
    sql_at = decision_at + _gamma(rng, _SQL_DELAY, qualify)
    stall_at = sql_at + _gamma(rng, _STALL_DELAY, factor)
    opportunity_delay = _gamma(rng, _OPPORTUNITY_DELAY, qualify)
    recycle_at = decision_at + _gamma(rng, _RECYCLE_DELAY, factor)
    lost_text_u, lost_note_u = rng.random(n), rng.random(n)

    winning = sql & will_win
    losing = sql & loss_ahead & (s.episode_start <= stall_at)
    deal = winning | losing
    close_at = np.where(winning, s.converted, np.where(losing, s.decided, np.inf))
    # A deal that closes fits its stages before the close (the rep worked it in time).
    accept_at = np.where(deal, np.minimum(decision_at, s.m + 0.25 * (close_at - s.m)), decision_at)
    sql_at = np.where(deal, np.minimum(sql_at, accept_at + 0.5 * (close_at - accept_at)), sql_at)
    opp_at = np.maximum(sql_at, s.episode_start) + opportunity_delay
    opp_at = np.where(deal, np.minimum(opp_at, sql_at + 0.8 * (close_at - sql_at)), np.inf)
    stalled = sql & ~deal
    inf = np.full(n, np.inf)
    times = {
        "accepted": np.where(accepted, accept_at, inf),
        "rejected": np.where(accepted, inf, decision_at),
        "sql": np.where(sql, sql_at, inf),
        "opportunity": opp_at,
        "won": np.where(winning, s.converted, inf),
        "lost": np.where(losing, s.decided, np.where(stalled, stall_at, inf)),
    }
    lost_choice = np.where(
        losing, _pick(_LOST_TEXT, lost_text_u), _pick(_STALLED_TEXT, lost_text_u)
    )
    lost_text = _only((losing | stalled) & (lost_note_u < _REASON_TEXT_SHARE), lost_choice)
    return _Outcome(
        rep=rep,
        p_accept=p_accept,
        accepted=accepted,
        reason=reason,
        reason_text=reason_text,
        p_sql=p_sql,
        times=times,
        winning=winning,
        losing=losing,
        recycle=recycle_at,
        in_episode=in_episode,
        engaged=engaged,
        account_customer=customer,
        will_win=will_win,
        lost_text=lost_text,
    )


def _close_us(out: _Outcome, us: dict[str, np.ndarray], origin_us: int) -> np.ndarray:
    """When each MQL stops being worked, from its recorded times (microseconds).

    Rejected: at the rejection; lost: at the loss; accepted but never an SQL: when it is
    recycled to nurture; won: never (a customer is not worked as a lead again).
    """
    never = np.iinfo(np.int64).max
    recycled = np.maximum(_stage_us(out.recycle, origin_us), us["accepted"])
    close = np.where(us["lost"] != never, us["lost"], recycled)
    close = np.where(us["rejected"] != never, us["rejected"], close)
    return np.where(out.winning, never, close)


def _absorbed(lead: np.ndarray, m: np.ndarray, close: np.ndarray) -> np.ndarray:
    """MQLs that arrive while an earlier MQL of the same lead is still being worked.

    ``m`` and ``close`` are int64 microseconds. Rows are in ``mql_at`` order, so a
    lead's k-th row is handled in round k; an absorbed row leaves the lead's open window
    as it was.
    """
    order = np.lexsort((np.arange(len(lead)), lead))
    sorted_lead = lead[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_lead)) + 1]
    counts = np.diff(np.r_[starts, len(lead)])
    rank = np.arange(len(lead)) - np.repeat(starts, counts)
    open_until = np.full(int(lead.max()) + 1 if len(lead) else 0, np.iinfo(np.int64).min)
    absorbed = np.zeros(len(lead), dtype=bool)
    for k in range(int(rank.max()) + 1 if len(rank) else 0):
        rows = order[rank == k]
        hit = m[rows] < open_until[lead[rows]]
        absorbed[rows] = hit
        kept = rows[~hit]
        open_until[lead[kept]] = close[kept]
    return absorbed


# --- Tables ----------------------------------------------------------------------------


def _stage_us(days: np.ndarray, origin_us: int) -> np.ndarray:
    """Days since the origin to int64 microseconds (int64 max where not reached)."""
    finite = np.isfinite(days)
    us = np.round(np.where(finite, days, 0.0) * _US_PER_DAY).astype(np.int64) + origin_us
    return np.where(finite, us, np.iinfo(np.int64).max)


def _working_hours(t_us: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Move times outside the rep's working hours into the next working day.

    Reps record in their region's local working hours, Monday to Friday
    (``_WORK_HOURS``); a time outside them moves to the next working day, spread over
    its hours by the time of day it had (no new draws). Unreached stages stay unreached.
    """
    never = np.iinfo(np.int64).max
    hour = _US_PER_DAY // 24
    offset = np.array([_UTC_OFFSET_HOURS[r] for r in REGIONS], dtype=np.int64)[region] * hour
    local = np.where(t_us == never, 0, t_us) + offset
    day = local // _US_PER_DAY
    time_of_day = local - day * _US_PER_DAY
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    open_at, close_at = _WORK_HOURS[0] * hour, _WORK_HOURS[1] * hour
    inside = (weekday < 5) & (time_of_day >= open_at) & (time_of_day < close_at)
    target = np.where((weekday < 5) & (time_of_day < open_at), day, day + 1)
    target_weekday = (target + 3) % 7
    target = target + np.where(target_weekday == 5, 2, np.where(target_weekday == 6, 1, 0))
    spread = open_at + (time_of_day / _US_PER_DAY * (close_at - open_at)).astype(np.int64)
    moved = target * _US_PER_DAY + spread - offset
    return np.where((t_us == never) | inside, t_us, moved)


def _exact_times(
    out: _Outcome, s: _State, m_us: np.ndarray, origin_us: int
) -> dict[str, np.ndarray]:
    """Recorded stage times in microseconds; deals close exactly at the ground truth's.

    The rep's own steps move into working hours (:func:`_working_hours`). Neither that
    nor rounding days to microseconds may reorder a lead's stages, put one before its
    MQL, or move a deal's stages past its close: a forward pass (never before the
    previous stage) and a backward pass (never after the close) make sure of it.
    """
    never = np.iinfo(np.int64).max
    us = {stage: _stage_us(out.times[stage], origin_us) for stage in STAGES}
    us["won"] = np.where(out.winning, s.converted_us, never)
    us["lost"] = np.where(out.losing, s.decided_us, us["lost"])
    reached = {stage: t != never for stage, t in us.items()}
    stalled = reached["lost"] & ~out.losing
    for stage in ("accepted", "rejected", "sql", "opportunity"):
        us[stage] = _working_hours(us[stage], s.region)
    us["lost"] = np.where(stalled, _working_hours(us["lost"], s.region), us["lost"])
    us["rejected"] = np.where(reached["rejected"], np.maximum(us["rejected"], m_us), never)
    floor = m_us
    for stage in ("accepted", "sql", "opportunity"):
        us[stage] = np.where(reached[stage], np.maximum(us[stage], floor), never)
        floor = np.where(reached[stage], us[stage], floor)
    us["lost"] = np.where(stalled, np.maximum(us["lost"], floor), us["lost"])
    close = np.where(out.winning, us["won"], np.where(out.losing, us["lost"], never))
    for stage in ("opportunity", "sql", "accepted"):
        us[stage] = np.where(reached[stage], np.minimum(us[stage], close), never)
        close = np.where(reached[stage], us[stage], close)
    return us


def _to_ns(us: np.ndarray) -> np.ndarray:
    never = us == np.iinfo(np.int64).max
    out = np.where(never, 0, us).astype("datetime64[us]")
    out[never] = np.datetime64("NaT")
    return out.astype("datetime64[ns]")


def _dispositions(
    mql: pd.DataFrame, out: _Outcome, us: dict[str, np.ndarray], end_us: int, reps: list[str]
) -> pd.DataFrame:
    """The events before the data end, as a CRM export lists them."""
    frames = []
    for order, stage in enumerate(STAGES):
        rows = np.flatnonzero(us[stage] < end_us)
        reason = (
            np.asarray(REASON_CODES, dtype=object)[out.reason[rows]]
            if stage == "rejected"
            else np.full(len(rows), None, dtype=object)
        )
        if stage == "rejected":
            text = out.reason_text[rows]
        elif stage == "lost":
            text = out.lost_text[rows]
        else:
            text = np.full(len(rows), None, dtype=object)
        frames.append(
            pd.DataFrame(
                {
                    "lead_id": mql["lead_id"].to_numpy()[rows],
                    "stage": stage,
                    "reason_code": pd.Series(reason, dtype=object),
                    "reason_text": pd.Series(text, dtype=object),
                    "occurred_at": _to_ns(us[stage][rows]),
                    "recorded_by": np.asarray(reps, dtype=object)[out.rep[rows]],
                    "_order": order,
                }
            )
        )
    table = pd.concat(frames, ignore_index=True)
    table = table.sort_values(["occurred_at", "lead_id", "_order"], kind="stable")
    table = table.drop(columns="_order").reset_index(drop=True)
    for column in ("lead_id", "stage", "recorded_by"):
        table[column] = _text(table[column].astype(str))
    for column in ("reason_code", "reason_text"):
        table[column] = table[column].astype(object).where(table[column].notna(), None)
    return table


def _truth(
    mql: pd.DataFrame,
    s: _State,
    out: _Outcome,
    us: dict[str, np.ndarray],
    absorbed: np.ndarray,
    reps: list[str],
) -> pd.DataFrame:
    never = np.iinfo(np.int64).max
    worked = ~absorbed
    reason = np.where(worked & (out.reason >= 0), out.reason, -1)
    codes = np.asarray((*REASON_CODES, None), dtype=object)[np.where(reason >= 0, reason, -1)]
    answered = np.minimum(us["accepted"], us["rejected"])
    response = np.where(worked, (answered - _us(mql["mql_at"])) / _US_PER_DAY, np.nan)
    table = pd.DataFrame(
        {
            "mql_row": mql["mql_row"].to_numpy(),
            "lead_id": _text(mql["lead_id"].astype(str)),
            "mql_at": mql["mql_at"].to_numpy(dtype="datetime64[ns]"),
            "grade": mql["grade"].to_numpy(dtype=object),
            "score": mql["score"].to_numpy(dtype=np.float64),
            "recorded_by": _text(pd.Series(np.asarray(reps, dtype=object)[out.rep]).astype(str)),
            "fit_score": s.fit,
            "intent": s.intent,
            "in_episode": out.in_episode,
            "engaged": out.engaged,
            "account_customer": out.account_customer,
            "will_win": out.will_win,
            "p_accept": out.p_accept,
            "absorbed": absorbed,
            "reason_code": pd.Series(codes, dtype=object),
            "reason_text": pd.Series(_only(worked, out.reason_text), dtype="object"),
            "response_days": response,
            "late": worked & (response > _SLA_DAYS),
            "p_sql": out.p_sql,
        }
    )
    for stage in STAGES:
        table[stage] = us[stage] != never
        table[f"{stage}_at"] = _to_ns(us[stage])
    return table


def simulate_sales(
    leads: pd.DataFrame,
    accounts: pd.DataFrame,
    ground_truth: pd.DataFrame,
    mqls: pd.DataFrame,
    seed: int = 0,
    data_end: pd.Timestamp | str | None = None,
) -> SalesProcess:
    """Play the sales team's handling of ``mqls``; the same inputs give identical tables.

    Args:
        leads: ``Simulation.leads`` (``lead_id``, ``account_id``, ``region``,
            ``created_at``; ``seniority`` refines the reps' notes when present).
        accounts: ``Simulation.accounts`` (``account_id``, ``employee_count``).
        ground_truth: ``Simulation.ground_truth``: the latent state the reps act on and
            the wins and losses their deals end in.
        mqls: One row per MQL episode handed to sales: ``lead_id``, ``mql_at``, and
            optionally ``grade`` and ``score`` (kept in ``truth``). Row order does not
            matter.
        seed: Seed of the random generator of the sales process (independent of the
            simulation's own seed).
        data_end: Events at or after it are censored; default the ground truth's
            ``observed_until``.

    Returns:
        The dispositions and the per-MQL truth (see :class:`SalesProcess`).

    Raises:
        SimulationInputError: A missing column, an unknown lead, region or account, a
            missing ``mql_at`` or an MQL before its lead was created.
    """
    _check_columns(
        {"leads": leads, "accounts": accounts, "ground_truth": ground_truth, "mqls": mqls}
    )
    end = _data_end(ground_truth, data_end)
    mql = _sorted_mqls(mqls)
    end_us = int(end.as_unit("us").value // 1000)
    # Days count from the first MQL: precise, and independent of where data_end censors.
    origin_us = int(_us(mql["mql_at"]).min()) if len(mql) else end_us
    s = _state(leads, accounts, ground_truth, mql, origin_us)
    reps = _rep_ids()
    rng = np.random.default_rng(seed)
    out = _process(rng, s, len(reps))
    m_us = _us(mql["mql_at"])
    us = _exact_times(out, s, m_us, origin_us)
    absorbed = _absorbed(s.lead, m_us, _close_us(out, us, origin_us))
    never = np.iinfo(np.int64).max
    us = {stage: np.where(absorbed, never, t) for stage, t in us.items()}
    return SalesProcess(
        dispositions=_dispositions(mql, out, us, end_us, reps),
        truth=_truth(mql, s, out, us, absorbed, reps),
        data_end=end,
    )


def oracle_mqls(
    ground_truth: pd.DataFrame,
    threshold: float = 0.25,
    freq: str = "7D",
    horizon_days: int = 90,
) -> pd.DataFrame:
    """MQL episodes as a perfect scorer run every ``freq`` would hand them to sales.

    A lead becomes an MQL at the first scoring time its oracle probability of converting
    within ``horizon_days`` (:func:`oracle_probability`) reaches ``threshold``, and again
    each time it comes back above it after falling below. Useful to drive
    :func:`simulate_sales` without training a model.

    Args:
        ground_truth: ``Simulation.ground_truth`` (needs ``created_at``).
        threshold: MQL threshold on the oracle probability.
        freq: Scoring cadence (a pandas frequency), from the first creation day.
        horizon_days: Horizon of the oracle probability.

    Returns:
        Columns ``lead_id``, ``mql_at`` (the scoring time) and ``score`` (the oracle
        probability then), sorted by ``(mql_at, lead_id)``.
    """
    created = _naive_utc(ground_truth["created_at"], "ground_truth.created_at")
    end = _data_end(ground_truth, None)
    grid = pd.date_range(created.min().ceil("D"), end, freq=freq, inclusive="left")
    ids = ground_truth["lead_id"].astype(str).to_numpy()
    above = np.zeros(len(ids), dtype=bool)
    rows = []
    for as_of in grid:
        alive = np.flatnonzero(created.to_numpy() <= as_of.to_datetime64())
        p = oracle_probability(
            ground_truth, pd.DataFrame({"lead_id": ids[alive], "as_of": as_of}), horizon_days
        )
        now = np.zeros(len(ids), dtype=bool)
        now[alive] = p >= threshold
        entered = now & ~above
        score = np.zeros(len(ids))
        score[alive] = p
        if entered.any():
            rows.append(
                pd.DataFrame({"lead_id": ids[entered], "mql_at": as_of, "score": score[entered]})
            )
        above = now
    if not rows:
        return pd.DataFrame(
            {
                "lead_id": pd.Series(dtype=str),
                "mql_at": pd.Series(dtype="datetime64[us]"),
                "score": pd.Series(dtype=np.float64),
            }
        )
    table = pd.concat(rows, ignore_index=True)
    table["mql_at"] = table["mql_at"].astype("datetime64[us]")
    table["lead_id"] = _text(table["lead_id"])
    return table.sort_values(["mql_at", "lead_id"], kind="stable").reset_index(drop=True)

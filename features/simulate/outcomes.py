"""The latent state of each lead, its conversion, and the oracle that knows it.

Fit and intent drive behaviour; the two-stage conversion (buying episode, then a won
or lost decision) drives the outcome. The sampler (:func:`_latent`) and the exact
probability (:func:`oracle_probability`) share one module and one set of parameters
because the oracle is only an honest upper bound while it mirrors the sampler exactly:
change one, change the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.catalogue import DEPARTMENTS, LEAD_SOURCES, REGIONS, SENIORITIES, SIZE_BANDS
from features.personas import DEFAULT_PERSONAS, persona_codes
from features.simulate.arrays import _lookup, _sigmoid, _strings, _to_datetime, _to_days
from features.simulate.population import _Leads
from features.simulate.timeline import _Calendar
from features.simulate.world import (
    _ACCOUNT_INTENT_SHARE,
    _BUYING_GROUP_WIN,
    _DECISION_SCALE_DAYS,
    _DECISION_SHAPE,
    _DEPT_FIT,
    _EPISODE_INTENT_SPEEDUP,
    _EPISODE_MEDIAN_DAYS,
    _EPISODE_SIGMA,
    _FIT_CENTER,
    _MIN,
    _REGION_FIT,
    _REGION_INTENT_COEF,
    _REGION_WIN,
    _SENIORITY_FIT,
    _SENIORITY_SIZE_FIT,
    _SIZE_FIT,
    _SOURCE_PROFILE,
    _TARGET_HUMAN_CONVERSION,
    _WIN_INTERCEPT,
)


@dataclass(frozen=True)
class _Latent:
    """Latent quantities that drive behaviour and outcomes (see the package docstring)."""

    fit: np.ndarray
    intent: np.ndarray
    p_episode: np.ndarray
    p_win: np.ndarray
    episode_median: np.ndarray
    decision_scale: np.ndarray
    episode_start: np.ndarray  # days since start; inf when no episode
    decided: np.ndarray  # days since start; inf when no episode
    won: np.ndarray
    active_until: np.ndarray  # activities stop here (a few weeks after a win)
    visibility: np.ndarray  # how much of the episode leaves a digital trace
    persona: np.ndarray  # index into DEFAULT_PERSONAS, -1 for none
    group_personas: np.ndarray  # distinct personas at the account when the lead arrived
    group_effect: np.ndarray  # win log-odds the buying group adds (centred)


# --- Latent state and outcome ----------------------------------------------------------


def _win_logit(
    fit: np.ndarray, intent: np.ndarray, senior_icp: np.ndarray, region: np.ndarray
) -> np.ndarray:
    """Log-odds of winning a buying episode.

    Fit, a senior-buyer-at-ICP-size x intent interaction, and regional offsets.
    """
    return (
        _WIN_INTERCEPT
        + 0.5 * fit
        + 0.1 * intent
        + 1.8 * senior_icp * np.clip(intent, 0.0, None)
        + _lookup(_REGION_WIN, REGIONS)[region]
    )


def _buying_group(ld: _Leads) -> tuple[np.ndarray, np.ndarray]:
    """Each lead's persona and how many distinct personas its account had when it arrived.

    Counted over the account's human leads created up to and including the lead (leads
    are sorted by creation), so the buying group a lead's win depends on is known at any
    ``as_of`` after its creation: the oracle's conditioning stays point-in-time.
    """
    persona = persona_codes(
        np.asarray(SENIORITIES, dtype=object)[ld.seniority],
        np.asarray(DEPARTMENTS, dtype=object)[ld.department],
        DEFAULT_PERSONAS,
    )
    n = len(persona)
    order = np.arange(n)
    counted = (persona >= 0) & ~ld.is_bot
    n_acc = int(ld.account.max()) + 1 if n else 0
    first = np.full((n_acc, len(DEFAULT_PERSONAS)), n, dtype=np.int64)
    np.minimum.at(first, (ld.account[counted], persona[counted]), order[counted])
    group = (first[ld.account] <= order[:, None]).sum(axis=1)
    return persona, group


def _calibrate_intercept(base: np.ndarray, win: np.ndarray, target: float) -> float:
    """Intercept of the episode logit giving mean ``p_episode * p_win == target``.

    Bisection on the realised population keeps the conversion rate on target whatever
    the sample's mix of personas; it is deterministic given the sample.
    """
    lo, hi = -12.0, 6.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if np.mean(_sigmoid(mid + base) * win) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _latent(
    rng: np.random.Generator,
    cal: _Calendar,
    ld: _Leads,
    calibrate: np.ndarray | None = None,
    target_conversion: float = _TARGET_HUMAN_CONVERSION,
    buying_groups: bool = False,
) -> _Latent:
    """Fit, intent, buying episode, decision and win; see the package docstring.

    ``buying_groups`` turns on the shared account intent and the buying-group win effect
    (off: the world of every seed is the one before buying groups existed).

    ``calibrate`` (a lead mask, default all) selects the leads the conversion intercept
    is calibrated on: a drift scenario leaves its drifted leads out, so drift moves the
    conversion rate instead of being calibrated away. ``target_conversion`` is the share
    of human leads that would convert given unlimited time (a preset lowers it).
    """
    n = len(ld.created)
    fit = (
        _lookup(_SENIORITY_FIT, SENIORITIES)[ld.seniority]
        + _lookup(_DEPT_FIT, DEPARTMENTS)[ld.department]
        + 0.6 * ld.icp_industry
        + 0.7 * ld.icp_size
        + _lookup(_REGION_FIT, REGIONS)[ld.region]
        + _SIZE_FIT[ld.size_band]
        + _SENIORITY_SIZE_FIT[ld.seniority, ld.size_band]
        - 0.4 * ld.free_email
        + 0.15 * rng.standard_normal(n)
    ) - _FIT_CENTER
    source_effect = np.array([_SOURCE_PROFILE[s][1] for s in LEAD_SOURCES])[ld.source]
    noise = rng.standard_normal(n)
    if buying_groups:
        # The private part of intent is partly shared by the account's leads (same
        # variance), from a child generator: spawning draws nothing from ``rng``, so every
        # other draw of a seed stays what it was without buying groups.
        group_rng = rng.spawn(1)[0]
        shared = group_rng.standard_normal(int(ld.account.max()) + 1 if n else 0)[ld.account]
        noise = np.sqrt(1.0 - _ACCOUNT_INTENT_SHARE) * noise
        noise += np.sqrt(_ACCOUNT_INTENT_SHARE) * shared
    intent = 0.6 * fit + 1.0 * source_effect + 0.4 * noise - 0.6 * ld.invalid_email
    senior_icp = np.isin(np.asarray(SENIORITIES)[ld.seniority], ["VP", "Director"])
    senior_icp = senior_icp & ld.icp_size
    human = ~ld.is_bot
    persona, group = _buying_group(ld)
    threads = _BUYING_GROUP_WIN * (np.clip(group, 1, 4) - 1).astype(np.float64)
    group_effect = threads - (threads[human].mean() if human.any() else 0.0)
    if not buying_groups:
        group_effect = np.zeros(n)
    # Warm introductions (referrals, partners) close more often for the same interest.
    logit = _win_logit(fit, intent, senior_icp, ld.region) + 2.5 * source_effect
    p_win = _sigmoid(logit + group_effect if buying_groups else logit)
    base = _lookup(_REGION_INTENT_COEF, REGIONS)[ld.region] * intent + 0.25 * fit
    on = human if calibrate is None else human & calibrate
    intercept = _calibrate_intercept(base[on], p_win[on], target_conversion)
    p_episode = np.where(human, _sigmoid(intercept + base), 0.0)
    p_win = np.where(human, p_win, 0.0)

    has_episode = rng.random(n) < p_episode
    won = (rng.random(n) < p_win) & has_episode
    median = _episode_median(intent)
    start = ld.created + median * np.exp(_EPISODE_SIGMA * rng.standard_normal(n))
    scale = _lookup(_DECISION_SCALE_DAYS, SIZE_BANDS)[ld.size_band]
    decided = start + rng.gamma(_DECISION_SHAPE, scale, n)
    start = np.where(has_episode, start, np.inf)
    decided = np.where(has_episode, decided, np.inf)
    handover = rng.gamma(2.0, 12.0, n)
    active_until = np.minimum(np.where(won, decided + handover, np.inf), cal.n_days)
    visibility = np.exp(0.2 * rng.standard_normal(n)) * np.where(rng.random(n) < 0.04, 0.3, 1.0)
    return _Latent(
        fit=fit,
        intent=intent,
        p_episode=p_episode,
        p_win=p_win,
        episode_median=median,
        decision_scale=scale,
        episode_start=start,
        decided=decided,
        won=won,
        active_until=active_until,
        visibility=visibility,
        persona=persona,
        group_personas=group,
        group_effect=group_effect,
    )


def _episode_median(intent: np.ndarray) -> np.ndarray:
    """Median days from creation to a buying episode: keener leads start sooner."""
    return np.clip(_EPISODE_MEDIAN_DAYS * np.exp(-_EPISODE_INTENT_SPEEDUP * intent), 7.0, 200.0)


def _in_episode(lat: _Latent, lead: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Whether each lead was in its buying episode at time ``t`` (state, not outcome)."""
    return (lat.episode_start[lead] <= t) & (t < lat.decided[lead])


def _after_loss(lat: _Latent, lead: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Whether each lead's buying episode had been lost by time ``t``."""
    return ~lat.won[lead] & (lat.decided[lead] <= t)


def _outcome_tables(
    cal: _Calendar,
    ld: _Leads,
    lat: _Latent,
    lead_ids: pd.Series,
    created_at: np.ndarray,
    buying_groups: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``conversions`` (wins decided before the data end) and ``ground_truth``.

    The ground truth also keeps the wins the data end censors (``latent_converted_at``)
    and every quantity :func:`oracle_probability` conditions on.
    """
    n_leads = len(lead_ids)
    converted = lat.won & (lat.decided < cal.n_days)
    idx = np.flatnonzero(converted)
    conversions = pd.DataFrame(
        {
            "lead_id": _strings(lead_ids.to_numpy(dtype=object), idx),
            "converted_at": _to_datetime(cal.start, lat.decided[idx]),
        }
    )
    latent_conversion = np.where(lat.won, lat.decided, np.inf)
    ground_truth = pd.DataFrame(
        {
            "lead_id": lead_ids,
            "created_at": created_at,
            "p_convert": lat.p_episode * lat.p_win,
            "p_episode": lat.p_episode,
            "p_win": lat.p_win,
            "fit_score": lat.fit,
            "intent": lat.intent,
            "is_bot": ld.is_bot,
            "invalid_email": ld.invalid_email,
            "episode_median_days": lat.episode_median,
            "decision_scale_days": lat.decision_scale,
            "episode_start_at": _to_datetime(cal.start, lat.episode_start),
            "decided_at": _to_datetime(cal.start, lat.decided),
            "won": lat.won,
            "latent_converted_at": _to_datetime(cal.start, latent_conversion),
            "observed_until": _to_datetime(cal.start, np.full(n_leads, cal.n_days)),
        }
    )
    if buying_groups:
        ground_truth["persona"] = _strings([p.name for p in DEFAULT_PERSONAS], lat.persona)
        ground_truth["buying_group_personas"] = lat.group_personas
        ground_truth["buying_group_effect"] = lat.group_effect
    return conversions, ground_truth


# --- Oracle ----------------------------------------------------------------------------


def _decision_cdf(x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """CDF of the episode-to-decision delay, Erlang(3, ``scale`` days)."""
    z = np.maximum(x, 0.0) / scale
    return np.where(x > 0, 1.0 - np.exp(-z) * (1.0 + z + 0.5 * z * z), 0.0)


def _norm_cdf(z: np.ndarray) -> np.ndarray:
    """Standard normal CDF via a Chebyshev erfc fit (relative error below 1.2e-7).

    numpy has no ``erf`` and the project does not depend on scipy directly.
    """
    x = np.abs(z) / np.sqrt(2.0)
    t = 1.0 / (1.0 + 0.5 * x)
    poly = -1.26551223 + t * (
        1.00002368
        + t
        * (
            0.37409196
            + t
            * (
                0.09678418
                + t
                * (
                    -0.18628806
                    + t
                    * (
                        0.27886807
                        + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))
                    )
                )
            )
        )
    )
    erfc = t * np.exp(-x * x + poly)
    return np.where(z >= 0, 1.0 - 0.5 * erfc, 0.5 * erfc)


def _start_cdf(x: np.ndarray, median: np.ndarray) -> np.ndarray:
    """CDF of the creation-to-episode delay (lognormal)."""
    safe = np.maximum(x, 1e-12)
    return np.where(x > 0, _norm_cdf(np.log(safe / median) / _EPISODE_SIGMA), 0.0)


def _not_started_probability(
    age: np.ndarray,
    until: np.ndarray,
    median: np.ndarray,
    scale: np.ndarray,
    p_episode: np.ndarray,
    p_win: np.ndarray,
    nodes: int = 32,
) -> np.ndarray:
    """P(episode starts and is won within ``(age, until]`` | no episode by ``age``).

    The numerator ``p_episode * p_win * integral f_S(s) G(until - s) ds`` is integrated
    over ``log s`` (Gauss-Legendre), where the lognormal density is a smooth Gaussian.
    Mass below one minute of lead age is negligible and skipped.
    """
    x, w = np.polynomial.legendre.leggauss(nodes)
    lo = np.log(np.maximum(age, _MIN))
    hi = np.log(np.maximum(until, _MIN))
    half = 0.5 * (hi - lo)
    log_s = (lo + half)[:, None] + half[:, None] * x[None, :]
    z = (log_s - np.log(median)[:, None]) / _EPISODE_SIGMA
    density = np.exp(-0.5 * z * z) / (_EPISODE_SIGMA * np.sqrt(2.0 * np.pi))
    integrand = density * _decision_cdf(until[:, None] - np.exp(log_s), scale[:, None])
    integral = half * (integrand @ w)
    f_lo = _start_cdf(age, median)
    return p_episode * p_win * integral / np.maximum(1.0 - p_episode * f_lo, 1e-12)


def oracle_probability(
    ground_truth: pd.DataFrame,
    snapshots: pd.DataFrame,
    horizon_days: int = 90,
    leads: pd.DataFrame | None = None,
) -> np.ndarray:
    """Probability that a lead converts in ``(as_of, as_of + horizon]``, given none yet.

    This is the probability under the simulator's own generative model. It conditions
    on the lead's latent state at ``as_of`` and nothing later: fit, intent and the two
    stage probabilities, whether its buying episode had started by ``as_of`` (and
    when), and whether that episode had already been decided (lost). It
    never uses a draw that lies after ``as_of`` (the future episode start, the decision
    delay or the win), so it is the best prediction possible from all information
    available at ``as_of``. The window is truncated at the data end
    (``observed_until``) because later conversions are not in the data. Bots, leads
    already converted by ``as_of`` and leads already lost get 0.

    With ``S`` the episode start, ``G`` the decision-delay CDF, ``F_S`` the start CDF,
    ``t = as_of - created_at`` and ``T`` the truncated window end (both in lead age):

    * episode started, undecided: ``p_win * (G(T - S) - G(t - S)) / (1 - G(t - S))``;
    * not started: ``p_episode * p_win * int_t^T f_S(s) G(T - s) ds / (1 - p_episode F_S(t))``.

    Args:
        ground_truth: ``Simulation.ground_truth`` (or the same columns read from disk).
        snapshots: Columns ``lead_id`` and ``as_of``.
        horizon_days: Length of the label window in days.
        leads: Optional leads table; its ``created_at`` is used when ``ground_truth``
            lacks that column.

    Returns:
        Float64 array aligned with ``snapshots``, values in ``[0, 1]``.
    """
    gt_ids = pd.Index(ground_truth["lead_id"].astype(str))
    pos = gt_ids.get_indexer(snapshots["lead_id"].astype(str))
    if (pos < 0).any():
        missing = snapshots["lead_id"].to_numpy()[pos < 0][:5]
        raise KeyError(f"lead_id not in ground_truth: {list(missing)}")
    if "created_at" in ground_truth:
        created_col = ground_truth["created_at"]
    elif leads is not None:
        created_col = leads.set_index("lead_id")["created_at"].reindex(gt_ids)
    else:
        raise ValueError("created_at is needed: pass leads or a ground_truth that has it")
    origin = np.datetime64("2000-01-01", "us")

    def col(values: pd.Series) -> np.ndarray:
        return _to_days(values, origin)[pos]

    created = col(created_col)
    as_of = _to_days(snapshots["as_of"], origin)
    start = col(ground_truth["episode_start_at"])
    decided = col(ground_truth["decided_at"])
    converted = col(ground_truth["latent_converted_at"])
    until = np.minimum(as_of + horizon_days, col(ground_truth["observed_until"]))
    p_episode = ground_truth["p_episode"].to_numpy(dtype=np.float64)[pos]
    p_win = ground_truth["p_win"].to_numpy(dtype=np.float64)[pos]
    median = ground_truth["episode_median_days"].to_numpy(dtype=np.float64)[pos]
    scale = ground_truth["decision_scale_days"].to_numpy(dtype=np.float64)[pos]
    bot = ground_truth["is_bot"].to_numpy(dtype=bool)[pos]

    out = np.zeros(len(pos), dtype=np.float64)
    alive = ~bot & (converted > as_of) & (decided > as_of) & (until > as_of)
    started = alive & (start <= as_of)
    if started.any():
        done = _decision_cdf(as_of[started] - start[started], scale[started])
        later = _decision_cdf(until[started] - start[started], scale[started])
        out[started] = p_win[started] * (later - done) / np.maximum(1.0 - done, 1e-12)
    waiting = np.flatnonzero(alive & ~started)
    for chunk in np.array_split(waiting, max(1, len(waiting) // 200_000 + 1)):
        if len(chunk):
            out[chunk] = _not_started_probability(
                as_of[chunk] - created[chunk],
                until[chunk] - created[chunk],
                median[chunk],
                scale[chunk],
                p_episode[chunk],
                p_win[chunk],
            )
    return np.clip(out, 0.0, 1.0)

"""Web behaviour: human sessions, researchers, buying episodes and bots.

Every rate is drawn from the lead's latent state at the time of the event (intent,
whether an episode is under way or was lost), never from its future outcome; that is
what keeps the oracle an upper bound.
"""

from __future__ import annotations

import numpy as np

from features.catalogue import REGIONS
from features.simulate.arrays import _draw, _draw_rows, _lookup, _ragged, _sigmoid
from features.simulate.events import (
    _T,
    _const_process,
    _decay_process,
    _Details,
    _Events,
    _expand_sessions,
    _thin,
)
from features.simulate.outcomes import _after_loss, _Latent
from features.simulate.population import _Leads, _researcher
from features.simulate.timeline import _Calendar
from features.simulate.world import _REGION_WEB, _SEC


def _web_types(
    rng: np.random.Generator, probs: np.ndarray, details: _Details
) -> tuple[np.ndarray, np.ndarray]:
    """Draw activity types and details for web events.

    ``probs`` has one row per event over (page_view, pricing, demo page, content
    download, form submit).
    """
    choice = _draw_rows(rng, probs)
    kinds = np.array(
        [
            _T["page_view"],
            _T["pricing_page_view"],
            _T["demo_page_view"],
            _T["content_download"],
            _T["form_submit"],
        ],
        dtype=np.int8,
    )[choice]
    n = len(choice)
    page_w = 1.0 / np.arange(1, details.pages + 1) ** 0.9
    page = _draw(rng, page_w, n)
    asset = rng.integers(0, details.assets, n) + details.pages
    form = np.where(
        rng.random(n) < 0.7, details.code("/contact-sales"), details.code("/newsletter-signup")
    )
    detail = np.select(
        [choice == 0, choice == 1, choice == 2, choice == 3],
        [page, details.code("/pricing"), details.code("/demo"), asset],
        form,
    ).astype(np.int32)
    detail = np.where(rng.random(n) < 0.03, -1, detail)  # tracking gaps
    return kinds, detail


def _web_activity(
    rng: np.random.Generator,
    cal: _Calendar,
    ld: _Leads,
    lat: _Latent,
    details: _Details,
    out: _Events,
) -> None:
    """Human web sessions: creation burst, decaying baseline, research bursts, episode."""
    human = np.flatnonzero(~ld.is_bot)
    c, end = ld.created[human], lat.active_until[human]
    intent = lat.intent[human]
    k = cal.peak
    personal = np.exp(
        0.2 * rng.standard_normal(len(human)) + _lookup(_REGION_WEB, REGIONS)[ld.region[human]]
    )
    researcher = _researcher(ld)[human]
    rate = 0.03 * np.exp(1.0 * intent) * personal * np.where(researcher, 2.5, 1.0)
    parts = [
        _decay_process(rng, human, c, end, k * 1.6 * np.exp(0.8 * intent), 3.0),
        _const_process(rng, human, c, end, k * 0.15 * rate),
        _decay_process(rng, human, c, end, k * 0.8 * rate * 60.0, 60.0),
    ]
    burst_lead, burst_t = _const_process(rng, human, c, end, 0.006 * np.exp(0.6 * intent))
    per_burst = rng.poisson(4.0 * k, len(burst_t))
    who, _ = _ragged(per_burst)
    parts.append((burst_lead[who], burst_t[who] + rng.exponential(1.5, len(who))))
    lead = np.concatenate([p[0] for p in parts])
    t = np.concatenate([p[1] for p in parts])
    lead, t = _thin(rng, cal, lead, t, ld.region)
    # After a lost deal the lead disengages: 15 % of the baseline rate.
    keep = ~_after_loss(lat, lead, t) | (rng.random(len(t)) < 0.05)
    lead, t = _expand_sessions(rng, lead[keep], t[keep], p_more=0.4, gap_minutes=3.0)
    sig = _sigmoid(2.0 * lat.intent[lead] - 1.5)
    probs = np.column_stack(
        [
            np.ones(len(lead)),
            0.02 + 0.08 * sig,
            0.01 + 0.03 * sig,
            np.where(_researcher(ld)[lead], 0.15, 0.05),
            0.003 + 0.007 * sig,
        ]
    )
    probs[:, 0] = 1.0 - probs[:, 1:].sum(axis=1)
    kinds, detail = _web_types(rng, probs, details)
    out.add(lead, t, kinds, detail)
    # Researchers kick the tyres: free trials and a look at the demo page, no purchase.
    res = np.flatnonzero(_researcher(ld) & ~ld.is_bot)
    when = ld.created[res] + rng.exponential(12.0, len(res))
    trial = rng.random(len(res)) < 0.4
    out.add(res[trial], when[trial], _T["trial_signup"], details.code("/trial-signup"))
    look = rng.random(len(res)) < 0.5
    out.add(
        res[look],
        when[look] - rng.exponential(0.05, len(res))[look],
        _T["demo_page_view"],
        details.code("/demo"),
    )
    _episode_activity(rng, cal, ld, lat, details, out)


def _episode_activity(
    rng: np.random.Generator,
    cal: _Calendar,
    ld: _Leads,
    lat: _Latent,
    details: _Details,
    out: _Events,
) -> None:
    """Buying behaviour between episode start and decision (never depends on the outcome)."""
    ep = np.flatnonzero(np.isfinite(lat.episode_start))
    lo = lat.episode_start[ep]
    hi = np.minimum(lat.decided[ep], lat.active_until[ep])
    strength = np.exp(0.3 * lat.intent[ep]) * lat.visibility[ep]
    lead, t = _const_process(rng, ep, lo, hi, cal.peak * 0.8 * strength)
    # The start of an episode is a distinctive burst: several sessions in a few days.
    kick_lead, kick_t = _decay_process(rng, ep, lo, hi, cal.peak * 4.0 * lat.visibility[ep], 2.0)
    lead, t = np.concatenate([kick_lead, lead]), np.concatenate([kick_t, t])
    lead, t = _thin(rng, cal, lead, t, ld.region)
    lead, t = _expand_sessions(rng, lead, t, p_more=0.6, gap_minutes=2.5)
    n = len(lead)
    probs = np.tile([0.52, 0.25, 0.12, 0.07, 0.04], (n, 1))
    kinds, detail = _web_types(rng, probs, details)
    out.add(lead, t, kinds, detail)

    seen = np.minimum(lat.visibility[ep] * 1.5, 1.0)
    for kind, prob, delay, code in (
        ("demo_request", 0.7, 2.0, "/demo-request"),
        ("demo_request", 0.15, 10.0, "/demo-request"),
        ("trial_signup", 0.40, 4.0, "/trial-signup"),
        ("form_submit", 0.50, 1.5, "/contact-sales"),
    ):
        hit = rng.random(len(ep)) < prob * seen
        when = lo + rng.exponential(delay, len(ep))
        ok = hit & (when < hi)
        out.add(ep[ok], when[ok], _T[kind], details.code(code))


def _bot_activity(
    rng: np.random.Generator, cal: _Calendar, ld: _Leads, details: _Details, out: _Events
) -> None:
    """Bots: round-the-clock bursts of many page and pricing views seconds apart."""
    bots = np.flatnonzero(ld.is_bot)
    if len(bots) == 0:
        return
    c = ld.created[bots]
    rate = 6.0 * np.exp(0.5 * rng.standard_normal(len(bots))) / 365.0
    lead, t = _const_process(rng, bots, c, np.full(len(bots), cal.n_days), rate)
    lead = np.concatenate([bots, lead])  # a first burst right after the form fill
    t = np.concatenate([c + rng.exponential(0.2, len(bots)), t])
    size = 5 + rng.poisson(25.0 * np.exp(0.4 * rng.standard_normal(len(t))))
    who, pos = _ragged(size)
    gaps = np.where(pos > 0, rng.exponential(6.0 * _SEC, len(who)), 0.0)
    csum = np.cumsum(gaps)
    first = np.cumsum(size) - size
    lead, t = lead[who], t[who] + csum - csum[first][who]
    probs = np.tile([0.72, 0.18, 0.08, 0.0, 0.02], (len(lead), 1))
    kinds, detail = _web_types(rng, probs, details)
    detail = np.where(
        kinds == _T["page_view"], rng.integers(0, details.pages, len(lead)), detail
    ).astype(np.int32)
    out.add(lead, t, kinds, detail)

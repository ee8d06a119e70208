"""Marketing calendar and the engagement it draws: emails and webinars.

Campaigns and webinars are scheduled once per simulation; each lead receives those
sent during its life and responds according to its latent state at send time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.catalogue import LEAD_SOURCES, REGIONS
from features.simulate.arrays import _lookup, _ragged, _sigmoid
from features.simulate.events import _T, _Details, _Events
from features.simulate.outcomes import _after_loss, _in_episode, _Latent
from features.simulate.population import _Leads, _researcher
from features.simulate.timeline import _Calendar
from features.simulate.world import (
    _MIN,
    _PROMO_TOPICS,
    _REGION_EMAIL,
    _SEC,
    _UTC_OFFSET_HOURS,
    _WEBINAR_TOPICS,
)

# --- Calendars -------------------------------------------------------------------------


def _campaigns(
    rng: np.random.Generator, cal: _Calendar
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Email calendar: weekly newsletter, monthly product update, promotions.

    Returns send times (days, sorted), target region (-1 = all) and names.
    """
    days = pd.date_range(cal.start.normalize(), periods=int(np.ceil(cal.n_days)) + 1, freq="D")
    offs = np.arange(len(days)) - cal.start_frac
    quiet = ((days.month == 12) & (days.day >= 20)) | ((days.month == 1) & (days.day <= 3))
    week = np.asarray(days.isocalendar().week, dtype=np.int64)
    news = (days.day_of_week == 1) & ~quiet & ~((days.month == 8) & (week % 2 == 1))
    update = (days.day_of_week == 3) & (days.day <= 7) & ~quiet
    promo_day = (days.day_of_week < 5) & ~quiet & (rng.random(len(days)) < 2.0 / 21.0)
    times, regions, names = [], [], []
    for mask, hour, kind in ((news, 14.0, "newsletter"), (update, 15.0, "product-update")):
        idx = np.flatnonzero(mask)
        times.append(offs[idx] + hour / 24.0)
        regions.append(np.full(len(idx), -1))
        names += [f"{kind}-{d:%Y-%m-%d}" for d in days[idx]]
    idx = np.flatnonzero(promo_day)
    target = np.where(rng.random(len(idx)) < 0.4, rng.integers(0, len(REGIONS), len(idx)), -1)
    hours = np.where(
        target < 0, 13.0, (9 - np.asarray([_UTC_OFFSET_HOURS[r] for r in REGIONS]))[target] % 24
    )
    topics = rng.integers(0, len(_PROMO_TOPICS), len(idx))
    times.append(offs[idx] + hours / 24.0)
    regions.append(target)
    names += [
        f"promo-{_PROMO_TOPICS[k]}-{d:%Y-%m-%d}" for k, d in zip(topics, days[idx], strict=True)
    ]
    t = np.concatenate(times)
    reg = np.concatenate(regions)
    order = np.argsort(t, kind="stable")
    names_arr = np.asarray(names, dtype=object)[order]
    keep = (t[order] > 0) & (t[order] < cal.n_days)
    return t[order][keep], reg[order][keep], list(names_arr[keep])


def _webinars(cal: _Calendar) -> tuple[np.ndarray, list[str]]:
    """Webinar calendar: 2nd and 4th Wednesday at 16:00 UTC, none in August or late Dec."""
    days = pd.date_range(cal.start.normalize(), periods=int(np.ceil(cal.n_days)) + 1, freq="D")
    nth = (days.day - 1) // 7
    mask = (
        (days.day_of_week == 2)
        & np.isin(nth, [1, 3])
        & (days.month != 8)
        & ~((days.month == 12) & (days.day >= 20))
    )
    idx = np.flatnonzero(mask)
    t = np.arange(len(days))[idx] - cal.start_frac + 16.0 / 24.0
    names = [
        f"webinar-{d:%Y-%m-%d}-{_WEBINAR_TOPICS[i % len(_WEBINAR_TOPICS)]}"
        for i, d in enumerate(days[idx])
    ]
    keep = (t > 0) & (t < cal.n_days)
    return t[keep], [n for n, k in zip(names, keep, strict=True) if k]


# --- Engagement ------------------------------------------------------------------------


def _email_activity(
    rng: np.random.Generator,
    ld: _Leads,
    lat: _Latent,
    send: np.ndarray,
    target: np.ndarray,
    first_code: int,
    details: _Details,
    out: _Events,
) -> None:
    """Emit opens, clicks, bounces and unsubscribes for every campaign a lead receives."""
    n = len(ld.created)
    lo = np.searchsorted(send, ld.created, side="right")
    hi = np.searchsorted(send, lat.active_until, side="left")
    owner, pos = _ragged(np.maximum(hi - lo, 0))
    camp = lo[owner] + pos
    keep = (target[camp] < 0) | (target[camp] == ld.region[owner])
    owner, camp = owner[keep], camp[keep]
    per_lead = np.bincount(owner, minlength=n)
    rank = np.arange(len(owner)) - (np.cumsum(per_lead) - per_lead)[owner]

    bounce = np.where(ld.invalid_email, 0, rng.geometric(0.0015, n) - 1)
    unsub_rate = np.where(ld.is_bot, 1e-9, 0.003 * np.exp(-0.4 * lat.intent))
    unsub = rng.geometric(np.clip(unsub_rate, 1e-9, 1.0), n) - 1
    stop = np.minimum(bounce, unsub)
    # Link scanners: most bots, and the security gateways of many larger companies,
    # which "open" and "click" every email within a minute of delivery.
    u_scan = rng.random(n)
    scanner = (ld.is_bot & (u_scan < 0.6)) | (~ld.free_email & (ld.size_band >= 3) & (u_scan < 0.1))
    personal = 0.8 * rng.standard_normal(n) + _lookup(_REGION_EMAIL, REGIONS)[ld.region]

    # The end of the list: a hard bounce, or an unsubscribe after opening that email.
    at_stop = np.flatnonzero(rank == stop[owner])
    who, t_stop_send = owner[at_stop], send[camp[at_stop]]
    bounced = bounce[who] <= unsub[who]
    left = ~bounced & ~ld.is_bot[who]
    t_left_open = t_stop_send + _open_delay(rng, len(who))
    t_left = t_left_open + rng.uniform(1, 5, len(who)) * _MIN
    t_stop = np.full(n, np.inf)
    t_stop[who[bounced]] = t_stop_send[bounced] + _MIN
    t_stop[who[left]] = t_left[left]

    # Opens and clicks of the emails received before that (never after the stop time).
    idx = np.flatnonzero((rank < stop[owner]) & ~ld.is_bot[owner])
    o, t_send = owner[idx], send[camp[idx]]
    episode = _in_episode(lat, o, t_send)
    p_open = _sigmoid(-1.7 + 0.8 * lat.intent[o] + personal[o] + 1.0 * episode)
    p_open *= np.exp(-(t_send - ld.created[o]) / 400.0)
    p_open *= np.where(_after_loss(lat, o, t_send), 0.1, 1.0)
    hit = np.flatnonzero(rng.random(len(o)) < p_open)
    o, t_send, episode, code = o[hit], t_send[hit], episode[hit], first_code + camp[idx[hit]]
    t_open = t_send + _open_delay(rng, len(o))
    p_click = _sigmoid(-1.7 + 0.4 * lat.intent[o] + 0.9 * episode)
    t_click = t_open + rng.exponential(2.0 * _MIN, len(o))
    opened = t_open < t_stop[o]
    clicked = opened & (rng.random(len(o)) < p_click) & (t_click < t_stop[o])
    out.add(o[opened], t_open[opened], _T["email_open"], code[opened])
    out.add(o[clicked], t_click[clicked], _T["email_click"], code[clicked])
    landing = rng.integers(0, details.pages, int(clicked.sum())).astype(np.int32)
    out.add(o[clicked], t_click[clicked] + 20 * _SEC, _T["page_view"], landing)

    # Link scanners "open" and "click" every email within a minute.
    idx = np.flatnonzero((rank < stop[owner]) & scanner[owner])
    t_scan = send[camp[idx]] + rng.uniform(15, 60, len(idx)) * _SEC
    out.add(owner[idx], t_scan, _T["email_open"], first_code + camp[idx])
    out.add(owner[idx], t_scan + 5 * _SEC, _T["email_click"], first_code + camp[idx])

    stop_code = first_code + camp[at_stop]
    out.add(who[bounced], t_stop_send[bounced] + _MIN, _T["email_bounce"], stop_code[bounced])
    out.add(who[left], t_left_open[left], _T["email_open"], stop_code[left])
    out.add(who[left], t_left[left], _T["unsubscribe"], stop_code[left])


def _open_delay(rng: np.random.Generator, n: int) -> np.ndarray:
    """Days from send to open: lognormal, median three hours, a tail of days."""
    return np.exp(np.log(3.0 / 24.0) + 1.2 * rng.standard_normal(n))


def _webinar_activity(
    rng: np.random.Generator,
    ld: _Leads,
    lat: _Latent,
    when: np.ndarray,
    first_code: int,
    out: _Events,
) -> None:
    """Registrations days before a webinar (more likely in an episode), some attend."""
    if len(when) == 0:
        return
    lo = np.searchsorted(when, ld.created + 2.0, side="right")
    hi = np.searchsorted(when, lat.active_until, side="left")
    owner, pos = _ragged(np.maximum(hi - lo, 0))
    web = lo[owner] + pos
    human = ~ld.is_bot[owner]
    owner, web = owner[human], web[human]
    t_web = when[web]
    reg_t = t_web - np.exp(np.log(5.0) + 0.8 * rng.standard_normal(len(web)))
    created = ld.created[owner]
    reg_t = np.where(reg_t < created, created + rng.random(len(web)) * (t_web - created), reg_t)
    is_webinar_source = np.asarray(LEAD_SOURCES)[ld.source[owner]] == "webinar"
    p_reg = 0.012 * np.exp(0.6 * lat.intent[owner] + 1.2 * _in_episode(lat, owner, reg_t))
    p_reg = p_reg * np.where(_researcher(ld)[owner], 3.0, 1.0)
    p_reg = np.minimum(p_reg * np.where(is_webinar_source, 1.5, 1.0), 0.6)
    reg = rng.random(len(web)) < p_reg
    p_attend = _sigmoid(-0.2 + 0.5 * lat.intent[owner] + 0.8 * _in_episode(lat, owner, t_web))
    attend = reg & (rng.random(len(web)) < p_attend)
    t_att = t_web + rng.uniform(0, 20, len(web)) * _MIN
    out.add(owner[reg], reg_t[reg], _T["webinar_registered"], first_code + web[reg])
    out.add(owner[attend], t_att[attend], _T["webinar_attended"], first_code + web[attend])

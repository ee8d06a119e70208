"""Engagement features: counts, recency and rhythm of a lead's activities before ``as_of``.

The work is one compiled pass over activities sorted by (lead, time). Each snapshot
binary-searches its lead's timeline for ``as_of`` and walks backwards through the
longest window only, so the cost grows with the activities inside the windows, not
with a lead's whole history. The same kernel serves a single lead at request time.

Times are integer microseconds since the epoch, the contract's own resolution
(``features.contract.TIMESTAMP_UNIT``), which labels compare at too: an activity 0.4 s
after ``as_of`` is after it here as well, not floored onto it.
"""

from __future__ import annotations

import numba
import numpy as np

from features.catalogue import ACTIVITY_TYPES, HIGH_INTENT_TYPES, WINDOWS_DAYS

SECOND = 1_000_000
"""Microseconds in a second: every time here is integer microseconds since the epoch."""
DAY = 86_400 * SECOND
T0 = -(2**33)
"""Offset (in seconds) that keeps (seconds - T0) positive and below 2**34 for years 1697–2242."""
EXTRA_COLUMNS: tuple[str, ...] = (
    "n_activities_30d",
    "n_high_intent_30d",
    "days_since_last_activity",
    "days_since_last_high_intent",
    "trend_7d_vs_30d",
    "email_ctr_90d",
    "active_days_90d",
)


_HIGH_INTENT = np.array([a in HIGH_INTENT_TYPES for a in ACTIVITY_TYPES])
_WINDOWS = np.array(WINDOWS_DAYS, dtype=np.int64)
_EMAIL_OPEN = ACTIVITY_TYPES.index("email_open")
_EMAIL_CLICK = ACTIVITY_TYPES.index("email_click")


def count_columns() -> list[str]:
    """Names of the per-type window counts, in kernel output order."""
    return [f"n_{a}_{d}d" for a in ACTIVITY_TYPES for d in WINDOWS_DAYS]


@numba.njit(cache=True, nogil=True)
def _last_high_intent(lead_ptr, act_t, act_type, high_intent):
    """Time of the latest high-intent activity at or before each activity, per lead."""
    out = np.empty(act_t.shape[0], dtype=np.int64)
    none = np.iinfo(np.int64).min
    for lead in range(lead_ptr.shape[0] - 1):
        last = none
        for i in range(lead_ptr[lead], lead_ptr[lead + 1]):
            if high_intent[act_type[i]]:
                last = act_t[i]
            out[i] = last
    return out


@numba.njit(cache=True, nogil=True)
def _snapshot_row(
    s, a0, a1, as_of, act_t, act_type, last_hi, windows, high_intent, email_open, email_click, out
):
    n_types = high_intent.shape[0]
    n_win = windows.shape[0]
    lo, hi = a0, a1
    while lo < hi:  # first activity strictly after as_of
        mid = (lo + hi) // 2
        if act_t[mid] <= as_of:
            lo = mid + 1
        else:
            hi = mid
    end = lo
    longest = windows[n_win - 1] * DAY
    n30 = 0.0
    hi30 = 0.0
    n7 = 0.0
    prev30 = 0.0
    active_days = 0.0
    last_day = np.iinfo(np.int64).min
    i = end - 1
    while i >= a0:
        age = as_of - act_t[i]
        if age >= longest:
            break
        kind = act_type[i]
        for w in range(n_win):
            if age < windows[w] * DAY:
                out[s, kind * n_win + w] += 1.0
        if age < 30 * DAY:
            n30 += 1.0
            if high_intent[kind]:
                hi30 += 1.0
        if age < 7 * DAY:
            n7 += 1.0
        elif age < 37 * DAY:
            prev30 += 1.0
        day = act_t[i] // DAY
        if day != last_day:
            active_days += 1.0
            last_day = day
        i -= 1
    x = n_types * n_win
    out[s, x] = n30
    out[s, x + 1] = hi30
    if end > a0:
        out[s, x + 2] = (as_of - act_t[end - 1]) / DAY
        if last_hi[end - 1] != np.iinfo(np.int64).min:
            out[s, x + 3] = (as_of - last_hi[end - 1]) / DAY
    out[s, x + 4] = (n7 + 1.0) / (prev30 * 7.0 / 30.0 + 1.0)
    opens = out[s, email_open * n_win + n_win - 1]
    if opens > 0:
        out[s, x + 5] = out[s, email_click * n_win + n_win - 1] / opens
    out[s, x + 6] = active_days


@numba.njit(cache=True, nogil=True)
def _fill_snapshot(
    s,
    out,
    lead_ptr,
    act_t,
    act_type,
    last_hi,
    snap_lead,
    snap_t,
    windows,
    high_intent,
    email_open,
    email_click,
):
    n_counts = high_intent.shape[0] * windows.shape[0]
    out[s, :n_counts] = 0.0
    out[s, n_counts:] = np.nan
    lead = snap_lead[s]
    _snapshot_row(
        s,
        lead_ptr[lead],
        lead_ptr[lead + 1],
        snap_t[s],
        act_t,
        act_type,
        last_hi,
        windows,
        high_intent,
        email_open,
        email_click,
        out,
    )


@numba.njit(cache=True, nogil=True, parallel=True)
def _engagement_kernel(
    lead_ptr,
    act_t,
    act_type,
    last_hi,
    snap_lead,
    snap_t,
    windows,
    high_intent,
    email_open,
    email_click,
):
    out = np.empty((snap_t.shape[0], high_intent.shape[0] * windows.shape[0] + 7))
    for s in numba.prange(snap_t.shape[0]):
        _fill_snapshot(
            s,
            out,
            lead_ptr,
            act_t,
            act_type,
            last_hi,
            snap_lead,
            snap_t,
            windows,
            high_intent,
            email_open,
            email_click,
        )
    return out


@numba.njit(cache=True, nogil=True)
def _engagement_rows(
    lead_ptr,
    act_t,
    act_type,
    last_hi,
    snap_lead,
    snap_t,
    windows,
    high_intent,
    email_open,
    email_click,
):
    """``_engagement_kernel`` on the calling thread: for a few snapshots (a request),
    waking numba's thread pool costs more than the work."""
    out = np.empty((snap_t.shape[0], high_intent.shape[0] * windows.shape[0] + 7))
    for s in range(snap_t.shape[0]):
        _fill_snapshot(
            s,
            out,
            lead_ptr,
            act_t,
            act_type,
            last_hi,
            snap_lead,
            snap_t,
            windows,
            high_intent,
            email_open,
            email_click,
        )
    return out


SERIAL_BELOW = 64
"""Snapshots below which the kernel runs on the calling thread."""


def _lead_time_order(act_lead: np.ndarray, act_t: np.ndarray) -> np.ndarray | None:
    """The stable order that sorts activities by (lead, time); None if they already are.

    One int64 key sorts about three times faster than ``np.lexsort`` on two columns, so
    the two are packed into one whenever they fit: lead in the high bits and time since
    the earliest activity in the low ones (a couple of years of microseconds for 100,000
    leads), or else whole seconds in the low 34 bits when every time is a whole second
    (a CRM export at second resolution). Only what fits neither is lexsorted.
    """
    if act_t.size < 2:
        return None
    lead = act_lead.astype(np.int64, copy=False)
    t = act_t.astype(np.int64, copy=False)
    step = lead[1:] - lead[:-1]
    if bool(np.all((step > 0) | ((step == 0) & (t[1:] >= t[:-1])))):
        return None
    first = int(t.min())
    span_bits = (int(t.max()) - first).bit_length()
    if int(lead.max()).bit_length() + span_bits <= 63:
        return np.argsort((lead << span_bits) | (t - first), kind="stable")
    seconds, fraction = np.divmod(t, SECOND)
    if seconds.min() >= T0 and seconds.max() < -T0 and not fraction.any():
        return np.argsort((lead << 34) | (seconds - T0), kind="stable")
    return np.lexsort((t, lead))


def engagement_matrix(
    n_leads: int,
    act_lead: np.ndarray,
    act_t: np.ndarray,
    act_type: np.ndarray,
    snap_lead: np.ndarray,
    snap_t: np.ndarray,
) -> np.ndarray:
    """Compute window counts and recency features for every snapshot.

    Args:
        n_leads: Number of leads; lead indices run from 0 to ``n_leads - 1``.
        act_lead: Lead index of each activity.
        act_t: Activity time in microseconds since the epoch.
        act_type: Index into ``ACTIVITY_TYPES`` of each activity.
        snap_lead: Lead index of each snapshot.
        snap_t: Snapshot ``as_of`` in microseconds since the epoch.

    Returns:
        ``(n_snapshots, len(count_columns()) + len(EXTRA_COLUMNS))`` float64 matrix.
    """
    order = _lead_time_order(act_lead, act_t)
    if order is not None:
        act_lead, act_t, act_type = act_lead[order], act_t[order], act_type[order]
    lead_sorted = act_lead
    t_sorted = np.ascontiguousarray(act_t, dtype=np.int64)
    type_sorted = np.ascontiguousarray(act_type, dtype=np.int8)
    lead_ptr = np.searchsorted(lead_sorted, np.arange(n_leads + 1)).astype(np.int64)
    last_hi = _last_high_intent(lead_ptr, t_sorted, type_sorted, _HIGH_INTENT)
    kernel = _engagement_rows if len(snap_t) < SERIAL_BELOW else _engagement_kernel
    return kernel(
        lead_ptr,
        t_sorted,
        type_sorted,
        last_hi,
        np.ascontiguousarray(snap_lead, dtype=np.int64),
        np.ascontiguousarray(snap_t, dtype=np.int64),
        _WINDOWS,
        _HIGH_INTENT,
        _EMAIL_OPEN,
        _EMAIL_CLICK,
    )

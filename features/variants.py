"""Variant leads for next best actions: each lead with one more activity, now.

``activity_variants`` builds, for many leads and actions at once, the arrays of the
*variant* leads (each lead with one more activity at its ``as_of``), which
``features.pipeline.feature_values`` then turns into features: the very code training
and scoring run, so an action's score is the score the lead would get if the activity
had been logged, not an approximation of it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from features.pipeline import LeadArrays


def activity_variants(arrays: LeadArrays, rows: np.ndarray, codes: np.ndarray) -> LeadArrays:
    """The arrays of every variant lead: snapshot ``rows[k]`` with activity ``codes[a]`` at
    its ``as_of``, one variant lead (and snapshot) per ``(k, a)``, in that order.

    Each variant lead has the profile and creation time of its snapshot's lead and the
    lead's activities at or before the snapshot's ``as_of`` (the only ones
    ``feature_values`` reads for it), followed by the new activity at ``as_of``. They are
    laid out already sorted by (lead, time), so the engagement kernel sorts nothing; the
    features are then exactly those of the lead re-scored with the activity appended.

    Args:
        arrays: The leads and snapshots scored (``LeadArrays``).
        rows: Snapshot indices to vary.
        codes: Activity type codes (into ``ACTIVITY_TYPES``) to append, one per action.
    """
    rows = np.asarray(rows, dtype=np.int64)
    codes = np.asarray(codes, dtype=np.int64)
    n_actions = len(codes)
    arrays = by_lead_and_time(arrays)
    lead_sorted, t_sorted, type_sorted = arrays.act_lead, arrays.act_t, arrays.act_type
    ptr = np.searchsorted(lead_sorted, np.arange(len(arrays.created_t) + 1))
    leads = np.asarray(arrays.snap_lead, dtype=np.int64)[rows]
    snap_t = np.asarray(arrays.snap_t, dtype=np.int64)[rows]
    start = ptr[leads]
    kept = np.fromiter(
        (
            np.searchsorted(t_sorted[a:b], t, side="right")
            for a, b, t in zip(start, ptr[leads + 1], snap_t, strict=True)
        ),
        dtype=np.int64,
        count=len(rows),
    )
    # variant v = k * n_actions + a: the kept activities of row k, then the new one
    v_start = np.repeat(start, n_actions)
    v_kept = np.repeat(kept, n_actions)
    v_t = np.repeat(snap_t, n_actions)
    v_code = np.tile(codes, len(rows))
    sizes = v_kept + 1
    v_of = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    offset = np.arange(int(sizes.sum()), dtype=np.int64) - np.repeat(
        np.cumsum(sizes) - sizes, sizes
    )
    new = offset == v_kept[v_of]
    src = np.where(new, 0, v_start[v_of] + offset)
    if len(t_sorted) == 0:  # no activity at all: every variant holds its new one only
        src = np.zeros_like(src)
        t_sorted = np.zeros(1, dtype=np.int64)
        type_sorted = np.zeros(1, dtype=np.int64)
    variant_lead = np.repeat(leads, n_actions)
    return LeadArrays(
        profile={name: column[variant_lead] for name, column in arrays.profile.items()},
        created_t=np.asarray(arrays.created_t, dtype=np.int64)[variant_lead],
        act_lead=v_of,
        act_t=np.where(new, v_t[v_of], t_sorted[src]),
        act_type=np.where(new, v_code[v_of], type_sorted[src]),
        snap_lead=np.arange(len(variant_lead), dtype=np.int64),
        snap_t=np.repeat(snap_t, n_actions),
    )


def by_lead_and_time(arrays: LeadArrays) -> LeadArrays:
    """``arrays`` with the activities sorted by (lead, time), as int64 (the same arrays when
    they already are: a caller varying many chunks of leads sorts once)."""
    lead = np.asarray(arrays.act_lead, dtype=np.int64)
    t = np.asarray(arrays.act_t, dtype=np.int64)
    kind = np.asarray(arrays.act_type, dtype=np.int64)
    step = np.diff(lead)
    if bool(np.all((step > 0) | ((step == 0) & (np.diff(t) >= 0)))):
        if lead is arrays.act_lead and t is arrays.act_t and kind is arrays.act_type:
            return arrays
    else:
        order = np.lexsort((t, lead))
        lead, t, kind = lead[order], t[order], kind[order]
    return replace(arrays, act_lead=lead, act_t=t, act_type=kind)

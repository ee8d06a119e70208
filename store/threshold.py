"""Threshold diagnostics: is the MQL threshold too low, too strict, or about right, per region?

The score history in the store is replayed at a grid of thresholds around each region's
current one (the threshold of the region's latest score, times ``MULTIPLIERS``): at a
threshold ``t`` a lead *enters* MQL when a score of it reaches ``t`` while its previous
score did not (or it had none), as ``store.runs`` decides for real. A lead counts in its
current region (``lead_states``), whose threshold is the one being judged. For each
threshold:

* **Volume**: entries per week over the last ``weeks`` weeks before ``as_of``, against the
  sales team's weekly ``capacity`` (an argument: how many MQLs the reps can work a week).
  Entries at the store's very first scoring moment are the backlog it started with, not
  weekly flow, and are not counted.
* **Acceptance**: the share of actual MQL episodes (``store.funnel``: a re-entry into an
  open episode is not a new one), at least ``acceptance_days`` old, that sales accepted
  within that many days (an accept implied by a later SQL, opportunity or win counts),
  among those whose probability at entry reaches ``t``. Sales only ever saw
  leads at or above the *current* threshold, so acceptance is observed only there and
  above (``acceptance_observed``); below it is unknown, not zero.
* **Precision**: the share of the replayed entries, at least ``horizon_days`` old, that
  reached ``outcome`` (``won`` by default; a later progressive stage counts) within
  ``horizon_days`` of entry and before the lead's next entry. Outcomes are the
  dispositions, plus the rows of an optional ``conversions`` frame
  (``lead_id, converted_at``: conversions known from the data, e.g. closed-won deals that
  never passed through the MQL hand-off).
* **Missed**: of the leads that converted (first outcome per lead) by ``as_of``, the share
  that never scored at or above ``t`` in the ``horizon_days`` before converting. A lead
  with no score at all in that span could not have been caught by any threshold: it is
  counted in ``unscored_conversions`` and left out of the share.

The verdict, from the current threshold's row (``Criteria`` holds the numbers):

* **too low** when the MQLs per week exceed the capacity by more than ``tolerance``
  (default 10 %), or when sales accept fewer than ``min_acceptance`` (default 60 %) of at
  least ``min_count`` mature MQLs: reps reject 20–40 % of MQLs in a healthy funnel, so
  more than 40 % rejected says the threshold lets in leads they do not want.
* **too strict** when more than ``max_missed`` (default 25 %) of at least ``min_count``
  scored conversions never became MQLs, and the team has room for more MQLs (volume
  within capacity, or no capacity given).
* **about right** otherwise; **not enough data** when neither volume, acceptance nor
  conversions can be measured.

The recommended threshold is the lowest one of the grid (the one missing fewest
conversions) whose MQLs per week fit the capacity (no tolerance here), whose precision
stays at or above a floor (``min_precision``, or by default half the current threshold's
precision), and whose acceptance is not too low: a measured acceptance under
``min_acceptance`` excludes a threshold, and when the current one's is, every lower one
too (acceptance there is unseen, and taken to be no better). When no threshold of the
grid qualifies, the strictest one, and the message says so. Unmeasured quantities (no
capacity, no mature entries) do not exclude a threshold. The overall row (``region`` =
``all``) applies each multiplier to every region's own threshold and adds the regions up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from store.funnel import (
    PROGRESSIVE,
    UNKNOWN,
    FunnelError,
    as_timestamp,
    episodes_from_frames,
    read_columns,
    read_dispositions,
    read_entries,
    wilson_interval,
)
from store.schema import lead_states, scores, scoring_runs

MULTIPLIERS = (0.5, 0.67, 0.8, 1.0, 1.25, 1.5, 2.0)
"""Thresholds tried, as multiples of each region's current threshold."""
ALL = "all"
"""Region label of the overall rows."""
GRID_COLUMNS = (
    "region",
    "multiplier",
    "threshold",
    "current",
    "mqls",
    "weeks",
    "mqls_per_week",
    "capacity",
    "fits_capacity",
    "acceptance_observed",
    "acceptance_n",
    "accepted",
    "acceptance_rate",
    "acceptance_low",
    "acceptance_high",
    "mature_mqls",
    "converted",
    "precision",
    "precision_low",
    "precision_high",
    "conversions",
    "missed",
    "missed_share",
    "missed_low",
    "missed_high",
    "unscored_conversions",
    "recommended",
)
VERDICT_COLUMNS = (
    "region",
    "verdict",
    "message",
    "current_threshold",
    "recommended_threshold",
    "recommended_multiplier",
    "mqls_per_week",
    "capacity",
    "acceptance_rate",
    "precision",
    "missed_share",
    "precision_floor",
)


def _ns(stamp: pd.Timestamp) -> np.datetime64:
    """``stamp`` as a nanosecond ``numpy.datetime64``, to compare with the replay's times."""
    return np.datetime64(int(stamp.value), "ns")


@dataclass(frozen=True)
class Criteria:
    """What makes a threshold "too low" or "too strict" (see the module docstring).

    Attributes:
        tolerance: MQLs per week may exceed the capacity by this share before "too low".
        min_acceptance: Acceptance below this (of ``min_count``+ mature MQLs) is "too low".
        max_missed: A missed share of conversions above this is "too strict".
        min_count: Fewest mature MQLs (or scored conversions) a rate must stand on to
            count towards a verdict.
        min_precision: Precision floor of the recommended threshold (None: half the
            current threshold's precision).
    """

    tolerance: float = 0.10
    min_acceptance: float = 0.60
    max_missed: float = 0.25
    min_count: int = 20
    min_precision: float | None = None

    def __post_init__(self) -> None:
        for name in ("tolerance", "min_acceptance", "max_missed"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise FunnelError(f"threshold criteria: {name} must lie in [0, 1], got {value}")
        if self.min_count < 1:
            raise FunnelError(f"threshold criteria: min_count must be ≥ 1, got {self.min_count}")


@dataclass(frozen=True)
class ThresholdReport:
    """The diagnostics of one look at the threshold.

    Attributes:
        grid: One row per region (and ``all``) and multiplier (``GRID_COLUMNS``).
        verdicts: One row per region (and ``all``): the verdict, a plain-language message
            and the numbers behind it (``VERDICT_COLUMNS``).
        as_of: The moment looked from.
    """

    grid: pd.DataFrame
    verdicts: pd.DataFrame
    as_of: pd.Timestamp | None


@dataclass(frozen=True)
class _Replay:
    """The score history in lead/time order, ready for replaying thresholds."""

    lead: np.ndarray  # int codes
    time: np.ndarray  # datetime64[ns]
    probability: np.ndarray
    previous: np.ndarray  # the lead's previous probability, NaN for its first score
    region: np.ndarray  # int codes into regions
    current: np.ndarray  # the current threshold of each row's region
    regions: list[str]
    thresholds: np.ndarray  # current threshold per region
    leads: pd.Index
    first_time: np.datetime64


def threshold_diagnostics(
    engine: Engine,
    capacity: float | Mapping[str, float] | None = None,
    *,
    as_of: pd.Timestamp | str | None = None,
    since: pd.Timestamp | str | None = None,
    weeks: int = 13,
    horizon_days: int = 90,
    outcome: str = "won",
    acceptance_days: int = 14,
    conversions: pd.DataFrame | None = None,
    multipliers: Sequence[float] = MULTIPLIERS,
    criteria: Criteria = Criteria(),
    confidence: float = 0.95,
) -> ThresholdReport:
    """The threshold diagnostics per region and overall, with verdicts (module docstring).

    Args:
        engine: An open, migrated store.
        capacity: MQLs the reps can work per week: one number for the whole team (the
            ``all`` row), or per region (a mapping; an ``all`` key, or else the sum of
            the regions' when every region has one, is the team's).
        as_of: Look from this moment (default: the latest score in the store).
        since: Count entries and conversions from this time on only (precision, missed,
            acceptance); volume always covers the last ``weeks`` weeks.
        weeks: Weeks of recent history the MQLs per week are measured over.
        horizon_days: Days an MQL is given to reach ``outcome`` (precision), and days
            before a conversion a high enough score still counts as caught (missed).
        outcome: ``sql``, ``opportunity`` or ``won``: what precision and missed count as
            a conversion.
        acceptance_days: Days sales are given to accept an MQL (the SLA).
        conversions: Optional conversions from the data, columns ``lead_id`` and
            ``converted_at`` (tz-naive UTC or tz-aware).
        multipliers: Thresholds to try, as multiples of each region's current threshold
            (1 is always added).
        criteria: What "too low" and "too strict" mean.
        confidence: Coverage of the Wilson intervals.

    Returns:
        The grid and the verdicts; both empty when the store holds no scores.

    Raises:
        FunnelError: naming the argument, or the row and column of ``conversions``, that
            cannot be used.
    """
    factors = _multipliers(multipliers)
    _check_arguments(weeks, horizon_days, outcome, acceptance_days)
    start = as_timestamp(since, "since")
    extra = _conversions(conversions)
    with engine.connect() as connection:
        end = as_timestamp(as_of, "as_of")
        if end is None:
            # a score's time is its run's; the runs' times are indexed, the scores' not
            found = connection.execute(sa.select(sa.func.max(scoring_runs.c.as_of))).scalar()
            end = None if found is None else pd.Timestamp(found)
        if end is None:
            return _empty_report(None)
        replay = _read_replay(connection, end, filtered=as_of is not None)
        if replay is None:
            return _empty_report(end)
        entries = read_entries(connection, end)
        done = read_dispositions(connection, end)
    stages = PROGRESSIVE[PROGRESSIVE.index(outcome) :]
    outcomes = _outcome_events(done[done["stage"].isin(stages)], extra, end)
    episodes = episodes_from_frames(entries, done, end, start)
    grid = _grid(
        replay,
        factors,
        episodes,
        outcomes,
        _Settings(end, start, weeks, horizon_days, acceptance_days, confidence),
    )
    grid = _with_capacity(grid, capacity, replay.regions)
    grid, verdicts = _judge(grid, criteria)
    return ThresholdReport(grid=grid, verdicts=verdicts, as_of=end)


@dataclass(frozen=True)
class _Settings:
    end: pd.Timestamp
    since: pd.Timestamp | None
    weeks: int
    horizon_days: int
    acceptance_days: int
    confidence: float


def _multipliers(multipliers: Sequence[float]) -> list[float]:
    values = sorted({float(m) for m in multipliers} | {1.0})
    bad = [m for m in values if not (m > 0 and math.isfinite(m))]
    if bad:
        raise FunnelError(f"threshold multipliers must be positive numbers, got {bad[0]}")
    return values


def _check_arguments(weeks: int, horizon_days: int, outcome: str, acceptance_days: int) -> None:
    if weeks < 1:
        raise FunnelError(f"weeks must be ≥ 1, got {weeks}")
    if horizon_days < 1:
        raise FunnelError(f"horizon_days must be ≥ 1, got {horizon_days}")
    if acceptance_days < 0:
        raise FunnelError(f"acceptance_days must be ≥ 0, got {acceptance_days}")
    if outcome not in PROGRESSIVE[1:]:
        raise FunnelError(f"outcome must be one of sql, opportunity, won, got {outcome!r}")


def _conversions(frame: pd.DataFrame | None) -> pd.DataFrame:
    """The optional conversions frame, checked: ``lead_id`` (text) and ``converted_at``."""
    empty = pd.DataFrame(
        {"lead_id": pd.Series(dtype=object), "at": pd.Series(dtype="datetime64[ns]")}
    )
    if frame is None:
        return empty
    missing = [c for c in ("lead_id", "converted_at") if c not in frame]
    if missing:
        raise FunnelError(f"conversions: missing column(s) {', '.join(missing)}")
    if frame.empty:
        return empty
    ids = frame["lead_id"]
    if (bad := ids.isna().to_numpy()).any():
        row = int(np.flatnonzero(bad)[0])
        raise FunnelError(f"conversions: row {row}: lead_id is missing")
    stamps = pd.to_datetime(frame["converted_at"], errors="coerce", utc=True)
    if (bad := stamps.isna().to_numpy()).any():
        row = int(np.flatnonzero(bad)[0])
        value = frame["converted_at"].iloc[row]
        raise FunnelError(
            f"conversions: row {row} (lead {ids.iloc[row]!r}): converted_at {value!r} "
            "is not a date or time"
        )
    return pd.DataFrame(
        {
            "lead_id": ids.astype(str).to_numpy(dtype=object),
            "at": stamps.dt.tz_localize(None).astype("datetime64[ns]").to_numpy(),
        }
    )


def _outcome_events(done: pd.DataFrame, extra: pd.DataFrame, end: pd.Timestamp) -> pd.DataFrame:
    """Outcome events by ``end``: the dispositions' and the conversions frame's."""
    events = pd.concat(
        [
            pd.DataFrame(
                {
                    "lead_id": done["lead_id"].astype(str).to_numpy(dtype=object),
                    "at": done["occurred_at"].astype("datetime64[ns]").to_numpy(),
                }
            ),
            extra,
        ],
        ignore_index=True,
    )
    events = events[events["at"] <= end]
    return events.drop_duplicates().sort_values("at", kind="stable").reset_index(drop=True)


def _read_replay(connection: Connection, end: pd.Timestamp, filtered: bool) -> _Replay | None:
    """The score history up to ``end`` in lead/time order (None: no score).

    Three narrow columns are read per score (lead, run, probability): a score's time is
    its run's, and a lead's region is its current one (``lead_states``), the region whose
    threshold is being judged today. Each region's current threshold is that of the
    region's latest score, read alone.
    """
    runs = read_columns(connection, sa.select(scoring_runs.c.id, scoring_runs.c.as_of))
    runs = runs[runs["as_of"] <= end]
    query = sa.select(scores.c.lead_id, scores.c.run_id, scores.c.probability)
    if filtered:
        query = query.where(scores.c.as_of <= end.to_pydatetime())
    history = read_columns(connection, query)
    if history.empty or runs.empty:
        return None
    run_time = pd.Series(runs["as_of"].to_numpy(), index=runs["id"].to_numpy())
    history = history[history["run_id"].isin(run_time.index)]
    if history.empty:
        return None
    codes, leads = pd.factorize(history["lead_id"].to_numpy(dtype=object))
    run = history["run_id"].to_numpy(dtype=np.int64)
    time = run_time.reindex(run).to_numpy(dtype="datetime64[ns]")
    order = np.lexsort((run, time.view(np.int64), codes))
    codes, run, time = codes[order], run[order], time[order]
    probability = history["probability"].to_numpy(dtype=np.float64)[order]
    previous = np.full(len(order), np.nan)
    previous[1:] = np.where(codes[1:] == codes[:-1], probability[:-1], np.nan)
    states = read_columns(connection, sa.select(lead_states.c.lead_id, lead_states.c.region))
    text = (
        pd.Series(states["region"].to_numpy(dtype=object), index=states["lead_id"], dtype=object)
        .reindex(pd.Index(leads, dtype=object))
        .to_numpy(dtype=object)
    )
    lead_region, uniques = pd.factorize(np.where(pd.isna(text), UNKNOWN, text), sort=True)
    region = lead_region[codes]
    regions = [str(r) for r in uniques]
    thresholds = _current_thresholds(connection, len(regions), region, codes, run, time, leads)
    return _Replay(
        lead=codes,
        time=time,
        probability=probability,
        previous=previous,
        region=region,
        current=thresholds[region],
        regions=regions,
        thresholds=thresholds,
        leads=pd.Index(leads, dtype=object),
        first_time=time.min(),
    )


def _current_thresholds(
    connection: Connection,
    n_regions: int,
    region: np.ndarray,
    lead: np.ndarray,
    run: np.ndarray,
    time: np.ndarray,
    leads: np.ndarray,
) -> np.ndarray:
    """Each region's threshold: the one its latest score (latest time, then run) got."""
    latest = (
        pd.DataFrame({"region": region, "time": time, "run": run, "lead": lead})
        .sort_values(["time", "run"], kind="stable")
        .groupby("region")[["run", "lead"]]
        .last()
    )
    out = np.full(n_regions, np.nan)
    codes = latest.index.to_numpy(dtype=np.int64)
    for code, last_run, last_lead in zip(codes, latest["run"], latest["lead"], strict=True):
        found = connection.execute(
            sa.select(scores.c.threshold)
            .where(scores.c.run_id == int(last_run), scores.c.lead_id == leads[last_lead])
            .limit(1)
        ).scalar()
        out[code] = np.nan if found is None else float(found)
    return out


def _grid(
    replay: _Replay,
    factors: list[float],
    episodes: pd.DataFrame,
    outcomes: pd.DataFrame,
    settings: _Settings,
) -> pd.DataFrame:
    """The per-region counts at each multiplier, and their rates."""
    n_regions = len(replay.regions)
    end = _ns(settings.end)
    horizon = np.timedelta64(settings.horizon_days, "D").astype("timedelta64[ns]")
    window_start = max(end - np.timedelta64(7 * settings.weeks, "D"), replay.first_time)
    weeks = (end - window_start) / np.timedelta64(7, "D")
    in_window = (replay.time > window_start) & (replay.time > replay.first_time)
    mature = replay.time <= end - horizon
    if settings.since is not None:
        mature &= replay.time >= _ns(settings.since)
    outcome_lead = replay.leads.get_indexer(pd.Index(outcomes["lead_id"]))
    scored_outcomes = outcomes.assign(lead=outcome_lead)[outcome_lead >= 0]
    peaks = _conversion_peaks(replay, outcomes, settings)
    accept = _acceptance_inputs(episodes, replay, settings)

    rows = []
    for factor in factors:
        threshold = replay.current * factor
        entered = (replay.probability >= threshold) & ~(replay.previous >= threshold)
        volume = np.bincount(replay.region[entered & in_window], minlength=n_regions)
        converted = _converted(replay, entered, scored_outcomes, horizon)
        matured = entered & mature
        caught = peaks["probability"] >= replay.thresholds[peaks["region"]] * factor
        accepted_mask = accept["probability"] >= replay.thresholds[accept["region"]] * factor
        counts = {
            "mqls": volume,
            "mature_mqls": np.bincount(replay.region[matured], minlength=n_regions),
            "converted": np.bincount(replay.region[matured & converted], minlength=n_regions),
            "conversions": np.bincount(peaks["region"], minlength=n_regions),
            "missed": np.bincount(peaks["region"][~caught], minlength=n_regions),
            "acceptance_n": np.bincount(accept["region"][accepted_mask], minlength=n_regions),
            "accepted": np.bincount(
                accept["region"][accepted_mask & accept["accepted"]],
                minlength=n_regions,
            ),
        }
        frame = pd.DataFrame(counts)
        frame.insert(0, "region", replay.regions)
        frame.insert(1, "multiplier", factor)
        frame.insert(2, "threshold", replay.thresholds * factor)
        overall = frame.drop(columns=["region", "threshold"]).sum().to_frame().T
        overall.insert(0, "region", ALL)
        overall.insert(2, "threshold", np.nan)
        overall["multiplier"] = factor
        rows.append(pd.concat([frame, overall], ignore_index=True))
    grid = pd.concat(rows, ignore_index=True)
    grid["current"] = grid["multiplier"] == 1.0
    grid["weeks"] = weeks
    unscored = len(_first_conversions(outcomes, settings)) - len(peaks["probability"])
    grid["unscored_conversions"] = pd.array(
        [unscored if region == ALL else pd.NA for region in grid["region"]], dtype="Int64"
    )
    return _rates(grid, settings.confidence)


def _converted(
    replay: _Replay, entered: np.ndarray, outcomes: pd.DataFrame, horizon: np.timedelta64
) -> np.ndarray:
    """Which entries (rows of ``replay``) reached the outcome within the horizon, before
    the lead's next entry: each outcome goes to the lead's latest entry before it."""
    hit = np.zeros(len(entered), dtype=bool)
    rows = np.flatnonzero(entered)
    if len(rows) == 0 or outcomes.empty:
        return hit
    right = pd.DataFrame({"lead": replay.lead[rows], "entry_at": replay.time[rows], "row": rows})
    joined = pd.merge_asof(
        outcomes[["lead", "at"]],
        right.sort_values("entry_at", kind="stable"),
        left_on="at",
        right_on="entry_at",
        by="lead",
        direction="backward",
    )
    joined = joined[joined["row"].notna() & (joined["at"] - joined["entry_at"] <= horizon)]
    hit[joined["row"].to_numpy(dtype=np.int64)] = True
    return hit


def _first_conversions(outcomes: pd.DataFrame, settings: _Settings) -> pd.DataFrame:
    """Each converted lead's first outcome (``since`` to ``end``)."""
    first = outcomes.drop_duplicates("lead_id", keep="first")
    if settings.since is not None:
        first = first[first["at"] >= settings.since]
    return first.reset_index(drop=True)


def _conversion_peaks(
    replay: _Replay, outcomes: pd.DataFrame, settings: _Settings
) -> dict[str, np.ndarray]:
    """Per scored conversion: the highest probability in the ``horizon_days`` before it,
    and the lead's region then (that of its latest score)."""
    first = _first_conversions(outcomes, settings)
    lead = replay.leads.get_indexer(pd.Index(first["lead_id"]))
    first = first.assign(lead=lead)[lead >= 0]
    scored = pd.DataFrame(
        {
            "lead": replay.lead,
            "time": replay.time,
            "probability": replay.probability,
            "region": replay.region,
        }
    )
    pairs = first.merge(scored, on="lead", how="inner")
    horizon = pd.Timedelta(days=settings.horizon_days)
    pairs = pairs[(pairs["time"] <= pairs["at"]) & (pairs["time"] >= pairs["at"] - horizon)]
    pairs = pairs.sort_values(["lead", "time"], kind="stable")
    per = pairs.groupby("lead", sort=False).agg(
        probability=("probability", "max"), region=("region", "last")
    )
    return {
        "probability": per["probability"].to_numpy(dtype=np.float64),
        "region": per["region"].to_numpy(dtype=np.int64),
    }


def _acceptance_inputs(
    episodes: pd.DataFrame, replay: _Replay, settings: _Settings
) -> dict[str, np.ndarray]:
    """Actual MQL episodes old enough to judge acceptance: probability, region code, and
    whether sales accepted within ``acceptance_days``."""
    days = settings.acceptance_days
    handed = ~episodes["absorbed"].astype(bool)
    mature = episodes[handed & (episodes["age_days"] >= days) & episodes["probability"].notna()]
    code = pd.Index(replay.regions).get_indexer(pd.Index(mature["region"].astype(str)))
    mature = mature[code >= 0]
    accepted = pd.to_numeric(mature["accepted_days"], errors="coerce") <= days
    return {
        "probability": mature["probability"].to_numpy(dtype=np.float64),
        "region": code[code >= 0].astype(np.int64),
        "accepted": accepted.to_numpy(dtype=bool),
    }


def _rates(grid: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """Rates and Wilson intervals from the counts; acceptance only where observed."""
    for column in ("mqls", "mature_mqls", "converted", "conversions", "missed"):
        grid[column] = grid[column].astype(np.int64)
    for column in ("acceptance_n", "accepted"):
        grid[column] = grid[column].astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        grid["mqls_per_week"] = np.where(grid["weeks"] > 0, grid["mqls"] / grid["weeks"], np.nan)
        observed = grid["multiplier"] >= 1.0
        grid["acceptance_observed"] = observed
        n = grid["acceptance_n"].where(observed, 0)
        grid["acceptance_rate"] = np.where(n > 0, grid["accepted"] / n, np.nan)
        grid["acceptance_low"], grid["acceptance_high"] = wilson_interval(
            grid["accepted"].where(observed, 0), n, confidence
        )
        grid["precision"] = np.where(
            grid["mature_mqls"] > 0, grid["converted"] / grid["mature_mqls"], np.nan
        )
        grid["precision_low"], grid["precision_high"] = wilson_interval(
            grid["converted"], grid["mature_mqls"], confidence
        )
        grid["missed_share"] = np.where(
            grid["conversions"] > 0, grid["missed"] / grid["conversions"], np.nan
        )
        grid["missed_low"], grid["missed_high"] = wilson_interval(
            grid["missed"], grid["conversions"], confidence
        )
    grid.loc[~observed, ["acceptance_n", "accepted"]] = 0
    return grid


def _with_capacity(
    grid: pd.DataFrame, capacity: float | Mapping[str, float] | None, regions: list[str]
) -> pd.DataFrame:
    """The capacity of each row's region, NaN where none was given."""
    per: dict[str, float] = {}
    if isinstance(capacity, Mapping):
        for region, value in capacity.items():
            per[str(region)] = _capacity_value(value, str(region))
        if ALL not in per and regions and all(r in per for r in regions):
            per[ALL] = sum(per[r] for r in regions)
    elif capacity is not None:
        per[ALL] = _capacity_value(capacity, ALL)
    grid["capacity"] = grid["region"].map(per).astype(np.float64)
    over = grid["mqls_per_week"] > grid["capacity"]
    grid["fits_capacity"] = ~over
    return grid


def _capacity_value(value: float, region: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FunnelError(f"capacity of {region}: {value!r} is not a number") from None
    if not (number > 0 and math.isfinite(number)):
        raise FunnelError(f"capacity of {region} must be a positive number, got {value!r}")
    return number


def _judge(grid: pd.DataFrame, criteria: Criteria) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mark each region's recommended threshold and write its verdict."""
    grid["recommended"] = False
    verdicts = []
    order = [*sorted(r for r in grid["region"].unique() if r != ALL), ALL]
    for region in order:
        rows = grid[grid["region"] == region].sort_values("multiplier")
        current = rows[rows["current"]].iloc[0]
        floor = criteria.min_precision
        if floor is None and not math.isnan(current["precision"]):
            floor = 0.5 * float(current["precision"])
        found = _recommend(rows, floor, criteria)
        pick = rows.iloc[-1] if found is None else found
        grid.loc[pick.name, "recommended"] = True
        verdict, message = _verdict(current, pick, criteria, found is not None, floor)
        verdicts.append(
            {
                "region": region,
                "verdict": verdict,
                "message": message,
                "current_threshold": current["threshold"],
                "recommended_threshold": pick["threshold"],
                "recommended_multiplier": pick["multiplier"],
                "mqls_per_week": current["mqls_per_week"],
                "capacity": current["capacity"],
                "acceptance_rate": current["acceptance_rate"],
                "precision": current["precision"],
                "missed_share": current["missed_share"],
                "precision_floor": np.nan if floor is None else floor,
            }
        )
    return grid[list(GRID_COLUMNS)], pd.DataFrame(verdicts, columns=list(VERDICT_COLUMNS))


def _recommend(rows: pd.DataFrame, floor: float | None, criteria: Criteria) -> pd.Series | None:
    """The lowest threshold that fits the capacity, keeps precision at the floor and
    acceptance at ``min_acceptance`` (None when no threshold of the grid does).

    Below the current threshold acceptance is unobserved; it is taken to be no better
    than the current one's, so a current acceptance that is already too low rules out
    every lower threshold.
    """
    fits = rows["fits_capacity"].to_numpy(dtype=bool)
    precise = np.ones(len(rows), dtype=bool)
    if floor is not None:
        precision = rows["precision"].to_numpy(dtype=np.float64)
        precise = np.isnan(precision) | (precision >= floor - 1e-12)
    observed = rows["acceptance_observed"].to_numpy(dtype=bool)
    measured = observed & (rows["acceptance_n"].to_numpy() >= criteria.min_count)
    low = measured & (rows["acceptance_rate"].to_numpy(dtype=np.float64) < criteria.min_acceptance)
    current_low = bool(low[rows["current"].to_numpy(dtype=bool)].any())
    acceptable = np.where(observed, ~low, not current_low)
    good = fits & precise & acceptable
    if not good.any():
        return None
    return rows.iloc[int(np.flatnonzero(good)[0])]


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.0f} %"


def _num(value: float) -> str:
    """A count per week as people say it: 180, 52.5, 0.667."""
    if math.isnan(value):
        return "n/a"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _verdict(
    current: pd.Series, pick: pd.Series, criteria: Criteria, meets: bool, floor: float | None
) -> tuple[str, str]:
    """The verdict on the current threshold and a sentence saying why, with the
    recommended threshold's numbers."""
    per_week = float(current["mqls_per_week"])
    capacity = float(current["capacity"])
    over = not math.isnan(capacity) and per_week > capacity * (1 + criteria.tolerance)
    accepted_n = int(current["acceptance_n"])
    acceptance = float(current["acceptance_rate"])
    rejected_much = accepted_n >= criteria.min_count and acceptance < criteria.min_acceptance
    conversions = int(current["conversions"])
    missed = float(current["missed_share"])
    headroom = math.isnan(capacity) or not per_week > capacity
    too_many_missed = conversions >= criteria.min_count and missed > criteria.max_missed

    volume = f"{_num(per_week)} MQLs/week"
    if not math.isnan(capacity):
        volume += f" against a capacity of {_num(capacity)}"
    accept = f"acceptance {_pct(acceptance)}" if accepted_n else "acceptance not measured yet"
    missing = (
        f"{_pct(missed)} of conversions never became MQLs ({int(current['missed'])} of "
        f"{conversions})"
        if conversions
        else "no conversions to check yet"
    )
    measured = int(current["mqls"]) + int(current["mature_mqls"]) + accepted_n + conversions
    if measured == 0:
        return "not enough data", "not enough data: no MQLs, outcomes or conversions yet"
    if over or rejected_much:
        verdict = "too low"
        why = f"too low: {volume}, {accept}"
        if too_many_missed:
            why += f", yet {missing}: the scores separate poorly, a threshold cannot fix both"
    elif too_many_missed and headroom:
        verdict = "too strict"
        why = f"too strict: {missing}; {volume}"
    else:
        verdict = "about right"
        why = f"about right: {volume}, {accept}, {missing}"
    return verdict, f"{why}. {_advice(current, pick, meets, verdict, floor)}"


def _advice(
    current: pd.Series, pick: pd.Series, meets: bool, verdict: str, floor: float | None
) -> str:
    """What the recommended threshold would give."""
    where = (
        f"×{pick['multiplier']:g} of each region's threshold"
        if math.isnan(float(pick["threshold"]))
        else f"{float(pick['threshold']):.3g} (×{pick['multiplier']:g})"
    )
    numbers = (
        f"{_num(float(pick['mqls_per_week']))} MQLs/week, precision "
        f"{_pct(float(pick['precision']))}, {_pct(float(pick['missed_share']))} of "
        "conversions missed"
    )
    if not meets:
        return f"No threshold tried meets every criterion; the strictest, {where}: {numbers}."
    if pick.name == current.name and verdict == "too strict":
        below = "" if floor is None else f" or drops precision below {_pct(floor)}"
        return (
            f"Keep it for want of better: every lower threshold tried exceeds the capacity"
            f"{below}: {numbers}."
        )
    if pick.name == current.name:
        return f"Keep it: {numbers}."
    return f"Recommended: {where}: {numbers}."


def _empty_report(as_of: pd.Timestamp | None) -> ThresholdReport:
    return ThresholdReport(
        grid=pd.DataFrame(columns=list(GRID_COLUMNS)),
        verdicts=pd.DataFrame(columns=list(VERDICT_COLUMNS)),
        as_of=as_of,
    )

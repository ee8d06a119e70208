"""Recording the service's scores in the lead store, off the request path.

With ``LEADSCORE_RECORD_SCORES`` on, each worker hands every card it answers to a
``ScoreRecorder``: a queue drained by one background thread that writes what arrived, at
most every ``flush_seconds``, as one ``online`` run (``store.runs.write_run``): the
scores, the MQL events they cause and the leads' new states. A request never waits for
the database; a store that is down costs a logged error and the cards of that flush,
never an answer. Off by default: scoring stays read-only unless a team asks for it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from typing import Any

import pandas as pd

from serving.batch import stored_card
from store.engine import open_store
from store.runs import RunInfo, write_run

LOG = logging.getLogger("bentoml.leadscore.recorder")
FLUSH_SECONDS = 2.0
MAX_QUEUE = 100_000
"""Cards waiting to be written; beyond it new ones are dropped (and counted), so a stuck
database cannot grow a worker's memory without bound."""


class ScoreRecorder:
    """Writes the cards a worker answers into the lead store, in the background.

    Args:
        url: The lead store's URL (``Settings.store_url``).
        model_name: The served model's name (each run records it).
        flush_seconds: Longest time a card waits before it is written.
    """

    def __init__(self, url: str, model_name: str, flush_seconds: float = FLUSH_SECONDS) -> None:
        self.url = url
        self.model_name = model_name
        self.flush_seconds = flush_seconds
        self.dropped = 0
        self.written = 0
        self._queue: queue.Queue[tuple[dict[str, Any], dict[str, Any]] | None] = queue.Queue(
            MAX_QUEUE
        )
        self._engine = open_store(url)  # migrated here, once: a bad URL stops the worker
        self._thread = threading.Thread(target=self._loop, name="leadscore-recorder", daemon=True)
        self._thread.start()

    def record(self, cards: Sequence[dict[str, Any]], leads: Sequence[dict[str, Any]]) -> None:
        """Queue ``cards`` (with the CRM attributes of their ``leads``) to be written."""
        for card, lead in zip(cards, leads, strict=True):
            try:
                self._queue.put_nowait((card, lead))
            except queue.Full:
                self.dropped += 1

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every card queued so far is written (tests; shutdown)."""
        done = threading.Event()
        self._queue.put(({"__flush__": done}, {}))
        done.wait(timeout)

    def close(self) -> None:
        """Write what is queued and stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout=30)
        self._engine.dispose()

    def _loop(self) -> None:
        pending: list[tuple[dict[str, Any], dict[str, Any]]] = []
        stop = False
        while not stop:
            try:
                item = self._queue.get(timeout=self.flush_seconds)
            except queue.Empty:
                item = ({}, {})
            waiters = []
            while True:
                if item is None:
                    stop = True
                elif "__flush__" in item[0]:
                    waiters.append(item[0]["__flush__"])
                elif item[0]:
                    pending.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if pending:
                self._write(pending)
                pending = []
            for waiter in waiters:
                waiter.set()

    def _write(self, items: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        try:
            frame = _frame(items)
            by_version = frame.groupby("model_version", sort=False)
            for version, rows in by_version:  # a hot reload may change it mid-flush
                rows = rows.drop(columns="model_version").drop_duplicates("lead_id", keep="last")
                info = RunInfo(
                    source="online",
                    as_of=rows["as_of"].max(),
                    model_name=self.model_name,
                    model_version=str(version),
                    threshold=float(rows["threshold"].iloc[-1]),
                )
                write_run(self._engine, info, rows)
                self.written += len(rows)
        except Exception:  # the service keeps answering; the log says what was lost
            LOG.exception("could not record %d scores in the lead store", len(items))


def lead_attributes(request: Any) -> dict[str, Any]:
    """The CRM attributes of a scored request that the store groups funnels by
    (region, lead source, creation time); empty for a features-form request."""
    lead = getattr(request, "lead", None)
    if lead is None:
        return {}
    return {
        "region": getattr(lead, "region", None),
        "lead_source": getattr(lead, "lead_source", None),
        "created_at": getattr(lead, "created_at", None),
    }


def _naive(value: Any) -> pd.Timestamp | None:
    """A tz-naive UTC timestamp (None stays None)."""
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    return stamp if stamp.tzinfo is None else stamp.tz_convert("UTC").tz_localize(None)


def _frame(items: list[tuple[dict[str, Any], dict[str, Any]]]) -> pd.DataFrame:
    """The store's columns from (card, lead attributes) pairs."""
    rows = []
    for card, lead in items:
        reasons, actions = stored_card(card)
        rows.append(
            {
                "lead_id": str(card["lead_id"]),
                "as_of": _naive(card["as_of"]),
                "probability": card["probability"],
                "probability_low": card.get("probability_low"),
                "probability_high": card.get("probability_high"),
                "score": card["score"],
                "grade": card["grade"],
                "mql": card["mql"],
                "threshold": card["threshold"],
                "region": lead.get("region"),
                "lead_source": lead.get("lead_source"),
                "created_at": _naive(lead.get("created_at")),
                "reasons": reasons,
                "next_best_actions": actions,
                "model_version": (card.get("model") or {}).get("version", "unknown"),
            }
        )
    return pd.DataFrame(rows)

"""Hot reload: a running server picks up a new champion without a restart or a dropped request.

Each worker of a server that serves ``name@alias`` from an MLflow registry runs one
``ModelWatcher``: a daemon thread that asks the registry every
``LEADSCORE_RELOAD_SECONDS`` seconds (default 30; 0 turns it off) which version carries
the alias. When the alias has moved, the watcher imports that version into the BentoML
store (``serving.model_store.import_champion``: downloaded once, refused if it is not a
valid bundle), loads it, warms it up by scoring a synthetic lead, and only then swaps the
service's ``served`` attribute — one reference assignment, atomic in Python. A request
reads ``served`` once and scores with that model to the end, so requests in flight finish
on the old version and the next ones get the new one; nothing waits and nothing fails.

What can go wrong, and what the watcher does:

* the registry cannot be reached, or the alias is gone: a warning (once per distinct
  problem), the current model keeps serving, the next poll tries again;
* the new version cannot be downloaded or imported for another reason (a transient
  error, or another worker importing it into the same store at that moment): tried again
  a second later, twice, then a warning and a retry at the next poll;
* the new version is broken (not a valid bundle, fails to load or to score the warm-up
  lead): an error naming the version, the current model keeps serving, and that version is
  not tried again until the alias moves elsewhere (restart the server to force a retry).

The deployment hook pins the version imported at start-up (``PINNED_ENV``) so that all
workers start on the same model; the watcher moves past the pin as soon as the alias
moves. Its first poll runs right after the worker is ready, so a worker restarted after a
promotion (the pin is still the deployment's) catches up at once instead of a period later.
With several workers each one polls on its own, so during a switch they may briefly serve
different versions; every answer names the version that scored it (``model.version``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

from leadscore.settings import Settings
from serving.model_store import ModelNotAvailableError, import_champion, load_stored
from serving.scorer import ServedModel, score_requests, use_threads_for, warmup_request

logger = logging.getLogger("bentoml.leadscore.reload")
"""A child of BentoML's logger, so the lines appear in the server log as configured."""

FETCH_ATTEMPTS = 3
"""Tries (a second apart) to import a new version before waiting for the next poll."""


def model_key(version: str | None, run_id: str | None) -> tuple[str, str]:
    """What identifies a served version: registry version and training run."""
    return (str(version), str(run_id or ""))


def warm_up(model: ServedModel, top_reasons: int) -> None:
    """Compile and exercise ``model``'s whole scoring path on one synthetic lead.

    Raises:
        ValueError: when the answer is not a probability (the version cannot score).
    """
    use_threads_for(1)
    model.bundle.warmup()
    (card,) = score_requests(model, [warmup_request(model)], top_reasons)
    probability = float(card["probability"])
    if not (math.isfinite(probability) and 0.0 <= probability <= 1.0):
        raise ValueError(f"the warm-up lead scored {probability!r}, not a probability")


class ModelWatcher:
    """Polls the registry and hot-swaps ``target.served`` when the alias moves.

    Args:
        target: The object whose ``served`` attribute requests read (the service).
        settings: Where the registry is and which ``name@alias`` to follow.
        interval: Seconds between polls (> 0).
    """

    def __init__(self, target: Any, settings: Settings, interval: float) -> None:
        if not settings.tracking_uri or interval <= 0:
            raise ValueError("a watcher needs a registry and a positive interval")
        self.target = target
        self.settings = settings
        self.interval = float(interval)
        self.reloads = 0
        self.last_reload_seconds: float | None = None
        self._rejected: tuple[str, str] | None = None
        self._problem: str | None = None
        self._client = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leadscore-reload", daemon=True)

    def start(self) -> ModelWatcher:
        """Poll once now, then keep polling in the background.

        The first poll runs on the caller's thread: it imports MLflow's store and opens
        the registry (about a second of CPU), which would otherwise compete with the
        first requests for the GIL.
        """
        self._poll()
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop polling (a reload in progress finishes first)."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll()

    def _poll(self) -> None:
        try:
            self.check()
        except Exception:  # never let the thread die: the next poll tries again
            logger.exception("hot reload: unexpected error while checking the registry")

    def _registry_target(self) -> tuple[str, str]:
        """The (version, run) the alias points at now, from the registry."""
        from mlflow.tracking import MlflowClient

        from runtime import registry

        uri = self.settings.tracking_uri
        registry.require_store(uri)  # a missing SQLite store is reported, never created
        if self._client is None:
            self._client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        info = registry.version_info(
            self._client, self.settings.model_name, self.settings.model_alias
        )
        return model_key(info.version, info.run_id)

    def _report(self, problem: str | None) -> None:
        """Log a polling problem once (not at every poll), and its end."""
        if problem and problem != self._problem:
            logger.warning(
                "hot reload: %s; still serving version %s", problem, self.target.served.version
            )
        elif problem is None and self._problem is not None:
            logger.info("hot reload: the registry answers again")
        self._problem = problem

    def check(self) -> ServedModel | None:
        """One poll: swap in the alias's version if it moved and loads cleanly.

        Returns:
            The newly served model, or None when nothing changed.
        """
        with self._lock:
            current: ServedModel = self.target.served
            try:
                wanted = self._registry_target()
            except Exception as exc:  # unreachable registry, alias removed, store gone
                self._report(
                    f"cannot read {self.settings.model_name}@"
                    f"{self.settings.model_alias} from the registry "
                    f"({type(exc).__name__}: {exc})"
                )
                return None
            self._report(None)
            if wanted == model_key(current.version, current.run_id) or wanted == self._rejected:
                return None
            return self._switch(current, wanted)

    def _switch(self, current: ServedModel, wanted: tuple[str, str]) -> ServedModel | None:
        settings = self.settings
        started = time.perf_counter()
        logger.info(
            "hot reload: %s@%s moved to version %s (serving %s); loading it",
            settings.model_name,
            settings.model_alias,
            wanted[0],
            current.version,
        )
        stored = self._fetch(wanted, current)
        if stored is None:
            return None
        try:
            candidate = load_stored(stored, "registry", settings.model_alias)
            got = model_key(candidate.version, candidate.run_id)
            if got == model_key(current.version, current.run_id):
                return None  # the alias moved back meanwhile: nothing to do
            warm_up(candidate, settings.top_reasons)
        except Exception as exc:  # a broken version never replaces a good one
            self._reject(wanted, current, exc)
            return None
        self.target.served = candidate  # the swap: one reference assignment
        self._rejected = None
        self.reloads += 1
        self.last_reload_seconds = time.perf_counter() - started
        logger.info(
            "hot reload: now serving %s version %s (alias %s; was version %s), "
            "loaded and warmed up in %.2fs",
            candidate.name,
            candidate.version,
            candidate.alias,
            current.version,
            self.last_reload_seconds,
        )
        return candidate

    def _fetch(self, wanted: tuple[str, str], current: ServedModel) -> Any:
        """Import the alias's version into the BentoML store; None when it cannot be.

        A transient failure (the registry, the network, another worker importing the same
        version into a shared store at the same moment) is tried again a few times a
        second apart, then at the next poll; a broken artifact is rejected.
        """
        settings = self.settings
        for attempt in range(FETCH_ATTEMPTS):
            try:
                return import_champion(
                    settings.tracking_uri,
                    settings.model_name,
                    settings.model_alias,
                    settings.bentoml_home,
                )
            except Exception as exc:  # any failure keeps the current model
                if not (isinstance(exc, ModelNotAvailableError) or _is_transient(exc)):
                    self._reject(wanted, current, exc)
                    return None
                if attempt + 1 == FETCH_ATTEMPTS or self._stop.wait(1.0):
                    logger.warning(
                        "hot reload: cannot fetch version %s (%s: %s); still "
                        "serving version %s, retrying in %gs",
                        wanted[0],
                        type(exc).__name__,
                        exc,
                        current.version,
                        self.interval,
                    )
                    return None
        return None

    def _reject(self, wanted: tuple[str, str], current: ServedModel, exc: Exception) -> None:
        self._rejected = wanted
        logger.error(
            "hot reload: version %s of %s cannot be served (%s: %s); still serving "
            "version %s. It is not retried until the alias moves again (or the "
            "server restarts)",
            wanted[0],
            self.settings.model_name,
            type(exc).__name__,
            exc,
            current.version,
        )


def _is_transient(exc: Exception) -> bool:
    """Network and registry hiccups are retried; a broken artifact is not."""
    from mlflow.exceptions import MlflowException

    from runtime.bundle import ModelArtifactError

    if isinstance(exc, ModelArtifactError):
        return False
    return isinstance(exc, OSError | MlflowException) or type(exc).__module__.startswith(
        ("bentoml", "requests", "urllib3", "sqlalchemy")
    )


def watch_registry(service: Any) -> ModelWatcher | None:
    """Start hot reload for a service that serves a registry alias (``service.served``).

    Returns:
        The running watcher, or None when reload is off (``LEADSCORE_RELOAD_SECONDS=0``)
        or the model does not come from a registry (a bundle folder, a built Bento).
    """
    settings: Settings = service.settings
    served: ServedModel = service.served
    if (
        served.source != "registry"
        or not settings.tracking_uri
        or settings.model_dir is not None
        or settings.reload_seconds <= 0
    ):
        return None
    logger.info(
        "hot reload: checking %s@%s every %gs",
        settings.model_name,
        settings.model_alias,
        settings.reload_seconds,
    )
    return ModelWatcher(service, settings, settings.reload_seconds).start()

"""A small but real champion in a real MLflow store, for tests and benchmarks.

Simulates a few thousand leads, trains on their point-in-time training set with the real
training stage (``training.train.run_training``) and registers the result as
``lead-scoring@champion`` in an MLflow SQLite store, so the service is exercised exactly
as in production: registry → BentoML store → bundle. The ``session_*`` helpers share
one champion and one live server between test modules of a pytest session.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from features.contract import validate
from features.pipeline import PipelineConfig
from serving.settings import Settings

if TYPE_CHECKING:
    from serving.launch import RunningServer


@dataclass(frozen=True)
class Champion:
    """Where a registered test champion lives and the data it was trained on."""

    tracking_uri: str
    name: str
    alias: str
    version: str
    tables: dict[str, pd.DataFrame]
    data_dir: Path


def simulated_tables(
    n_leads: int = 1500, seed: int = 7, months: int = 12
) -> dict[str, pd.DataFrame]:
    """Validated contract tables of a small simulated funnel."""
    from features.simulate import simulate

    return validate(simulate(n_leads, seed=seed, months=months).tables())


def register_champion(
    store_dir: Path,
    n_leads: int = 1500,
    seed: int = 7,
    name: str = "lead-scoring",
) -> Champion:
    """Train on simulated data with the real training stage and register the model.

    The first version registered in a new store becomes ``name@champion``.

    Args:
        store_dir: Folder for ``mlflow.db``, the artifacts and the data (created).
        n_leads: Simulated leads (1,500 train in seconds).
        seed: Simulation seed.
        name: Registered model name.
    """
    from features.io import write_tables
    from features.pipeline import build_training_set
    from serving.model_store import quiet_telemetry
    from training.train import TrainConfig, run_training

    quiet_telemetry()
    store_dir.mkdir(parents=True, exist_ok=True)
    tables = simulated_tables(n_leads, seed)
    data_dir = write_tables(tables, store_dir / "data")
    tracking_uri = f"sqlite:///{(store_dir / 'mlflow.db').resolve().as_posix()}"
    training_set = build_training_set(tables, PipelineConfig(horizon_days=60))
    # A LightGBM champion: the serving tests check its SHAP values against shap.TreeExplainer.
    config = TrainConfig(
        num_boost_round=200,
        early_stopping_rounds=20,
        num_threads=1,
        params={"num_leaves": 15},
        model="lightgbm",
    )
    result = run_training(
        training_set, config=config, tracking_uri=tracking_uri, store_dir=store_dir, model_name=name
    )
    return Champion(tracking_uri, name, "champion", str(result.version), tables, data_dir)


_SESSION: dict[str, Any] = {}
"""Shared across test modules of one pytest session: training and a server start once."""


def session_champion(root: Path) -> Champion:
    """The session's registered champion (trained on first use, under ``root``)."""
    if "champion" not in _SESSION:
        _SESSION["champion"] = register_champion(root / "registry")
    return _SESSION["champion"]


def session_samples(root: Path) -> Path:
    """The session's sample payloads, written from the champion's data."""
    if "samples" not in _SESSION:
        from serving.samples import write_samples

        _SESSION["samples"] = write_samples(session_champion(root).tables, root / "samples", 6)
    return _SESSION["samples"]


def session_store(root: Path) -> str:
    """URL of the session's lead store: an SQLite file under ``root``, migrated once, so
    the served routes that read or write the store (``/feedback``, ``/report``) have one."""
    if "store" not in _SESSION:
        from store.engine import open_store

        url = f"sqlite:///{(root / 'leadscore.db').resolve().as_posix()}"
        open_store(url).dispose()
        _SESSION["store"] = url
    return _SESSION["store"]


def session_settings(root: Path) -> Settings:
    """Settings that serve the session's champion from its registry and BentoML home, with
    the session's lead store and a home under ``root`` (nothing lands in the repository)."""
    return Settings(
        home=root / "home",
        tracking_uri=session_champion(root).tracking_uri,
        samples_dir=session_samples(root),
        bentoml_home=root / "bentoml",
        db_url=session_store(root),
    )


def session_server(root: Path) -> RunningServer:
    """One real ``bentoml serve`` for the whole session, stopped when the process exits."""
    server = _SESSION.get("server")
    if server is None or server.process.poll() is not None:
        from serving.launch import start_server

        server = start_server(session_settings(root), log_path=root / "server.log")
        atexit.register(server.stop)
        _SESSION["server"] = server
    return server


@contextlib.contextmanager
def service_client(settings: Settings, env: dict[str, str] | None = None):
    """The BentoML service in this process behind Starlette's ``TestClient``.

    The service reads its settings from the environment, so they are set for the
    client's lifetime (and restored after). BentoML's Prometheus metrics are turned off
    for in-process apps: they register process-wide, so a second app in the same test
    session would collide with the first (the real-server tests keep them on).

    Args:
        settings: What to serve.
        env: More environment variables for the service (e.g. ``LEADSCORE_API_TOKEN``).
    """
    from _bentoml_impl.server.app import ServiceAppFactory
    from starlette.testclient import TestClient

    from serving.model_store import PINNED_ENV
    from serving.service import LeadScoring

    names = (
        "LEADSCORE_MODEL_DIR",
        "MLFLOW_TRACKING_URI",
        "LEADSCORE_TRACKING_URI",
        "LEADSCORE_TOP_REASONS",
        "LEADSCORE_API_TOKEN",
        PINNED_ENV,
    )
    wanted = {"LEADSCORE_RELOAD_SECONDS": "0", **settings.to_env(), **(env or {})}
    saved = {k: os.environ.get(k) for k in (*names, *wanted)}
    try:
        for key in names:
            os.environ.pop(key, None)
        os.environ.update(wanted)
        LeadScoring.inject_config()  # what ``LeadScoring.to_asgi()`` does, minus metrics
        app = ServiceAppFactory(LeadScoring, is_main=True, enable_metrics=False)()
        # BentoML keeps one "current service" per process and clears it when an app shuts
        # down: a client opened inside another (a second model served for one test) must
        # hand the outer one its service back.
        import importlib

        bentoml_service = importlib.import_module("_bentoml_sdk.service")

        outer = bentoml_service._current_service
        try:
            with TestClient(app=app) as client:
                yield client
        finally:
            if outer is not None:
                bentoml_service.set_current_service(outer)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def card_differences(a: Any, b: Any, tol: float = 1e-9, path: str = "") -> list[str]:
    """Where two score cards (or parts of them) differ, floats compared to ``tol``.

    Exact SHAP sums can differ in the last bits between batch compositions (the order
    of floating-point additions changes), so equality of answers is checked this way.
    """
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in card_differences(a[k], b[k], tol, f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: lengths {len(a)} != {len(b)}"]
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in card_differences(x, y, tol, f"{path}[{i}]")
        ]
    if isinstance(a, float) and isinstance(b, float | int) and not isinstance(b, bool):
        return [] if abs(a - b) <= tol * max(1.0, abs(a)) else [f"{path}: {a} != {b}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def session_empty_registry(root: Path) -> str:
    """Tracking URI of an MLflow store with no registered model (created once: MLflow's
    schema migrations take seconds)."""
    if "empty" not in _SESSION:
        from runtime import registry

        folder = root / "empty-registry"
        folder.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{(folder / 'mlflow.db').resolve().as_posix()}"
        with registry.tracking(uri) as client:  # creates the (empty) store
            client.search_registered_models()
        _SESSION["empty"] = uri
    return _SESSION["empty"]


def session_root(basetemp: Path) -> Path:
    """The session's folder for registry, BentoML home, samples and logs.

    Also switches telemetry off and points ``BENTOML_HOME`` there (unless set), so
    nothing a test does touches the user's own BentoML store.
    """
    from serving.model_store import quiet_telemetry

    quiet_telemetry()
    path = basetemp / "serving"
    path.mkdir(exist_ok=True)
    os.environ.setdefault("BENTOML_HOME", str(path / "bentoml"))
    return path

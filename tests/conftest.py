"""Shared fixtures: a small simulated funnel and its training set, the serving tests' champion
and live server, and a headless Chromium — each built once per session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import serving_support as testing

from features.build import write_training_set
from features.contract import validate
from features.pipeline import PipelineConfig, TrainingSet, build_training_set
from features.simulate import Simulation, simulate

SIM_LEADS = 6000
SIM_SEED = 3


@pytest.fixture(scope="session")
def simulation() -> Simulation:
    """A simulated funnel small enough for CI, large enough to train a real model."""
    return simulate(SIM_LEADS, seed=SIM_SEED)


@pytest.fixture(scope="session")
def training_set(simulation: Simulation) -> TrainingSet:
    """Monthly snapshots with a 90-day horizon (the pipeline's defaults)."""
    return build_training_set(validate(simulation.tables()), PipelineConfig())


@pytest.fixture(scope="session")
def training_set_path(training_set: TrainingSet, tmp_path_factory) -> Path:
    """The same training set written as ``leadscore features`` writes it (Parquet + JSON)."""
    return write_training_set(training_set, tmp_path_factory.mktemp("data") / "training.parquet")


@pytest.fixture(scope="session")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared folder of the serving tests: data, MLflow store, BentoML home (serving_support)."""
    return testing.session_root(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def champion(root: Path) -> testing.Champion:
    """A small champion trained and registered with the real ``run_training``."""
    return testing.session_champion(root)


@pytest.fixture(scope="session")
def server(root: Path):
    """A real ``bentoml serve`` of the champion on a free loopback port."""
    return testing.session_server(root)


CHROMIUM = os.environ.get("LEADSCORE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def missing(what: str, under_ci: str, elsewhere: str) -> None:
    """Something a test needs is absent: a failure under CI (``CI`` set, as CI services
    do), where it must be there, and a skip elsewhere.

    Args:
        what: What is missing, and where it was looked for.
        under_ci: Why CI must have it (who provides it there).
        elsewhere: How a developer gets it.
    """
    if os.environ.get("CI"):
        pytest.fail(f"{what}: {under_ci}", pytrace=False)
    pytest.skip(f"{what} ({elsewhere})")


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright; a failure under CI, a skip elsewhere."""
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        missing(
            f"no Chromium at {CHROMIUM}",
            ".ci/run installs Debian's chromium",
            "apt-get install chromium",
        )
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
"""The real public data sets (``../shared/datasets`` next to the repository)."""


@pytest.fixture(scope="session")
def shared_data():
    """``find(*parts)``: a path under the real data sets; a failure under CI, a skip
    elsewhere, when it is absent."""

    def find(*parts: str) -> Path:
        path = SHARED_DATASETS.joinpath(*parts)
        if not path.exists():
            missing(
                f"real data not found at {path}",
                "CI must provide ../shared/datasets next to the repository",
                "put the data sets in ../shared/datasets next to the repo",
            )
        return path

    return find


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server on loopback for the session; a failure under CI, a skip
    elsewhere, when Debian's ``postgresql`` is not installed."""
    import postgres_support

    bin_dir = postgres_support.find_bin()
    if bin_dir is None:
        missing(
            "no PostgreSQL server binaries under /usr/lib/postgresql",
            ".ci/run installs Debian's postgresql",
            "apt-get install postgresql",
        )
    server = postgres_support.start(bin_dir)
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty lead store: an SQLite file under ``tmp_path``, then a fresh database on
    the session's PostgreSQL server (every store test runs against both)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'leadscore.db'}"
    server = request.getfixturevalue("postgres_server")
    return server.create_database(f"t{abs(hash(request.node.nodeid)) % 10**12}")

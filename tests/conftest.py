"""Shared fixtures: one small simulated funnel and its training set, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

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

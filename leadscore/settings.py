"""Settings, read once at the entry point and passed down as explicit arguments.

Stages never read the environment themselves; the CLI builds one frozen ``Settings``
and hands its fields to the functions it calls.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class Settings(BaseModel):
    """Where outputs land and which registry to talk to.

    Attributes:
        home: Folder for everything the CLI writes by default (``LEADSCORE_HOME``).
        tracking_uri: MLflow tracking URI (``MLFLOW_TRACKING_URI``; default: an embedded
            SQLite store in ``home``, with run artifacts in ``home/mlruns``).
        experiment: MLflow experiment name (``LEADSCORE_EXPERIMENT``).
        model_name: Registered model name (``LEADSCORE_MODEL_NAME``).
    """

    model_config = ConfigDict(frozen=True)

    home: Path
    tracking_uri: str
    experiment: str = "lead-scoring"
    model_name: str = "lead-scoring"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables (``os.environ`` by default)."""
        env = os.environ if env is None else env
        home = Path(env.get("LEADSCORE_HOME", "outputs")).resolve()
        tracking = env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}"
        return cls(
            home=home,
            tracking_uri=tracking,
            experiment=env.get("LEADSCORE_EXPERIMENT", "lead-scoring"),
            model_name=env.get("LEADSCORE_MODEL_NAME", "lead-scoring"),
        )

"""Service settings, read once from environment variables when the service starts.

Environment variables rather than a config file because ``bentoml serve``, a built Bento
and a container all pass them through unchanged, and the CLI can set them for the
subprocess it launches. Nothing here is read at import time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL_NAME = "lead-scoring"
DEFAULT_ALIAS = "champion"
DEFAULT_TOP_REASONS = 5
DEFAULT_RELOAD_SECONDS = 30.0
"""How often a server polls the registry for a moved alias (``serving.reload``)."""


@dataclass(frozen=True)
class Settings:
    """Where the service finds its model and its sample leads.

    Attributes:
        tracking_uri: MLflow tracking/registry URI (``LEADSCORE_TRACKING_URI``, else
            ``MLFLOW_TRACKING_URI``). When set, the service serves ``name@alias`` from
            that registry; when unset, it serves the model packaged in the Bento.
        model_name: Registered model name (``LEADSCORE_MODEL_NAME``).
        model_alias: Registry alias to serve (``LEADSCORE_MODEL_ALIAS``).
        model_dir: A bundle folder to serve directly, bypassing every registry
            (``LEADSCORE_MODEL_DIR``); for debugging a model before it is registered.
        samples_dir: Folder of sample lead payloads listed on the page
            (``LEADSCORE_SAMPLES_DIR``); None hides the picker.
        top_reasons: Default number of positive and of negative reasons per lead
            (``LEADSCORE_TOP_REASONS``).
        bentoml_home: BentoML's home, whose model store receives the champion
            (``BENTOML_HOME``; None: BentoML's default, ``~/bentoml``).
        reload_seconds: How often each worker asks the registry where the alias points,
            and hot-reloads a new version (``LEADSCORE_RELOAD_SECONDS``; 0 turns it off;
            only when serving from a registry, see ``serving.reload``).
        workers: Worker processes of ``bentoml serve`` (``LEADSCORE_WORKERS``: a number,
            or ``cpu_count`` for one per CPU; default 1). Each worker holds its own copy of
            the model and answers on its own core, so requests per second grow with them.
    """

    tracking_uri: str | None = None
    model_name: str = DEFAULT_MODEL_NAME
    model_alias: str = DEFAULT_ALIAS
    model_dir: Path | None = None
    samples_dir: Path | None = None
    top_reasons: int = DEFAULT_TOP_REASONS
    bentoml_home: Path | None = None
    reload_seconds: float = DEFAULT_RELOAD_SECONDS
    workers: int | str = 1

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``env`` (default: ``os.environ``).

        Raises:
            ValueError: naming the variable when a value cannot be used.
        """
        env = os.environ if env is None else env

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        top = text("LEADSCORE_TOP_REASONS")
        try:
            top_reasons = int(top) if top else DEFAULT_TOP_REASONS
        except ValueError as exc:
            raise ValueError(f"LEADSCORE_TOP_REASONS must be an integer, got {top!r}") from exc
        if not 1 <= top_reasons <= 20:
            raise ValueError(f"LEADSCORE_TOP_REASONS must be between 1 and 20, got {top_reasons}")
        reload = text("LEADSCORE_RELOAD_SECONDS")
        try:
            reload_seconds = float(reload) if reload else DEFAULT_RELOAD_SECONDS
        except ValueError as exc:
            raise ValueError("LEADSCORE_RELOAD_SECONDS must be a number of seconds, got "
                             f"{reload!r}") from exc
        if not 0 <= reload_seconds <= 86_400:  # also refuses nan and inf
            raise ValueError("LEADSCORE_RELOAD_SECONDS must be between 0 (off) and 86400, "
                             f"got {reload!r}")
        workers: int | str = text("LEADSCORE_WORKERS") or 1
        if workers != "cpu_count":
            try:
                workers = int(workers)
            except ValueError as exc:
                raise ValueError("LEADSCORE_WORKERS must be a number or cpu_count, got "
                                 f"{workers!r}") from exc
            if not 1 <= workers <= 256:
                raise ValueError(f"LEADSCORE_WORKERS must be between 1 and 256, got {workers}")
        model_dir = text("LEADSCORE_MODEL_DIR")
        samples_dir = text("LEADSCORE_SAMPLES_DIR")
        home = text("BENTOML_HOME")
        return cls(
            tracking_uri=text("LEADSCORE_TRACKING_URI") or text("MLFLOW_TRACKING_URI"),
            model_name=text("LEADSCORE_MODEL_NAME") or DEFAULT_MODEL_NAME,
            model_alias=text("LEADSCORE_MODEL_ALIAS") or DEFAULT_ALIAS,
            model_dir=Path(model_dir) if model_dir else None,
            samples_dir=Path(samples_dir) if samples_dir else None,
            top_reasons=top_reasons,
            bentoml_home=Path(home) if home else None,
            reload_seconds=reload_seconds,
            workers=workers,
        )

    def to_env(self) -> dict[str, str]:
        """The environment variables that reproduce these settings in a subprocess."""
        env = {
            "LEADSCORE_MODEL_NAME": self.model_name,
            "LEADSCORE_MODEL_ALIAS": self.model_alias,
            "LEADSCORE_TOP_REASONS": str(self.top_reasons),
            "LEADSCORE_RELOAD_SECONDS": repr(float(self.reload_seconds)),
            "LEADSCORE_WORKERS": str(self.workers),
        }
        if self.tracking_uri:
            env["LEADSCORE_TRACKING_URI"] = self.tracking_uri
        if self.model_dir:
            env["LEADSCORE_MODEL_DIR"] = str(self.model_dir)
        if self.samples_dir:
            env["LEADSCORE_SAMPLES_DIR"] = str(self.samples_dir)
        if self.bentoml_home:
            env["BENTOML_HOME"] = str(self.bentoml_home)
        return env

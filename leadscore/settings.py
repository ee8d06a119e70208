"""The one settings model of leadscore, read once at an entry point and passed down.

The CLI reads it in its callback, the service in its start-up hook and in each worker;
stages never read the environment themselves, they take the fields they need as
arguments. Environment variables rather than a config file, because ``bentoml serve``, a
built Bento and a container all pass them through unchanged, and the CLI can hand them to
the server it launches (``Settings.to_env``). Nothing here is read at import time:
``Settings(...)`` takes only what it is given, ``Settings.from_env()`` reads the environment.

The default names live here, once: the MLflow experiment and registered model
(``DEFAULT_EXPERIMENT``, ``DEFAULT_MODEL_NAME``) and the two registry aliases
(``CHAMPION_ALIAS``, ``CHALLENGER_ALIAS``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from leadscore.errors import LeadscoreError

DEFAULT_EXPERIMENT = "lead-scoring"
"""MLflow experiment that training runs are logged to."""
DEFAULT_MODEL_NAME = "lead-scoring"
"""Registered model name in MLflow (and the served model's name in the BentoML store)."""
CHAMPION_ALIAS = "champion"
"""Registry alias of the model in production: what ``serve`` and ``score`` use."""
CHALLENGER_ALIAS = "challenger"
"""Registry alias of the latest trained model, until ``promote`` makes it the champion."""
DEFAULT_HOME = "outputs"
DEFAULT_TOP_REASONS = 5
DEFAULT_RELOAD_SECONDS = 30.0
"""How often a server polls the registry for a moved alias (``serving.reload``)."""
CPU_COUNT = "cpu_count"
"""``LEADSCORE_WORKERS`` value for one server worker per CPU."""

_READING: ContextVar[Mapping[str, str] | None] = ContextVar("leadscore_settings_env", default=None)
"""The environment ``Settings.from_env`` is reading right now (None: only arguments)."""


class SettingsError(LeadscoreError, ValueError):
    """An environment variable holds a value leadscore cannot use; the message names it."""


class _EnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, over a given mapping, with blank values unset.

    A value of only spaces counts as unset, as an empty one does, so ``VAR= `` in a
    container spec means the default rather than an error.
    """

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._env = env
        super().__init__(settings_cls, case_sensitive=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            key: value.strip()
            for key, value in self._env.items()
            if isinstance(value, str) and value.strip()
        }

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        return value  # no JSON decoding: every setting is a plain value


def _read(default: Any, field: str, *variables: str) -> Any:
    """A field that takes ``field=`` as an argument, else the first of ``variables`` set."""
    return Field(default=default, validation_alias=AliasChoices(field, *variables))


class Settings(BaseSettings):
    """Where outputs land, which registry and model to use, and how the service runs.

    Attributes:
        home: Folder for everything the CLI writes by default (``LEADSCORE_HOME``,
            default ``outputs``, made absolute).
        tracking_uri: MLflow tracking/registry URI (``LEADSCORE_TRACKING_URI``, else
            ``MLFLOW_TRACKING_URI``). The service serves ``name@alias`` from it when set
            and the model packaged in the Bento when not; the CLI falls back to an
            embedded store in ``home`` (``registry_uri``).
        experiment: MLflow experiment name (``LEADSCORE_EXPERIMENT``).
        model_name: Registered model name (``LEADSCORE_MODEL_NAME``).
        model_alias: Registry alias to serve (``LEADSCORE_MODEL_ALIAS``).
        model_dir: A bundle folder to serve directly, bypassing every registry
            (``LEADSCORE_MODEL_DIR``); for debugging a model before it is registered.
        samples_dir: Folder of sample lead payloads listed on the page
            (``LEADSCORE_SAMPLES_DIR``); None hides the picker.
        top_reasons: Default number of positive and of negative reasons per lead
            (``LEADSCORE_TOP_REASONS``, 1 to 20).
        bentoml_home: BentoML's home, whose model store receives the champion
            (``BENTOML_HOME``; None: BentoML's default, ``~/bentoml``).
        reload_seconds: How often each worker asks the registry where the alias points,
            and hot-reloads a new version (``LEADSCORE_RELOAD_SECONDS``, 0 to 86400; 0
            turns it off; only when serving from a registry, see ``serving.reload``).
        db_url: The lead store's database (``LEADSCORE_DB_URL``, e.g.
            ``postgresql://user@host/leadscore``); None: the embedded SQLite file
            ``home/leadscore.db`` (``store_url``).
        record_scores: Whether the service stores every score it gives in the lead store
            (``LEADSCORE_RECORD_SCORES``, default off: scoring stays read-only).
        mql_capacity: MQLs the sales team can work per week, which the threshold
            diagnostics judge volume against (``LEADSCORE_MQL_CAPACITY``: ``120`` for the
            team, or ``NA=60,EMEA=40,APAC=20`` per region); None: volume not judged.
        workers: Worker processes of ``bentoml serve`` (``LEADSCORE_WORKERS``: 1 to 256,
            or ``cpu_count`` for one per CPU; default 1). Each worker holds its own copy of
            the model and answers on its own core, so requests per second grow with them.
        slack_webhook_url: Slack incoming webhook(s) alerts go to
            (``LEADSCORE_SLACK_WEBHOOK_URL``: one URL, or ``NA=https://...,*=https://...``
            per region, ``*`` for the rest); kept as region -> URL.
        slack_token: Bot token for ``chat.postMessage`` (``LEADSCORE_SLACK_TOKEN``).
        slack_channels: Channels for ``chat.postMessage`` (``LEADSCORE_SLACK_CHANNELS``:
            ``#sales`` or ``NA=#sales-na,EMEA=#sales-emea,*=#sales``); needs the token.
        slack_api_url: Slack's Web API base URL (``LEADSCORE_SLACK_API_URL``; None: Slack's
            own; a proxy or a test server otherwise).
        webhook_url: A generic webhook every alert is POSTed to (``LEADSCORE_WEBHOOK_URL``).
        webhook_secret: The shared secret its ``X-Leadscore-Signature`` is made with
            (``LEADSCORE_WEBHOOK_SECRET``; required with the URL).
        alert_jump: Points a lead's score must rise between two consecutive scores to raise
            an alert (``LEADSCORE_ALERT_JUMP``, 1 to 100; None: no jump alerts).
        alert_digest_minutes: At most one Slack message per destination per this many
            minutes, listing the alerts (``LEADSCORE_ALERT_DIGEST_MINUTES``; 0: one message
            per alert).
        alert_max_attempts: Delivery attempts before an alert is a dead letter
            (``LEADSCORE_ALERT_MAX_ATTEMPTS``, 1 to 100, default 5).
        alert_timeout: Seconds a receiver may take to answer (``LEADSCORE_ALERT_TIMEOUT``).
        public_url: The worklist's public URL, linked from alerts as ``<url>/#lead=<id>``
            (``LEADSCORE_PUBLIC_URL``; None: alerts carry no link).
    """

    model_config = SettingsConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    home: Path = Field(
        default=Path(DEFAULT_HOME),
        validate_default=True,
        validation_alias=AliasChoices("home", "LEADSCORE_HOME"),
    )
    tracking_uri: str | None = _read(
        None, "tracking_uri", "LEADSCORE_TRACKING_URI", "MLFLOW_TRACKING_URI"
    )
    experiment: str = _read(DEFAULT_EXPERIMENT, "experiment", "LEADSCORE_EXPERIMENT")
    model_name: str = _read(DEFAULT_MODEL_NAME, "model_name", "LEADSCORE_MODEL_NAME")
    model_alias: str = _read(CHAMPION_ALIAS, "model_alias", "LEADSCORE_MODEL_ALIAS")
    model_dir: Path | None = _read(None, "model_dir", "LEADSCORE_MODEL_DIR")
    samples_dir: Path | None = _read(None, "samples_dir", "LEADSCORE_SAMPLES_DIR")
    top_reasons: int = _read(DEFAULT_TOP_REASONS, "top_reasons", "LEADSCORE_TOP_REASONS")
    bentoml_home: Path | None = _read(None, "bentoml_home", "BENTOML_HOME")
    reload_seconds: float = _read(
        DEFAULT_RELOAD_SECONDS, "reload_seconds", "LEADSCORE_RELOAD_SECONDS"
    )
    workers: int | Literal["cpu_count"] = _read(1, "workers", "LEADSCORE_WORKERS")
    db_url: str | None = _read(None, "db_url", "LEADSCORE_DB_URL")
    record_scores: bool = _read(False, "record_scores", "LEADSCORE_RECORD_SCORES")
    mql_capacity: float | dict[str, float] | None = _read(
        None, "mql_capacity", "LEADSCORE_MQL_CAPACITY"
    )
    slack_webhook_url: dict[str, str] | None = _read(
        None, "slack_webhook_url", "LEADSCORE_SLACK_WEBHOOK_URL"
    )
    slack_token: str | None = Field(
        default=None,
        validation_alias=AliasChoices("slack_token", "LEADSCORE_SLACK_TOKEN"),
        repr=False,  # a secret: never in a repr, a log line or a traceback
    )
    slack_channels: dict[str, str] | None = _read(
        None, "slack_channels", "LEADSCORE_SLACK_CHANNELS"
    )
    slack_api_url: str | None = _read(None, "slack_api_url", "LEADSCORE_SLACK_API_URL")
    webhook_url: str | None = _read(None, "webhook_url", "LEADSCORE_WEBHOOK_URL")
    webhook_secret: str | None = Field(
        default=None,
        validation_alias=AliasChoices("webhook_secret", "LEADSCORE_WEBHOOK_SECRET"),
        repr=False,
    )
    alert_jump: int | None = _read(None, "alert_jump", "LEADSCORE_ALERT_JUMP")
    alert_digest_minutes: float = _read(
        0.0, "alert_digest_minutes", "LEADSCORE_ALERT_DIGEST_MINUTES"
    )
    alert_max_attempts: int = _read(5, "alert_max_attempts", "LEADSCORE_ALERT_MAX_ATTEMPTS")
    alert_timeout: float = _read(10.0, "alert_timeout", "LEADSCORE_ALERT_TIMEOUT")
    public_url: str | None = _read(None, "public_url", "LEADSCORE_PUBLIC_URL")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments first, then the environment only while ``from_env`` reads it.

        So ``Settings(...)`` built in code (tests, benchmarks, the CLI's overrides) never
        picks up a stray variable, and no ``.env`` file or secrets folder is consulted.
        """
        env = _READING.get()
        return (init_settings,) if env is None else (init_settings, _EnvSource(settings_cls, env))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read the settings from ``env`` (default: ``os.environ``); ``overrides`` win.

        Raises:
            SettingsError: naming the variable when a value cannot be used.
        """
        token = _READING.set(os.environ if env is None else env)
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise SettingsError(_one_line(exc)) from None
        finally:
            _READING.reset(token)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied and checked like the environment's values.

        Raises:
            SettingsError: naming the variable when a value cannot be used.
        """
        try:
            return type(self)(**{**self.model_dump(), **changes})
        except ValidationError as exc:
            raise SettingsError(_one_line(exc)) from None

    @property
    def registry_uri(self) -> str:
        """The tracking URI, or the embedded SQLite store in ``home`` when none is set.

        The CLI always has a registry to write to; the service only when one is named.
        """
        return self.tracking_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def store_url(self) -> str:
        """The lead store's URL: ``LEADSCORE_DB_URL``, else SQLite in ``home``."""
        return self.db_url or f"sqlite:///{self.home / 'leadscore.db'}"

    def to_env(self) -> dict[str, str]:
        """The environment variables that reproduce these settings in a subprocess."""
        env = {
            "LEADSCORE_HOME": str(self.home),
            "LEADSCORE_EXPERIMENT": self.experiment,
            "LEADSCORE_MODEL_NAME": self.model_name,
            "LEADSCORE_MODEL_ALIAS": self.model_alias,
            "LEADSCORE_TOP_REASONS": str(self.top_reasons),
            "LEADSCORE_RELOAD_SECONDS": repr(float(self.reload_seconds)),
            "LEADSCORE_WORKERS": str(self.workers),
            "LEADSCORE_RECORD_SCORES": "true" if self.record_scores else "false",
        }
        if self.db_url:
            env["LEADSCORE_DB_URL"] = self.db_url
        if self.mql_capacity is not None:
            env["LEADSCORE_MQL_CAPACITY"] = capacity_text(self.mql_capacity)
        env.update(self._alert_env())
        if self.tracking_uri:
            env["LEADSCORE_TRACKING_URI"] = self.tracking_uri
        if self.model_dir:
            env["LEADSCORE_MODEL_DIR"] = str(self.model_dir)
        if self.samples_dir:
            env["LEADSCORE_SAMPLES_DIR"] = str(self.samples_dir)
        if self.bentoml_home:
            env["BENTOML_HOME"] = str(self.bentoml_home)
        return env

    def _alert_env(self) -> dict[str, str]:
        """The alert settings as ``to_env`` writes them (unset ones left out)."""
        env = {
            "LEADSCORE_ALERT_DIGEST_MINUTES": repr(float(self.alert_digest_minutes)),
            "LEADSCORE_ALERT_MAX_ATTEMPTS": str(self.alert_max_attempts),
            "LEADSCORE_ALERT_TIMEOUT": repr(float(self.alert_timeout)),
        }
        optional = {
            "LEADSCORE_SLACK_WEBHOOK_URL": self.slack_webhook_url,
            "LEADSCORE_SLACK_CHANNELS": self.slack_channels,
            "LEADSCORE_SLACK_TOKEN": self.slack_token,
            "LEADSCORE_SLACK_API_URL": self.slack_api_url,
            "LEADSCORE_WEBHOOK_URL": self.webhook_url,
            "LEADSCORE_WEBHOOK_SECRET": self.webhook_secret,
            "LEADSCORE_ALERT_JUMP": self.alert_jump,
            "LEADSCORE_PUBLIC_URL": self.public_url,
        }
        for name, value in optional.items():
            if isinstance(value, dict):
                env[name] = ",".join(f"{k}={v}" for k, v in value.items())
            elif value is not None:
                env[name] = str(value)
        return env

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.resolve()

    @field_validator("top_reasons", mode="before")
    @classmethod
    def _top_reasons(cls, value: Any) -> int:
        number = _integer("LEADSCORE_TOP_REASONS", value, "an integer")
        if not 1 <= number <= 20:
            raise ValueError(f"LEADSCORE_TOP_REASONS must be between 1 and 20, got {number}")
        return number

    @field_validator("reload_seconds", mode="before")
    @classmethod
    def _reload_seconds(cls, value: Any) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"LEADSCORE_RELOAD_SECONDS must be a number of seconds, got {value!r}"
            ) from None
        if math.isnan(seconds) or not 0 <= seconds <= 86_400:  # also refuses inf
            raise ValueError(
                f"LEADSCORE_RELOAD_SECONDS must be between 0 (off) and 86400, got {value!r}"
            )
        return seconds

    @field_validator("record_scores", mode="before")
    @classmethod
    def _record_scores(cls, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"LEADSCORE_RECORD_SCORES must be true or false, got {value!r}")

    @field_validator("mql_capacity", mode="before")
    @classmethod
    def _mql_capacity(cls, value: Any) -> float | dict[str, float] | None:
        return None if value is None else parse_capacity(value, "LEADSCORE_MQL_CAPACITY")

    @field_validator("slack_webhook_url", mode="before")
    @classmethod
    def _slack_webhook_url(cls, value: Any) -> dict[str, str] | None:
        return parse_routes(value, "LEADSCORE_SLACK_WEBHOOK_URL", url=True)

    @field_validator("slack_channels", mode="before")
    @classmethod
    def _slack_channels(cls, value: Any) -> dict[str, str] | None:
        return parse_routes(value, "LEADSCORE_SLACK_CHANNELS", url=False)

    @field_validator("slack_api_url", "webhook_url", "public_url", mode="before")
    @classmethod
    def _urls(cls, value: Any, info: ValidationInfo) -> str | None:
        name = {
            "slack_api_url": "LEADSCORE_SLACK_API_URL",
            "webhook_url": "LEADSCORE_WEBHOOK_URL",
            "public_url": "LEADSCORE_PUBLIC_URL",
        }[str(info.field_name)]
        return None if value is None else _http_url(name, value)

    @field_validator("alert_jump", mode="before")
    @classmethod
    def _alert_jump(cls, value: Any) -> int | None:
        if value is None:
            return None
        number = _integer("LEADSCORE_ALERT_JUMP", value, "a number of score points")
        if not 1 <= number <= 100:
            raise ValueError(f"LEADSCORE_ALERT_JUMP must be between 1 and 100, got {number}")
        return number

    @field_validator("alert_max_attempts", mode="before")
    @classmethod
    def _alert_max_attempts(cls, value: Any) -> int:
        number = _integer("LEADSCORE_ALERT_MAX_ATTEMPTS", value, "a number of attempts")
        if not 1 <= number <= 100:
            raise ValueError(
                f"LEADSCORE_ALERT_MAX_ATTEMPTS must be between 1 and 100, got {number}"
            )
        return number

    @field_validator("alert_digest_minutes", "alert_timeout", mode="before")
    @classmethod
    def _alert_times(cls, value: Any, info: ValidationInfo) -> float:
        name, low, high = {
            "alert_digest_minutes": ("LEADSCORE_ALERT_DIGEST_MINUTES", 0.0, 1440.0),
            "alert_timeout": ("LEADSCORE_ALERT_TIMEOUT", 0.1, 300.0),
        }[str(info.field_name)]
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number, got {value!r}") from None
        if math.isnan(number) or not low <= number <= high:
            raise ValueError(f"{name} must be between {low:g} and {high:g}, got {value!r}")
        return number

    @model_validator(mode="after")
    def _alert_pairs(self) -> Settings:
        if self.webhook_url and not self.webhook_secret:
            raise ValueError(
                "LEADSCORE_WEBHOOK_SECRET must be set with LEADSCORE_WEBHOOK_URL (the "
                "webhook's signature is made with it)"
            )
        if self.slack_channels and not self.slack_token:
            raise ValueError(
                "LEADSCORE_SLACK_TOKEN must be set with LEADSCORE_SLACK_CHANNELS "
                "(chat.postMessage needs a bot token)"
            )
        return self

    @field_validator("workers", mode="before")
    @classmethod
    def _workers(cls, value: Any) -> int | str:
        if value == CPU_COUNT:
            return CPU_COUNT
        number = _integer("LEADSCORE_WORKERS", value, f"a number or {CPU_COUNT}")
        if not 1 <= number <= 256:
            raise ValueError(f"LEADSCORE_WORKERS must be between 1 and 256, got {number}")
        return number


def parse_capacity(value: Any, name: str) -> float | dict[str, float]:
    """``120`` (the team) or ``NA=60,EMEA=40`` (per region) as a number or a mapping.

    Raises:
        ValueError: naming ``name`` when a part is not a positive number.
    """
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, int | float) and not isinstance(value, bool):
        pairs = [("", value)]
    else:
        text = str(value).strip()
        pairs = []
        for part in text.split(","):
            key, sep, number = part.partition("=")
            pairs.append((key.strip(), number) if sep else ("", key))
    out: dict[str, float] = {}
    for key, number in pairs:
        try:
            amount = float(number)
        except (TypeError, ValueError):
            amount = math.nan
        if not math.isfinite(amount) or amount <= 0:
            raise ValueError(
                f"{name} must be MQLs per week, e.g. 120 or NA=60,EMEA=40, got {value!r}"
            )
        if (key == "") != (len(pairs) == 1 and pairs[0][0] == ""):
            raise ValueError(f"{name} must be one number or region=number pairs, got {value!r}")
        out[key] = amount
    team = out.get("")
    return out if team is None else team


def parse_routes(value: Any, name: str, url: bool) -> dict[str, str] | None:
    """``x`` (everything) or ``NA=x,EMEA=y,*=z`` (per region, ``*`` for the rest) as a
    region -> destination mapping (``{"*": x}`` for one value).

    Raises:
        ValueError: naming ``name`` when a part is empty or, for URLs, not http(s).
    """
    if value is None or isinstance(value, dict):
        pairs = list((value or {}).items())
    else:
        pairs = []
        for part in str(value).split(","):
            key, sep, rest = part.partition("=")
            plain = not sep or (url and ("/" in key or ":" in key))
            pairs.append(("*", part) if plain else (key, rest))
    out: dict[str, str] = {}
    for key, target in pairs:
        key, target = str(key).strip(), str(target).strip()
        if not key or not target:
            raise ValueError(
                f"{name} must be one value or region=value pairs (*= for the rest), got {value!r}"
            )
        out[key] = _http_url(name, target) if url else target
    return out or None


def _http_url(name: str, value: Any) -> str:
    """``value`` when it is an http(s) URL with a host, else a ``ValueError`` naming ``name``."""
    text = str(value).strip()
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest.split("/")[0]:
        raise ValueError(f"{name} must be an http(s) URL, got {value!r}")
    return text


def capacity_text(capacity: float | dict[str, float]) -> str:
    """The text ``parse_capacity`` reads back."""
    if isinstance(capacity, dict):
        return ",".join(f"{k}={v:g}" for k, v in capacity.items())
    return f"{capacity:g}"


def _integer(variable: str, value: Any, what: str) -> int:
    """``value`` as a whole number, or a ``ValueError`` that names ``variable``."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"{variable} must be {what}, got {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{variable} must be {what}, got {value!r}") from None


def _one_line(exc: ValidationError) -> str:
    """pydantic's report as one sentence per problem, each naming its variable."""
    parts = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        where = ".".join(str(part) for part in error["loc"])
        parts.append(
            message if message.startswith(("LEADSCORE_", "BENTOML_")) else f"{where}: {message}"
        )
    return "; ".join(parts)

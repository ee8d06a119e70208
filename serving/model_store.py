"""Finding the model to serve: MLflow registry → BentoML model store → a loaded bundle.

The MLflow registry is the source of truth for *which* model is the champion. The
BentoML model store is where a served model lives on disk: importing the champion there
is what lets ``bentoml build`` package it, so a built Bento (or its container) carries
its model and needs no registry at run time.

Resolution order at start-up (``resolve_model``):

1. ``LEADSCORE_MODEL_DIR``: a bundle folder, served as is (debugging).
2. A tracking URI (``LEADSCORE_TRACKING_URI`` / ``MLFLOW_TRACKING_URI``): the registry's
   ``name@alias`` is imported into the BentoML store (once per version) and served.
3. Otherwise the model packaged with the service (``lead-scoring:latest`` in the
   BentoML store, which inside a built Bento is the Bento's own model).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from leadscore.errors import LeadscoreError
from leadscore.settings import CHAMPION_ALIAS, DEFAULT_MODEL_NAME, Settings
from runtime.bundle import ModelArtifactError, ModelBundle
from serving.scorer import ServedModel

if TYPE_CHECKING:
    import bentoml

BENTO_MODEL_NAME = DEFAULT_MODEL_NAME
"""Name of served models in the BentoML store (fixed, so the service can declare it)."""
BUNDLE_SUBDIR = "bundle"


class StoredModelInfo(BaseModel):
    """The registry identity ``import_bundle`` records in a store model's metadata.

    Unknown keys are ignored rather than refused: the store may hold models imported by
    another leadscore, and the bundle inside is what is checked strictly.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    registered_name: str | None = None
    registered_version: str | None = None
    alias: str | None = None
    run_id: str | None = None
    registry: dict[str, Any] = Field(default_factory=dict)


QUIET_ENV = {
    "BENTOML_DO_NOT_TRACK": "True",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
}
"""Usage telemetry off: a scoring service must not phone home (and here cannot)."""


PINNED_ENV = "LEADSCORE_PINNED_MODEL"
"""Set by the deployment hook to the imported tag, so every worker loads that exact version
(without importing MLflow again) even if the alias moves while the workers start."""


class ModelNotAvailableError(LeadscoreError, RuntimeError):
    """The service has no model to serve; the message says what to do about it."""


def quiet_telemetry() -> None:
    """Turn BentoML's and MLflow's usage telemetry off for this process (unless set).

    BentoML caches its do-not-track flag on first use, so the cache is cleared too.
    """
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    try:
        from bentoml._internal.utils.analytics import usage_stats

        usage_stats.do_not_track.cache_clear()
    except (ImportError, AttributeError):  # pragma: no cover - BentoML internals moved
        pass


def model_store(bentoml_home: str | Path | None = None) -> Any:
    """The BentoML model store under ``bentoml_home``, or the process's default store.

    An explicit home lets a test or a launcher use a store other than the one BentoML
    fixed for this process when it first read ``BENTOML_HOME``.
    """
    if bentoml_home is None:
        from bentoml._internal.configuration.containers import BentoMLContainer

        return BentoMLContainer.model_store.get()
    from bentoml._internal.models import ModelStore

    path = Path(bentoml_home) / "models"
    path.mkdir(parents=True, exist_ok=True)
    return ModelStore(path)


def _tag_version(version: str, run_id: str | None) -> str:
    """A BentoML tag version unique per registry version *and* run.

    Two MLflow stores can both have a version 1; the run id keeps them apart.
    """
    suffix = f"-{run_id[:12]}" if run_id else ""
    return f"v{version}{suffix}".replace("/", "-")


def import_bundle(
    bundle_dir: str | Path,
    *,
    name: str,
    version: str,
    alias: str | None,
    run_id: str | None = None,
    extra: dict[str, Any] | None = None,
    bentoml_home: str | Path | None = None,
) -> bentoml.Model:
    """Copy a bundle folder into the BentoML model store (idempotent per version and run).

    The bundle is loaded first, so a corrupted artifact is refused before it can be
    stored and later packaged into a Bento.

    Returns:
        The stored BentoML model (existing one when this version was imported before).
    """
    import shutil

    import bentoml
    from bentoml.exceptions import NotFound

    quiet_telemetry()
    ModelBundle.load(bundle_dir)
    store = model_store(bentoml_home)
    tag = f"{BENTO_MODEL_NAME}:{_tag_version(version, run_id)}"
    try:
        return bentoml.models.get(tag, _model_store=store)
    except NotFound:
        pass
    labels = {"registered_name": name, "registered_version": str(version)}
    metadata = StoredModelInfo(
        registered_name=name,
        registered_version=str(version),
        alias=alias,
        run_id=run_id,
        registry=extra or {},
    ).model_dump()
    with bentoml.models.create(tag, labels=labels, metadata=metadata, _model_store=store) as model:
        shutil.copytree(bundle_dir, model.path_of(BUNDLE_SUBDIR))
    return bentoml.models.get(tag, _model_store=store)


def import_champion(
    tracking_uri: str,
    name: str = DEFAULT_MODEL_NAME,
    alias: str = CHAMPION_ALIAS,
    bentoml_home: str | Path | None = None,
) -> bentoml.Model:
    """Resolve ``name@alias`` in the MLflow registry and import it into the BentoML store.

    The alias is resolved once and that exact version is downloaded, so a promotion
    happening meanwhile cannot mix two versions. A version already in the store is not
    downloaded again.

    Raises:
        ModelNotAvailableError: when the registry has no such model or alias, naming the
            registry and what to do.
    """
    import bentoml
    from bentoml.exceptions import NotFound

    from runtime import registry

    quiet_telemetry()
    store = model_store(bentoml_home)
    try:
        registry.require_store(tracking_uri)  # never create an empty store by reading one
        with registry.tracking(tracking_uri) as client, _import_lock(store):
            info = registry.version_info(client, name, alias)
            tag = f"{BENTO_MODEL_NAME}:{_tag_version(info.version, info.run_id)}"
            try:
                return bentoml.models.get(tag, _model_store=store)
            except NotFound:
                pass
            with tempfile.TemporaryDirectory(prefix="leadscore-champion-") as tmp:
                bundle_dir = registry.download_version_bundle(info, Path(tmp) / "bundle")
                return import_bundle(
                    bundle_dir,
                    name=name,
                    version=info.version,
                    alias=alias,
                    run_id=info.run_id,
                    extra=_jsonable(info.to_dict()),
                    bentoml_home=bentoml_home,
                )
    except registry.RegistryError as exc:
        raise ModelNotAvailableError(
            f"no model to serve from the MLflow registry at {tracking_uri}: {exc}"
        ) from exc


@contextlib.contextmanager
def _import_lock(store: Any) -> Iterator[None]:
    """Hold the store's import lock while a version is looked up and, if absent, imported.

    Several workers of one server share a store and follow the same alias: without the
    lock, one could find the version another is still writing and load a half-written
    bundle (seen with two workers: "input_spec.json is not valid JSON"). With it, the
    second worker waits for the first and then finds the version complete.
    """
    path = Path(str(getattr(store, "_path", None) or tempfile.gettempdir()))
    path.mkdir(parents=True, exist_ok=True)
    with open(path / ".leadscore-import.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _jsonable(info: dict[str, Any]) -> dict[str, Any]:
    """Registry facts reduced to what JSON (and BentoML's model.yaml) can hold."""
    return json.loads(json.dumps(info, default=str))


def load_stored(model: bentoml.Model, source: str, alias: str | None = None) -> ServedModel:
    """Load the bundle inside a BentoML store model, with its registry identity.

    Args:
        model: The stored model.
        source: ``registry`` or ``bento``, for ``GET /model``.
        alias: The alias it was resolved through now (default: the one at import time).
    """
    stored = StoredModelInfo.model_validate(dict(model.info.metadata))
    bundle = ModelBundle.load(model.path_of(BUNDLE_SUBDIR))
    return ServedModel(
        bundle=bundle,
        name=str(stored.registered_name or model.tag.name),
        version=str(stored.registered_version or model.tag.version),
        alias=alias or stored.alias,
        source=source,
        run_id=stored.run_id,
        extra=dict(stored.registry),
    )


def load_folder(folder: str | Path) -> ServedModel:
    """Serve a bundle folder directly (``LEADSCORE_MODEL_DIR``)."""
    bundle = ModelBundle.load(folder)
    return ServedModel(
        bundle=bundle, name=bundle.metadata.model_name, version="local", alias=None, source="folder"
    )


def packaged_tag(bento: Any) -> str | None:
    """The tag of the model a built Bento carries (None when serving from source)."""
    if bento is None:
        return None
    for model in bento.info.all_models:
        if model.tag.name == BENTO_MODEL_NAME:
            return str(model.tag)
    return None


def resolve_model(
    settings: Settings, packaged: str | None = None, pinned: str | None = None
) -> ServedModel:
    """Find and load the model the service should serve (see the module docstring).

    Args:
        settings: Service settings from the environment.
        packaged: Tag of the model packaged in the running Bento, if any.
        pinned: Tag the deployment hook already imported from the registry, if any.

    Raises:
        ModelNotAvailableError: with a message saying where it looked and what to do.
    """
    if settings.model_dir is not None:
        try:
            return load_folder(settings.model_dir)
        except ModelArtifactError as exc:
            raise ModelNotAvailableError(f"LEADSCORE_MODEL_DIR: {exc}") from exc
    if settings.tracking_uri and pinned:
        import bentoml
        from bentoml.exceptions import BentoMLException

        try:
            stored = bentoml.models.get(pinned, _model_store=model_store(settings.bentoml_home))
        except BentoMLException as exc:
            raise ModelNotAvailableError(
                f"{PINNED_ENV}={pinned} is not in the BentoML model store"
            ) from exc
        return load_stored(stored, "registry", settings.model_alias)
    if settings.tracking_uri:
        stored = import_champion(
            settings.tracking_uri, settings.model_name, settings.model_alias, settings.bentoml_home
        )
        return load_stored(stored, "registry", settings.model_alias)
    import bentoml
    from bentoml.exceptions import BentoMLException

    quiet_telemetry()
    ref = packaged or f"{BENTO_MODEL_NAME}:latest"
    try:
        # BentoML's own store: inside a built Bento it is the Bento's models folder.
        stored = bentoml.models.get(ref, _model_store=model_store())
    except BentoMLException as exc:
        raise ModelNotAvailableError(
            f"no model to serve: no registry is configured and {ref} is not in the BentoML "
            "model store. Set LEADSCORE_TRACKING_URI (or MLFLOW_TRACKING_URI) to the MLflow "
            "store that holds the champion, or serve a built Bento."
        ) from exc
    return load_stored(stored, "bento")

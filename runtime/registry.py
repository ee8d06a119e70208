"""The MLflow side: where runs are tracked, how a bundle is logged, and the model registry.

Tracking store, in order of precedence: an explicit ``tracking_uri``, the
``MLFLOW_TRACKING_URI`` environment variable (a real tracking server), else an embedded
store ``sqlite:///<store_dir>/mlflow.db`` with artifacts in ``<store_dir>/mlruns`` (never
wherever the process happens to run). ``mlflow ui --backend-store-uri
sqlite:///<store_dir>/mlflow.db`` then shows everything.

The model is logged as a pyfunc "model from code" (``runtime/mlflow_model.py``) whose
only artifact is the bundle folder (LightGBM text + JSON): nothing is pickled. Each
version gets the alias ``challenger``; ``champion`` marks the version in production
(moved by ``training.promote``). A version is created with all its tags at once and
marked ``complete`` once its aliases are set; a run killed in between leaves a ``pending``
version that the next registration finishes or deletes (``register_version``). Serving
code needs only ``model_uri``, ``download_bundle`` and ``get_version_info``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import mlflow
import yaml
from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from features.io import replace_dir
from leadscore.errors import LeadscoreError
from leadscore.settings import CHALLENGER_ALIAS as CHALLENGER
from leadscore.settings import CHAMPION_ALIAS as CHAMPION
from leadscore.settings import DEFAULT_EXPERIMENT as DEFAULT_EXPERIMENT  # for training
from leadscore.settings import DEFAULT_MODEL_NAME
from runtime.pyfunc import BUNDLE_ARTIFACT, input_example, model_signature

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.models.model import ModelInfo

    from runtime.encoding import InputSpec

DB_FILE = "mlflow.db"
ARTIFACT_DIR = "mlruns"
MODEL_ARTIFACT = "model"
REGISTRY_FILE = "registry.json"
"""Written beside the bundle by ``download_bundle``: which name/version/alias it came from."""

MODEL_CODE = Path(__file__).with_name("mlflow_model.py")
REGISTRATION_TAG = "leadscore.registration"
"""Version tag: ``pending`` from the moment a version is created until its aliases are set,
then ``complete`` (see ``register_version``). Versions without it predate the tag."""
PENDING = "pending"
COMPLETE = "complete"
ABANDONED_AFTER_S = 3600.0
"""Without a store lock (a tracking server), a registration pending this long is dead."""

log = logging.getLogger(__name__)


class RegistryError(LeadscoreError, RuntimeError):
    """The registry does not hold what was asked for."""


class ModelNotFoundError(RegistryError):
    """No registered model of that name (nothing has been trained and registered yet)."""


class AliasNotFoundError(RegistryError):
    """The registered model exists but no version carries the alias (e.g. no champion)."""


@dataclass(frozen=True)
class VersionInfo:
    """One registered model version as the registry describes it."""

    name: str
    version: str
    alias: str | None
    aliases: tuple[str, ...]
    run_id: str | None
    source: str
    tags: dict[str, str] = field(default_factory=dict)
    created_ms: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (written beside downloaded bundles)."""
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "aliases": list(self.aliases),
            "run_id": self.run_id,
            "source": self.source,
            "tags": dict(self.tags),
            "created_ms": self.created_ms,
        }


NOTE_LIMIT = 8000
"""Characters MLflow keeps of a tag value, the run description (``mlflow.note.content``)."""
NOTE_TAG = "mlflow.note.content"


def run_note(card: str, artifact: str = "report/model_card.md") -> str:
    """The model card as a run's description: whole when it fits MLflow's tag limit, else
    cut at a line with a pointer to the whole card among the run's artifacts (MLflow would
    cut it mid-word, silently)."""
    if len(card) <= NOTE_LIMIT:
        return card
    tail = f"\n\n… (cut to fit MLflow's description; the whole card is `{artifact}`)\n"
    head = card[: NOTE_LIMIT - len(tail)]
    return head[: head.rfind("\n")] + tail


def resolve_tracking_uri(tracking_uri: str | None = None, store_dir: str | Path = ".") -> str:
    """The tracking URI to use: explicit, else ``MLFLOW_TRACKING_URI``, else embedded."""
    if tracking_uri:
        return tracking_uri
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(Path(store_dir).resolve() / DB_FILE).as_posix()}"


def default_artifact_location(tracking_uri: str) -> str | None:
    """Artifacts next to a local store (``mlruns`` beside the DB); a server decides its own.

    Without this, MLflow writes artifacts to ``./mlruns`` of whatever directory the
    process runs in.
    """
    parsed = urlparse(tracking_uri)
    if parsed.scheme == "sqlite":
        db = tracking_uri[len("sqlite:///") :]
        if not db or db == ":memory:":
            return None
        return (Path(db).resolve().parent / ARTIFACT_DIR).as_uri()
    if parsed.scheme in ("", "file"):
        root = Path(parsed.path if parsed.scheme == "file" else tracking_uri)
        return (root.resolve() / "artifacts").as_uri()
    return None


@contextmanager
def tracking(tracking_uri: str) -> Iterator[MlflowClient]:
    """Point MLflow's fluent API at ``tracking_uri`` for a block, then restore it.

    MLflow's ``log_model``, ``start_run`` and ``models:/`` downloads read a process-wide
    setting; restoring it keeps one call from redirecting another part of the program
    (or another test). The registry follows the tracking URI unless set separately.
    """
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None  # type: ignore[no-untyped-call]
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    finally:
        mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]  # None unsets it


def require_store(tracking_uri: str) -> None:
    """Refuse to read from an embedded store that does not exist yet.

    Opening a missing SQLite store would silently create an empty one (and take seconds
    to migrate it); a reader wants to hear that nothing was ever trained there.

    Raises:
        ModelNotFoundError: naming the missing database file.
    """
    if tracking_uri.startswith("sqlite:///"):
        db = tracking_uri[len("sqlite:///") :]
        if db and db != ":memory:" and not Path(db).exists():
            raise ModelNotFoundError(
                f"no MLflow store at {db}: nothing has been trained there yet (leadscore "
                "train), or point MLFLOW_TRACKING_URI / --store-dir at the right one"
            )


def ensure_experiment(client: MlflowClient, name: str, tracking_uri: str) -> str:
    """Id of the experiment ``name``, created with an explicit artifact location if new."""
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        if existing.lifecycle_stage == "deleted":
            client.restore_experiment(existing.experiment_id)
        return existing.experiment_id
    return client.create_experiment(name, artifact_location=default_artifact_location(tracking_uri))


def ui_command(tracking_uri: str) -> str:
    """The command that opens the MLflow UI on this store (what ``make demo`` prints)."""
    if tracking_uri.startswith(("http://", "https://", "databricks")):
        return f"open {tracking_uri} in a browser"
    return f"mlflow ui --backend-store-uri {tracking_uri}"


def model_uri(name: str = DEFAULT_MODEL_NAME, alias: str = CHAMPION) -> str:
    """MLflow URI of the version carrying ``alias``, e.g. ``models:/lead-scoring@champion``."""
    return f"models:/{name}@{alias}"


def log_bundle_model(
    bundle_dir: str | Path, spec: InputSpec | None = None, example_frame: pd.DataFrame | None = None
) -> ModelInfo:
    """Log the bundle as a pyfunc model from code in the active run; returns ``ModelInfo``.

    Requirements are given explicitly so MLflow does not import-trace the model (slow)
    and so the environment names the packages the bundle really needs. The signature
    comes from the bundle's input spec (``runtime.pyfunc.model_signature``), so MLflow
    infers nothing (no "Failed to infer model signature") and its UI shows the schema.

    Args:
        bundle_dir: The saved bundle.
        spec: The bundle's input spec, for the signature. None logs the folder as it is,
            without one (the reliability tests register broken bundles this way).
        example_frame: Feature rows of the training data (the validation period's):
            they type the signature's numeric columns, and the first few are logged as
            the input example. None logs no example.
    """
    import lightgbm
    import numpy
    import pandas

    requirements = [
        "leadscore",
        f"lightgbm=={lightgbm.__version__}",
        f"mlflow=={mlflow.__version__}",
        f"numpy=={numpy.__version__}",
        f"pandas=={pandas.__version__}",
    ]
    with quiet_progress():
        info: ModelInfo = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=str(MODEL_CODE),
            artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
            pip_requirements=requirements,
            signature=None if spec is None else model_signature(spec, example_frame),
            input_example=(
                None
                if spec is None or example_frame is None
                else input_example(spec, example_frame)
            ),
        )
    return info


@contextmanager
def quiet_progress() -> Iterator[None]:
    """Silence MLflow's artifact progress bars (they flood logs and CI output) for a block."""
    name = MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name
    previous = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def _registered_or_raise(client: MlflowClient, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise ModelNotFoundError(
                f"no registered model named {name!r} in the registry: train one first "
                "(leadscore train)"
            ) from exc
        raise


def _version_by_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion:
    _registered_or_raise(client, name)
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise AliasNotFoundError(
                f"registered model {name!r} has no version with alias {alias!r}"
                + (" (promote a challenger first: leadscore promote)" if alias == CHAMPION else "")
            ) from exc
        raise


def _info(client: MlflowClient, mv: ModelVersion, alias: str | None) -> VersionInfo:
    return VersionInfo(
        name=mv.name,
        version=str(mv.version),
        alias=alias,
        aliases=tuple(getattr(mv, "aliases", ()) or ()),
        run_id=mv.run_id,
        source=mv.source or "",
        tags=dict(mv.tags or {}),
        created_ms=mv.creation_timestamp,
    )


def version_info(client: MlflowClient, name: str, alias: str) -> VersionInfo:
    """``get_version_info`` for an open client."""
    return _info(client, _version_by_alias(client, name, alias), alias)


def get_version_info(
    tracking_uri: str | None = None,
    name: str = DEFAULT_MODEL_NAME,
    alias: str = CHAMPION,
    store_dir: str | Path = ".",
) -> VersionInfo:
    """Version, run id, aliases and tags of the version carrying ``alias``.

    Raises:
        ModelNotFoundError: when no model of that name is registered.
        AliasNotFoundError: when no version carries ``alias``.
    """
    uri = resolve_tracking_uri(tracking_uri, store_dir)
    require_store(uri)
    return version_info(MlflowClient(tracking_uri=uri, registry_uri=uri), name, alias)


def _bundle_path_in(model_dir: Path) -> Path:
    """Where the bundle sits inside a downloaded pyfunc model folder (from its MLmodel)."""
    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
    artifacts = mlmodel.get("flavors", {}).get("python_function", {}).get("artifacts", {})
    entry = artifacts.get(BUNDLE_ARTIFACT)
    if not entry:
        raise RegistryError(
            f"{model_dir} is not a leadscore model: its MLmodel has no {BUNDLE_ARTIFACT!r} artifact"
        )
    return model_dir / str(entry["path"])


def download_version_bundle(info: VersionInfo, dest: str | Path) -> Path:
    """Download one version's bundle folder to ``dest`` (replaced atomically).

    Call inside ``tracking(uri)``: the ``models:/`` URI is resolved against it.
    """
    with tempfile.TemporaryDirectory(prefix="leadscore-model-") as tmp, quiet_progress():
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{info.name}/{info.version}", dst_path=tmp
            )
        )
        source = _bundle_path_in(local)

        def fill(folder: Path) -> None:
            shutil.copytree(source, folder, dirs_exist_ok=True)
            (folder / REGISTRY_FILE).write_text(json.dumps(info.to_dict(), indent=2) + "\n")

        return replace_dir(dest, fill)


def download_bundle(
    tracking_uri: str | None,
    name: str = DEFAULT_MODEL_NAME,
    alias: str = CHAMPION,
    dest: str | Path = "model",
    store_dir: str | Path = ".",
) -> Path:
    """Download the bundle of the version carrying ``alias`` into ``dest``.

    The folder is what ``ModelBundle.load`` reads, plus ``registry.json`` naming the
    model, version, alias and run it came from. ``dest`` is replaced atomically.

    Raises:
        ModelNotFoundError: when no model of that name is registered.
        AliasNotFoundError: when no version carries ``alias``.
    """
    uri = resolve_tracking_uri(tracking_uri, store_dir)
    require_store(uri)
    with tracking(uri) as client:
        info = version_info(client, name, alias)
        return download_version_bundle(info, dest)


@contextmanager
def store_lock(tracking_uri: str) -> Iterator[bool]:
    """Serialise registry writers on one embedded store: an exclusive lock beside ``mlflow.db``.

    Registrations (``training.train``) and promotions (``training.promote``, same lock
    file) run one after the other. Yields True when the lock is held; a tracking server
    (or an in-memory store) has no shared file to lock, and yields False.
    """
    db = tracking_uri[len("sqlite:///") :] if tracking_uri.startswith("sqlite:///") else ""
    if not db or db == ":memory:":
        yield False
        return
    Path(db).parent.mkdir(parents=True, exist_ok=True)
    with open(f"{db}.promote.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def recover_registrations(client: MlflowClient, name: str, *, locked: bool) -> dict[str, str]:
    """Finish or undo the registrations of runs that died half-way (see ``register_version``).

    A version still ``pending`` was left by a process killed while registering it (under
    the store lock no live registration can be pending; without one, only registrations
    pending for ``ABANDONED_AFTER_S`` count as dead). One that already carries an alias
    got past its last visible step and is marked ``complete`` (rolled forward); one
    without an alias was never visible to the resolver or to ``promote`` and is deleted
    (rolled back) — its run keeps the logged model, so nothing is lost, and the registry
    is as it was before that run.

    Returns:
        ``{version: "completed" | "discarded"}`` for what was done.
    """
    try:
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException:
        return {}
    pending = [mv for mv in versions if (mv.tags or {}).get(REGISTRATION_TAG) == PENDING]
    if not pending:
        return {}
    aliased = {str(v) for v in client.get_registered_model(name).aliases.values()}
    now_ms = time.time() * 1000
    done = {}
    for mv in pending:
        version = str(mv.version)
        if not locked and now_ms - (mv.creation_timestamp or now_ms) < ABANDONED_AFTER_S * 1e3:
            continue  # perhaps still being registered by a live process
        if version in aliased:
            client.set_model_version_tag(name, version, REGISTRATION_TAG, COMPLETE)
            done[version] = "completed"
        else:
            client.delete_model_version(name, version)
            done[version] = "discarded"
        log.warning(
            "registry: version %s of %r was left half-registered by a run that died; %s it",
            version,
            name,
            done[version],
        )
    return done


def register_version(
    client: MlflowClient, model_uri: str, name: str, tags: dict[str, str]
) -> tuple[str, list[str]]:
    """Register ``model_uri`` as a new version of ``name`` so that no reader ever sees half.

    Call inside ``tracking(uri)`` with the model already logged (its artifacts are in
    place). Under ``store_lock``: dead registrations are recovered first; the version is
    then created with *all* its tags and ``REGISTRATION_TAG=pending`` in one call (one
    database transaction); ``challenger`` moves to it (and ``champion`` too when there is
    none: the first version); finally it is marked ``complete``. Killed before the
    aliases, the version was never visible through an alias and the next registration
    deletes it; killed after, the next one marks it complete.

    Returns:
        The new version and the aliases it received.
    """
    with store_lock(mlflow.get_tracking_uri()) as locked:
        recover_registrations(client, name, locked=locked)
        version = str(
            mlflow.register_model(model_uri, name, tags={**tags, REGISTRATION_TAG: PENDING}).version
        )
        client.set_registered_model_alias(name, CHALLENGER, version)
        aliases = [CHALLENGER]
        try:
            client.get_model_version_by_alias(name, CHAMPION)
        except MlflowException:
            client.set_registered_model_alias(name, CHAMPION, version)
            client.set_model_version_tag(name, version, "promotion.decision", "first")
            aliases.append(CHAMPION)
        client.set_model_version_tag(name, version, REGISTRATION_TAG, COMPLETE)
    return version, aliases

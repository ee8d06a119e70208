"""Start-up faults and pickles: a clear message and a non-zero exit, never a half-working
server; nothing from the registry or the data folder is ever unpickled."""

from __future__ import annotations

import json
import pickle
import re
import subprocess
from pathlib import Path

import pytest
import serving_support as testing

from runtime import registry
from runtime.bundle import ModelArtifactError, ModelBundle
from serving.launch import free_port, serve_command, server_env
from serving.settings import Settings

SOURCES = ("features", "serving", "training", "leadscore")
UNSAFE = re.compile(
    r"\b(import pickle|from pickle|cloudpickle|joblib|dill\b|read_pickle|"
    r"allow_pickle\s*=\s*True|mlflow\.sklearn\.load)"
)


class Booby:
    """Unpickling this creates ``marker``: the proof that something was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def plant(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps(Booby(marker)))


@pytest.fixture(scope="module")
def bundle_dir(root: Path, tmp_path_factory) -> Path:
    """The session champion's bundle, downloaded from the registry."""
    champion = testing.session_champion(root)
    return registry.download_bundle(
        champion.tracking_uri,
        champion.name,
        champion.alias,
        tmp_path_factory.mktemp("champion") / "bundle",
    )


def broken_copy(bundle_dir: Path, dest: Path, how: str, marker: Path) -> Path:
    import shutil

    shutil.copytree(bundle_dir, dest)
    if how == "pickle":
        plant(dest / "model.txt", marker)
    elif how == "truncated":
        text = (dest / "model.txt").read_text()
        (dest / "model.txt").write_text(text[: len(text) // 3])
    elif how == "incompatible":
        meta = json.loads((dest / "metadata.json").read_text())
        (dest / "metadata.json").write_text(json.dumps({**meta, "format_version": 999}))
    elif how == "features":
        spec = json.loads((dest / "input_spec.json").read_text())
        spec["features"] = spec["features"][:-1]
        (dest / "input_spec.json").write_text(json.dumps(spec))
    elif how == "policy":
        policy = json.loads((dest / "policy.json").read_text())
        policy["fit_cuts"] = [*policy["fit_cuts"], 9.0]  # a fourth cut would mis-grade
        (dest / "policy.json").write_text(json.dumps(policy))
    return dest


def test_no_loader_can_unpickle():
    """The code that reads models and data has no path to pickle at all."""
    root = Path(__file__).resolve().parents[2]
    offenders = [
        f"{path.relative_to(root)}:{n}"
        for package in SOURCES
        for path in (root / package).rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if UNSAFE.search(line)
    ]
    assert not offenders, offenders


@pytest.mark.slow
@pytest.mark.parametrize(
    "how,message",
    [
        ("pickle", "not a LightGBM text model"),
        ("truncated", "corrupted LightGBM model"),
        ("incompatible", "this leadscore reads format"),
        ("features", "features but"),
        ("policy", "fit_cuts must hold 3 cut points"),
    ],
)
def test_broken_bundles_are_refused(bundle_dir, tmp_path, how, message):
    marker = tmp_path / "unpickled"
    broken = broken_copy(bundle_dir, tmp_path / "bundle", how, marker)
    with pytest.raises(ModelArtifactError, match=message):
        ModelBundle.load(broken)
    assert not marker.exists()


@pytest.mark.slow
def test_pickles_in_the_data_folder_are_never_loaded(root, tmp_path):
    from features.build import read_training_set
    from features.io import read_tables, write_tables

    marker = tmp_path / "unpickled"
    data = write_tables(testing.session_champion(root).tables, tmp_path / "data")
    plant(data / "leads.pkl", marker)
    plant(data / "extra.pickle", marker)
    assert set(read_tables(data)) == {"leads", "accounts", "activities", "conversions"}
    plant(tmp_path / "training.parquet", marker)
    with pytest.raises(Exception, match=r"(?i)parquet"):
        read_training_set(tmp_path / "training.parquet")
    assert not marker.exists()


def _register_broken(store: Path, bundle: Path) -> str:
    """A registry whose champion is ``bundle`` (logged and registered as training does)."""
    import mlflow

    uri = f"sqlite:///{(store / 'mlflow.db').as_posix()}"
    with registry.tracking(uri) as client:
        experiment = registry.ensure_experiment(client, "broken", uri)
        with mlflow.start_run(experiment_id=experiment):
            info = registry.log_bundle_model(bundle)
        version = mlflow.register_model(info.model_uri, "lead-scoring").version
        client.set_registered_model_alias("lead-scoring", registry.CHAMPION, version)
    return uri


def _serve_fails(settings: Settings, extra: dict | None = None) -> str:
    """Run ``bentoml serve``; it must exit non-zero. Returns its output."""
    env = server_env(
        settings,
        {
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
            **(extra or {}),
        },
    )
    result = subprocess.run(
        serve_command("127.0.0.1", free_port()),
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-3000:]
    return out


@pytest.mark.slow
def test_a_pickled_champion_in_the_registry_stops_the_server(bundle_dir, tmp_path):
    marker = tmp_path / "unpickled"
    broken = broken_copy(bundle_dir, tmp_path / "bundle", "pickle", marker)
    uri = _register_broken(tmp_path / "store", broken)
    out = _serve_fails(Settings(tracking_uri=uri, bentoml_home=tmp_path / "bentoml"))
    assert "not a LightGBM text model" in out
    assert not marker.exists()
    assert not list((tmp_path / "bentoml").glob("models/lead-scoring/*/model.yaml"))


@pytest.mark.slow
def test_a_broken_model_folder_stops_the_server(bundle_dir, tmp_path):
    broken = broken_copy(bundle_dir, tmp_path / "bundle", "incompatible", tmp_path / "m")
    out = _serve_fails(Settings(model_dir=broken, bentoml_home=tmp_path / "bentoml"))
    assert "this leadscore reads format 1" in out or "reads format" in out


@pytest.mark.slow
def test_an_unreachable_registry_stops_the_server(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    out = _serve_fails(Settings(tracking_uri=uri, bentoml_home=tmp_path / "bentoml"))
    assert f"cannot serve the model ({uri})" in out


@pytest.mark.slow
def test_a_missing_alias_stops_the_server(root, tmp_path):
    champion = testing.session_champion(root)
    settings = Settings(
        tracking_uri=champion.tracking_uri,
        model_alias="no-such-alias",
        bentoml_home=tmp_path / "bentoml",
    )
    out = _serve_fails(settings)
    assert "has no version with alias 'no-such-alias'" in out

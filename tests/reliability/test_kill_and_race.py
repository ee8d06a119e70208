"""Killed stages lose nothing, and concurrent promotions elect exactly one champion.

``leadscore features`` and ``leadscore train`` are run as real processes and killed with
SIGKILL part-way (at fractions of a complete run's duration); afterwards the previous
outputs must be exactly as they were (or completely replaced), and the registry must hold
no version without artifacts and no alias pointing at one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import serving_support as testing
from reliability_support import FULL

from runtime import registry

pytestmark = pytest.mark.slow

KILL_AT = (0.35, 0.6, 0.75, 0.85, 0.9, 0.95, 0.98) if FULL else (0.6, 0.9)
"""Fractions of a complete run's duration at which the process is killed."""


def cli(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "leadscore.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def run_ok(*args: str, env: dict[str, str]) -> tuple[str, float]:
    start = time.perf_counter()
    process = cli(*args, env=env)
    out, _ = process.communicate(timeout=600)
    assert process.returncode == 0, out[-3000:]
    return out, time.perf_counter() - start


def kill_after(seconds: float, *args: str, env: dict[str, str]) -> int | None:
    """Start the command, SIGKILL its whole process group after ``seconds``."""
    process = cli(*args, env=env)
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        return None
    return process.returncode


def digest(path: Path) -> str:
    if path.is_dir():
        return hashlib.sha256(
            b"".join(
                p.relative_to(path).as_posix().encode() + p.read_bytes()
                for p in sorted(path.rglob("*"))
                if p.is_file()
            )
        ).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def base_env(home: Path, uri: str | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LEADSCORE_") and k != "MLFLOW_TRACKING_URI"
    }
    env.update(
        {
            "LEADSCORE_HOME": str(home),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            "NUMBA_NUM_THREADS": "1",
        }
    )
    if uri:
        env["MLFLOW_TRACKING_URI"] = uri
    return env


def test_killed_feature_build_leaves_the_previous_training_set(root, tmp_path):
    from features.build import fingerprint, read_training_set, sidecar_path
    from features.io import write_tables

    data = write_tables(testing.session_champion(root).tables, tmp_path / "data")
    out = tmp_path / "training.parquet"
    env = base_env(tmp_path)
    _, seconds = run_ok(
        "features", "--data", str(data), "--out", str(out), "--horizon", "60", env=env
    )
    before = (digest(out), digest(sidecar_path(out)))
    outcomes = []
    for fraction in KILL_AT:
        code = kill_after(
            seconds * fraction,
            "features",
            "--data",
            str(data),
            "--out",
            str(out),
            "--horizon",
            "30",
            env=env,
        )
        outcomes.append(code)
        after = (digest(out), digest(sidecar_path(out)))
        training_set = read_training_set(out)  # readable, and its sidecar matches it
        assert training_set.metadata.fingerprint == fingerprint(training_set.frame)
        if code is None:  # killed: old or (if it got past both renames) new, never half
            assert after == before or training_set.metadata.horizon_days == 30
        if after != before:  # a finished run; start the next kill from the old state
            run_ok("features", "--data", str(data), "--out", str(out), "--horizon", "60", env=env)
            assert (digest(out), digest(sidecar_path(out))) == before
    assert None in outcomes, f"no run was killed (outcomes {outcomes})"


def registry_is_whole(uri: str, name: str = "lead-scoring") -> dict[str, str]:
    """Every version has loadable artifacts and every alias points at one. Returns aliases."""
    from mlflow.tracking import MlflowClient

    from runtime.bundle import ModelBundle

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = client.search_model_versions(f"name='{name}'")
    with registry.tracking(uri), __import__("tempfile").TemporaryDirectory() as tmp:
        for mv in versions:
            info = registry.VersionInfo(name, str(mv.version), None, (), mv.run_id, mv.source)
            bundle = registry.download_version_bundle(info, Path(tmp) / f"v{mv.version}")
            ModelBundle.load(bundle)
    aliases = dict(client.get_registered_model(name).aliases)
    for mv in versions:  # created with all its tags at once, never half (test_half_states)
        assert mv.tags.get("data_fingerprint"), (mv.version, mv.tags)
        assert mv.tags.get(registry.REGISTRATION_TAG) in (registry.PENDING, registry.COMPLETE), (
            mv.tags
        )
    known = {str(mv.version) for mv in versions}
    assert set(map(str, aliases.values())) <= known
    return {k: str(v) for k, v in aliases.items()}


def file_digests(folder: Path, prefix: str = "") -> dict[str, str]:
    """Relative path (under ``prefix``) → SHA-256 of every file in ``folder``."""
    return {
        prefix + p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


def run_report(uri: str, version, tmp: Path) -> dict[str, str]:
    """File digests of the report a registered version's run wrote: its logged card,
    metrics, plots and evaluation, and the version's bundle (laid out as ``--out``)."""
    import mlflow

    info = registry.VersionInfo(
        "lead-scoring", str(version.version), None, (), version.run_id, version.source
    )
    bundle = registry.download_version_bundle(info, tmp / "bundle")
    (bundle / registry.REGISTRY_FILE).unlink()  # written by the download, not the run
    out = file_digests(bundle, "bundle/")
    for logged, local in (("report", ""), ("plots", "plots/"), ("evaluation", "evaluation/")):
        folder = mlflow.artifacts.download_artifacts(
            run_id=version.run_id, artifact_path=logged, dst_path=str(tmp / "run")
        )
        out.update(file_digests(Path(folder), local))
    return out


def report_state(report: Path, old_digest: str, uri: str) -> str:
    """``old`` when the report is byte for byte the one before, ``new`` when it is byte
    for byte the whole report of one registered version's run; anything else (missing,
    partial, files of two runs mixed) fails."""
    import tempfile

    from mlflow.tracking import MlflowClient

    assert report.is_dir(), f"the report is gone: {sorted(report.parent.iterdir())}"
    if digest(report) == old_digest:
        return "old"
    files = file_digests(report)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    with registry.tracking(uri):
        for version in client.search_model_versions("name='lead-scoring'"):
            with tempfile.TemporaryDirectory() as tmp:
                if run_report(uri, version, Path(tmp)) == files:
                    return "new"
    raise AssertionError(f"the report is neither the old one nor one run's: {sorted(files)}")


def test_killed_training_leaves_the_registry_whole(root, tmp_path):
    from features.build import write_training_set
    from features.pipeline import PipelineConfig, build_training_set

    tables = testing.session_champion(root).tables
    ts = write_training_set(
        build_training_set(tables, PipelineConfig(horizon_days=60)), tmp_path / "training.parquet"
    )
    uri = f"sqlite:///{(tmp_path / 'store' / 'mlflow.db').as_posix()}"
    (tmp_path / "store").mkdir()
    env = base_env(tmp_path / "home", uri)
    report = tmp_path / "report"
    train = ("train", "--data", str(ts), "--out", str(report))
    _, seconds = run_ok(*train, env=env)  # version 1: challenger and champion
    before = registry_is_whole(uri)
    assert before == {"champion": "1", "challenger": "1"}
    data_before, report_before = digest(ts), digest(report)
    assert report_state(report, report_before, uri) == "old"
    states = []
    for fraction in KILL_AT:
        code = kill_after(seconds * fraction, *train, env=env)
        aliases = registry_is_whole(uri)
        assert aliases["champion"] == "1", aliases  # training never moves the champion
        assert digest(ts) == data_before
        state = report_state(report, report_before, uri)  # wholly old or wholly new
        states.append((code, state))
        if code == 0:
            assert state == "new", states
        if state == "new":  # start the next kill from a known report
            report_before = digest(report)
    # A version registered by a killed run carries artifacts (checked above); the state
    # is the one before the kill or the one after a complete run, never in between.


def test_two_concurrent_promotions_elect_one_champion(root, tmp_path):
    from mlflow.tracking import MlflowClient

    store = tmp_path / "store"
    testing.register_champion(store, n_leads=1500, seed=7)  # v1: champion
    testing.register_champion(store, n_leads=1500, seed=8)  # v2: challenger
    uri = f"sqlite:///{(store / 'mlflow.db').resolve().as_posix()}"
    env = base_env(tmp_path / "home", uri)

    def promote(_: int) -> str:
        out, _seconds = run_ok("promote", "--force", env=env)
        return out

    with ThreadPoolExecutor(2) as pool:
        outputs = list(pool.map(promote, range(2)))
    decisions = sorted(
        next(d for d in ("already_champion", "promoted", "forced") if f"'{d}'" in out)
        for out in outputs
    )
    assert decisions[0] == "already_champion" and decisions[1] in ("forced", "promoted"), outputs
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert str(client.get_model_version_by_alias("lead-scoring", "champion").version) == "2"
    tags = client.get_model_version("lead-scoring", "2").tags
    assert tags["promotion.decision"] in ("forced", "promoted")
    assert tags["promotion.champion_version"] == "1"
    assert registry_is_whole(uri)["champion"] == "2"
    shutil.rmtree(tmp_path / "home", ignore_errors=True)

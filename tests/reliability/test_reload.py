"""A new champion is picked up by a running server without dropping a request.

The live test serves version 1 of a fresh registry with ``LEADSCORE_RELOAD_SECONDS=1``
and keeps clients posting ``/score`` while version 2 is trained, registered and promoted
(``training.promote.promote(force=True)``): the served version (``GET /model`` and
``model.version`` in the answers) must move to 2 within a few poll periods, never move
back, and not one request may fail. The in-process tests drive ``ModelWatcher.check``
directly: a broken version is refused and the old one keeps serving, an unreachable
registry changes nothing.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import serving_support as testing

from runtime import registry
from serving.launch import start_server
from serving.model_store import load_folder
from serving.reload import ModelWatcher
from serving.settings import Settings

pytestmark = pytest.mark.slow

POLL = 1.0
"""Seconds between the server's registry polls in the live test."""
BODY = {
    "lead": {"lead_id": "reload-client", "created_at": "2024-01-01T00:00:00Z", "seniority": "vp"},
    "activities": [
        {"occurred_at": "2024-01-10T00:00:00Z", "activity_type": "page_view"},
        {"occurred_at": "2024-01-20T00:00:00Z", "activity_type": "pricing_page_view"},
    ],
    "as_of": "2024-02-01T00:00:00Z",
}


class Clients:
    """Threads posting ``/score`` back to back; every answer's version and every failure."""

    def __init__(self, url: str, threads: int = 2) -> None:
        self.url = url
        self.stop = threading.Event()
        self.seen: list[list[tuple[float, str]]] = [[] for _ in range(threads)]
        self.failures: list[str] = []
        self.threads = [
            threading.Thread(target=self._loop, args=(i,), daemon=True) for i in range(threads)
        ]

    def _loop(self, i: int) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while not self.stop.is_set():
                try:
                    r = client.post("/score", json=BODY)
                    if r.status_code != 200:
                        self.failures.append(f"HTTP {r.status_code}: {r.text[:200]}")
                        continue
                    self.seen[i].append((time.monotonic(), r.json()["model"]["version"]))
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")

    def __enter__(self) -> Clients:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(90)

    @property
    def answers(self) -> int:
        return sum(len(s) for s in self.seen)


def test_a_promoted_champion_is_served_without_dropping_requests(tmp_path):
    from training.promote import promote

    store = tmp_path / "store"
    first = testing.register_champion(store, n_leads=1500, seed=7)  # v1: champion
    settings = Settings(
        tracking_uri=first.tracking_uri, bentoml_home=tmp_path / "bentoml", reload_seconds=POLL
    )
    log = tmp_path / "server.log"
    with start_server(settings, log_path=log) as server, Clients(server.url) as clients:
        assert httpx.get(f"{server.url}/model", timeout=30).json()["version"] == "1"
        second = testing.register_champion(store, n_leads=1500, seed=8)  # v2: challenger
        assert second.version == "2"
        result = promote(first.tracking_uri, force=True)
        assert result.promoted and result.challenger_version == "2", result
        promoted_at = time.monotonic()
        deadline = promoted_at + 10 * POLL + 20  # a few polls, plus a loaded machine's slack
        while httpx.get(f"{server.url}/model", timeout=30).json()["version"] != "2":
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.1)
        switched = time.monotonic() - promoted_at
        answers_at_switch = clients.answers
        while clients.answers < answers_at_switch + 6:  # a few more answers from v2
            assert time.monotonic() < deadline + 30 and not clients.failures
            time.sleep(0.05)
    assert not clients.failures, clients.failures[:5]
    for seen in clients.seen:  # each client: version 1, then version 2, never back
        versions = [v for _, v in seen]
        assert versions and set(versions) <= {"1", "2"}
        assert versions == sorted(versions), versions
    assert any(v == "2" for s in clients.seen for _, v in s)
    text = log.read_text()
    loaded = re.search(
        r"now serving lead-scoring version 2 .*loaded and warmed up in "
        r"([0-9.]+)s",
        text,
    )
    assert loaded, text[-3000:]
    print(
        f"\nreload: {clients.answers} answers, 0 failed; /model showed version 2 "
        f"{switched:.2f}s after the promotion (poll every {POLL:g}s; load and warm-up "
        f"{loaded.group(1)}s)"
    )


def _register(uri: str, bundle: Path, alias: str = registry.CHAMPION) -> str:
    """Log ``bundle`` as a model, register it and point ``alias`` at it; its version."""
    import mlflow

    with registry.tracking(uri) as client:
        experiment = registry.ensure_experiment(client, "reload", uri)
        with mlflow.start_run(experiment_id=experiment):
            info = registry.log_bundle_model(bundle)
        version = mlflow.register_model(info.model_uri, "lead-scoring").version
        client.set_registered_model_alias("lead-scoring", alias, version)
    return str(version)


@pytest.fixture(scope="module")
def champion_bundle(root: Path, tmp_path_factory) -> Path:
    champion = testing.session_champion(root)
    return registry.download_bundle(
        champion.tracking_uri,
        champion.name,
        champion.alias,
        tmp_path_factory.mktemp("reload") / "bundle",
    )


def test_a_broken_new_version_is_refused_and_the_old_one_keeps_serving(
    champion_bundle, tmp_path, caplog
):
    store = tmp_path / "store"
    store.mkdir()
    uri = f"sqlite:///{(store / 'mlflow.db').as_posix()}"
    broken = shutil.copytree(champion_bundle, tmp_path / "broken")
    text = (broken / "model.txt").read_text()
    (broken / "model.txt").write_text(text[: len(text) // 3])  # truncated mid-tree
    old = load_folder(champion_bundle)
    target = SimpleNamespace(served=old)
    watcher = ModelWatcher(
        target, Settings(tracking_uri=uri, bentoml_home=tmp_path / "bml"), interval=1
    )
    _register(uri, broken)  # v1 (the champion) is broken
    with caplog.at_level(logging.INFO, logger="bentoml.leadscore.reload"):
        assert watcher.check() is None
        assert target.served is old
        assert "version 1 of lead-scoring cannot be served" in caplog.text
        assert "corrupted LightGBM model" in caplog.text
        caplog.clear()
        assert watcher.check() is None  # not retried while the alias stays there
        assert "cannot be served" not in caplog.text
        version = _register(uri, champion_bundle)  # the alias moves to a good version
        new = watcher.check()
    assert new is not None and target.served is new
    assert (new.version, new.alias, new.source) == (version, "champion", "registry")
    assert watcher.reloads == 1 and watcher.check() is None


def test_an_unreachable_registry_changes_nothing(champion_bundle, tmp_path, caplog):
    old = load_folder(champion_bundle)
    target = SimpleNamespace(served=old)
    uri = f"sqlite:///{(tmp_path / 'gone' / 'mlflow.db').as_posix()}"
    watcher = ModelWatcher(
        target, Settings(tracking_uri=uri, bentoml_home=tmp_path / "bml"), interval=1
    )
    with caplog.at_level(logging.INFO, logger="bentoml.leadscore.reload"):
        assert watcher.check() is None and watcher.check() is None
    assert target.served is old
    assert caplog.text.count("cannot read lead-scoring@champion") == 1  # once, not per poll
    assert not (tmp_path / "gone").exists()  # a missing store is never created


def _move_alias(uri: str, version: str) -> None:
    with registry.tracking(uri) as client:
        client.set_registered_model_alias("lead-scoring", registry.CHAMPION, version)


def _watching(uri: str, home: Path) -> tuple[SimpleNamespace, ModelWatcher]:
    """A target serving the alias's current version from the registry, and its watcher."""
    from serving.model_store import import_champion, load_stored

    current = load_stored(import_champion(uri, bentoml_home=home), "registry", "champion")
    target = SimpleNamespace(served=current)
    settings = Settings(tracking_uri=uri, bentoml_home=home)
    return target, ModelWatcher(target, settings, interval=1)


def test_the_alias_moving_again_during_an_import_is_followed(
    champion_bundle, tmp_path, monkeypatch
):
    """v1 served; the alias moves to v2, and to v3 while v2 is being imported: the
    watcher serves v2 (what it imported, never a mix), then v3 at the next poll."""
    import serving.reload as reload_module

    uri = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    versions = [_register(uri, champion_bundle) for _ in range(3)]
    assert versions == ["1", "2", "3"]
    _move_alias(uri, "1")
    target, watcher = _watching(uri, tmp_path / "bml")
    assert target.served.version == "1"
    real_import = reload_module.import_champion
    imports: list[str] = []

    def import_then_move(*args, **kwargs):
        stored = real_import(*args, **kwargs)
        imports.append(stored.info.metadata["registered_version"])
        if len(imports) == 1:
            _move_alias(uri, "3")  # a second promotion lands mid-import
        return stored

    monkeypatch.setattr(reload_module, "import_champion", import_then_move)
    _move_alias(uri, "2")
    first = watcher.check()
    assert first is not None and first.version == "2" and target.served is first
    second = watcher.check()
    assert second is not None and second.version == "3" and target.served is second
    assert imports == ["2", "3"] and watcher.reloads == 2
    assert watcher.check() is None and target.served is second


def test_the_alias_moving_back_during_an_import_keeps_the_model(
    champion_bundle, tmp_path, monkeypatch
):
    """The alias moves to v2 and back to v1 before the import resolves it: the watcher
    imports v1 again, sees it is what it serves, and swaps nothing."""
    import serving.reload as reload_module

    uri = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    assert [_register(uri, champion_bundle) for _ in range(2)] == ["1", "2"]
    _move_alias(uri, "1")
    target, watcher = _watching(uri, tmp_path / "bml")
    old = target.served
    real_import = reload_module.import_champion

    def move_back_then_import(*args, **kwargs):
        _move_alias(uri, "1")
        return real_import(*args, **kwargs)

    monkeypatch.setattr(reload_module, "import_champion", move_back_then_import)
    _move_alias(uri, "2")
    assert watcher.check() is None
    assert target.served is old and watcher.reloads == 0
    monkeypatch.setattr(reload_module, "import_champion", real_import)
    _move_alias(uri, "2")
    assert watcher.check().version == "2" and watcher.reloads == 1


class TimedClients(Clients):
    """``Clients`` that also note when each answered request was sent."""

    def _loop(self, i: int) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while not self.stop.is_set():
                sent = time.monotonic()
                try:
                    r = client.post("/score", json=BODY)
                    if r.status_code != 200:
                        self.failures.append(f"HTTP {r.status_code}: {r.text[:200]}")
                        continue
                    self.seen[i].append((sent, r.json()["model"]["version"]))
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")


def test_every_worker_follows_two_quick_promotions(champion_bundle, tmp_path):
    """Two workers of a real ``bentoml serve``; the alias moves to v2, then to v3 while
    the workers are importing v2. Both workers end on v3 (each logs it), no request
    fails, and every request sent after that is answered by v3."""
    started = time.monotonic()
    uri = f"sqlite:///{(tmp_path / 'store' / 'mlflow.db').as_posix()}"
    (tmp_path / "store").mkdir()
    assert _register(uri, champion_bundle) == "1"
    settings = Settings(
        tracking_uri=uri, bentoml_home=tmp_path / "bentoml", reload_seconds=0.5, workers=2
    )
    log = tmp_path / "server.log"
    with start_server(settings, log_path=log) as server, TimedClients(server.url, 4) as clients:
        deadline = time.monotonic() + 45

        def wait_for(pattern: str, count: int = 1) -> None:
            while len(re.findall(pattern, log.read_text())) < count:
                assert time.monotonic() < deadline, server.log_tail()
                assert not clients.failures, clients.failures[:3]
                time.sleep(0.02)

        wait_for(r"hot reload: checking lead-scoring@champion", 2)  # both workers watch
        assert _register(uri, champion_bundle) == "2"
        wait_for(r"moved to version 2 \(serving 1\); loading it")
        assert _register(uri, champion_bundle) == "3"
        wait_for(r"now serving lead-scoring version 3 ", 2)
        both_on_three = time.monotonic()
        while sum(1 for s in clients.seen for t, _ in s if t > both_on_three) < 40:
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.05)
    assert not clients.failures, clients.failures[:5]
    versions = {v for s in clients.seen for _, v in s}
    assert versions <= {"1", "2", "3"} and "1" in versions, versions
    late = [v for s in clients.seen for t, v in s if t > both_on_three]
    assert set(late) == {"3"}, late
    text = log.read_text()
    assert "cannot be served" not in text, text[-3000:]
    assert time.monotonic() - started < 60

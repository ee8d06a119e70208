"""``bentoml build`` with the project's build config (``[tool.bentoml.build]`` in pyproject.toml)
packages the service and champion."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
import serving_support as testing
import yaml

from serving.launch import PROJECT_ROOT, server_env, start_server
from serving.model_store import import_champion
from serving.settings import Settings

pytestmark = pytest.mark.slow


def test_bentoml_build_packages_service_and_champion(root, tmp_path):
    settings = testing.session_settings(root)
    home = tmp_path / "bentoml"
    model = import_champion(settings.tracking_uri, bentoml_home=home)
    result = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", str(PROJECT_ROOT), "--output", "tag"],
        env=server_env(Settings(bentoml_home=home)),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    tag = next(
        line.split("__tag__:", 1)[1].strip()
        for line in result.stdout.splitlines()
        if "__tag__:" in line
    )
    name, version = tag.split(":")
    bento = home / "bentos" / name / version
    info = yaml.safe_load((bento / "bento.yaml").read_text())
    assert [m["tag"] for m in info["models"]] == [str(model.tag)]
    assert info["service"] == "serving.service:LeadScoring"
    for path in (
        "serving/static/worklist.html",
        "serving/static/worklist.js",
        "serving/static/worklist.css",
        "serving/static/try.html",
        "serving/service.py",
        "features/pipeline.py",
        "runtime/bundle.py",
        "store/engine.py",
        "store/migrations/versions/0001_initial.py",
    ):
        assert (bento / "src" / path).is_file(), path
    assert not list((bento / "src").rglob("test_*.py"))

    # The built Bento serves its packaged model without any registry.
    with start_server(
        Settings(bentoml_home=home), target=tag, log_path=tmp_path / "bento.log"
    ) as server:
        served = httpx.get(server.url + "/model").json()
        assert (
            served["source"] == "bento"
            and served["version"] == model.info.metadata["registered_version"]
        )
        r = httpx.post(
            server.url + "/score",
            json={
                "lead": {"lead_id": "B-1", "created_at": "2024-01-01T00:00:00Z"},
                "as_of": "2024-02-01T00:00:00Z",
            },
        )
        assert r.status_code == 200 and r.json()["model"]["version"] == served["version"]

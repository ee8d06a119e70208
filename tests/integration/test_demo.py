"""``leadscore demo`` — the main job behind ``make demo`` — end to end, without serving."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from leadscore.cli import DEMO_WEEKS, app
from runtime import registry
from serving.samples import list_samples

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory):
    """``leadscore demo --leads 1500 --no-serve`` run once for the module; its home."""
    home = tmp_path_factory.mktemp("demo") / "outputs"
    env = {
        "LEADSCORE_HOME": str(home),
        "MLFLOW_TRACKING_URI": None,
        "LEADSCORE_TRACKING_URI": None,
        "LEADSCORE_DB_URL": None,
    }
    out = CliRunner().invoke(app, ["demo", "--leads", "1500", "--no-serve"], env=env)
    assert out.exit_code == 0, out.output
    return home


def test_demo_runs_the_whole_job_into_its_home(demo_home):
    home = demo_home
    for name in (
        "data",
        "training_set.parquet",
        "report",
        "mlflow.db",
        "scores.csv",
        "samples",
        "leadscore.db",
        "crm_export.csv",
        "report.html",
    ):
        assert (home / name).exists(), name
    scores = pd.read_csv(home / "scores.csv")
    assert len(scores) > 0 and scores["probability"].between(0, 1).all()
    assert_scores_are_the_champions(home, scores)
    assert len(list_samples(home / "samples")) == 6
    uri = f"sqlite:///{(home / 'mlflow.db').as_posix()}"
    with registry.tracking(uri) as client:
        assert (
            registry.version_info(client, registry.DEFAULT_MODEL_NAME, registry.CHAMPION).version
            == "1"
        )


def test_demo_runs_the_loop_into_the_lead_store(demo_home):
    """Weekly runs, sales feedback for their MQLs, and a monitoring run: all stored."""
    import sqlalchemy as sa

    from store.engine import open_store
    from store.schema import dispositions, monitoring_results, mql_events, scoring_runs

    exported = pd.read_csv(demo_home / "crm_export.csv")
    engine = open_store(f"sqlite:///{demo_home / 'leadscore.db'}")
    try:
        with engine.connect() as c:
            runs = c.execute(sa.select(sa.func.count()).select_from(scoring_runs)).scalar()
            entered = c.execute(
                sa.select(sa.func.count()).where(mql_events.c.event == "entered")
            ).scalar()
            stored = c.execute(sa.select(sa.func.count()).select_from(dispositions)).scalar()
            checks = (
                c.execute(sa.select(monitoring_results.c.check_name).distinct()).scalars().all()
            )
    finally:
        engine.dispose()
    assert runs == DEMO_WEEKS and entered > 0
    assert stored == len(exported) > 0  # every disposition the CRM export shows, once
    assert {"performance", "calibration", "feature_drift"} <= set(checks)


def test_demo_report_reads_well_in_a_browser(demo_home, browser):
    """The report opens offline, every section has content, and nothing is fetched."""
    context = browser.new_context()
    page = context.new_page()
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    page.goto((demo_home / "report.html").as_uri())
    sections = page.locator("section")
    titles = [t.strip() for t in page.locator("section h2").all_inner_texts()]
    assert "Scoring at a glance" in titles and "Drift of the features and the score" in titles
    empty = page.locator("section p.empty").all_inner_texts()
    assert empty == [], empty  # the demo fills every section
    assert page.locator("section figure svg").count() >= sections.count() - 1
    assert all(url.startswith("file://") for url in fetched), fetched
    context.close()


def assert_scores_are_the_champions(home, scores: pd.DataFrame) -> None:
    """Every written score is the registered champion's, recomputed here from the data:
    point-in-time features of (lead, as_of), the downloaded bundle's probability, the
    policy's score, grade and MQL flag."""
    import numpy as np

    from features.io import load_tables
    from features.pipeline import compute_features
    from runtime.bundle import ModelBundle

    uri = f"sqlite:///{(home / 'mlflow.db').as_posix()}"
    bundle = ModelBundle.load(
        registry.download_bundle(uri, registry.DEFAULT_MODEL_NAME, registry.CHAMPION, home / "c")
    )
    tables = load_tables(home / "data")
    assert not scores["lead_id"].duplicated().any()
    snapshots = pd.DataFrame(
        {"lead_id": scores["lead_id"].astype(str), "as_of": pd.to_datetime(scores["as_of"])}
    ).astype({"as_of": "datetime64[us]"})
    frame = compute_features(tables["leads"], tables["accounts"], tables["activities"], snapshots)
    expected = bundle.score(frame)
    np.testing.assert_allclose(scores["probability"], expected.probability, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(scores["score"], expected.score)
    np.testing.assert_array_equal(scores["grade"], expected.grade)
    np.testing.assert_array_equal(scores["mql"], expected.mql)
    assert (scores["model_version"].astype(str) == "1").all()
    assert scores["probability"].is_monotonic_decreasing  # highest first

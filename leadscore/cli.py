"""The ``leadscore`` command: a thin layer that reads settings once and calls the stages."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from leadscore.settings import Settings

app = typer.Typer(
    help="Predictive lead scoring: simulate or load CRM data, build point-in-time features, "
    "train and register LightGBM models, and serve explained scores.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)


@app.callback()
def root(ctx: typer.Context) -> None:
    """Read settings once, here, and hand them to every command through the context."""
    ctx.obj = Settings.from_env()


@contextmanager
def steps(title: str) -> Iterator:
    """A rich progress display whose ``advance(step)`` names the step now running."""
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task(title, total=None)

        def advance(step: str) -> None:
            progress.update(task, description=f"{title}: {step}")

        yield advance
        progress.update(task, description=f"{title}: done")


def fail(message: str) -> typer.Exit:
    """Print a clear error and return the exit to raise (status 2: bad input)."""
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=2)


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="Folder to write leads/accounts/activities/"
                                           "conversions (+ ground_truth) into.")],
    leads: Annotated[int, typer.Option(help="Number of leads to simulate.", min=10)] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same data.")] = 0,
    start: Annotated[str, typer.Option(help="First lead creation date.")] = "2024-01-01",
    months: Annotated[int, typer.Option(help="Months of lead creation.", min=3)] = 18,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
) -> None:
    """Simulate a realistic B2B lead funnel with known conversion probabilities.

    Writes the four tables of the data contract, plus ground_truth.parquet (the
    probability the simulator used for each lead: never a model input, only used to
    report the oracle AUC).
    """
    from features.io import write_tables
    from features.simulate import simulate as run_simulation

    t0 = time.perf_counter()
    with steps("simulate") as advance:
        advance(f"simulating {leads:,} leads")
        sim = run_simulation(leads, seed=seed, start=start, months=months)
        advance("writing tables")
        write_tables({**sim.tables(), "ground_truth": sim.ground_truth}, out, fmt=fmt)
    console.print(
        f"wrote {len(sim.leads):,} leads, {len(sim.accounts):,} accounts, "
        f"{len(sim.activities):,} activities, {len(sim.conversions):,} conversions to {out} "
        f"in {time.perf_counter() - t0:.1f}s")


@app.command()
def features(
    data: Annotated[str, typer.Option(help="Folder or fsspec URL (s3://, gs://, memory://) "
                                           "with leads, accounts, activities and conversions "
                                           "(.parquet or .csv).")],
    out: Annotated[str, typer.Option(help="Training set to write (.parquet, path or URL); "
                                          "metadata goes to OUT.json.")],
    horizon: Annotated[int, typer.Option(help="Label: converts within this many days after "
                                              "as_of.", min=1)] = 90,
    snapshots: Annotated[str, typer.Option(help="monthly, weekly or after-creation:7,30,60.")]
    = "monthly",
    max_lead_age: Annotated[int, typer.Option(help="Stop snapshotting leads older than this "
                                                   "many days (calendar rules).")] = 180,
    data_end: Annotated[str | None, typer.Option(help="Last date the data covers (default: "
                                                      "latest timestamp in it).")] = None,
    unknown_activity: Annotated[str, typer.Option(help="reject or other: what to do with "
                                                       "unknown activity types.")] = "reject",
    timestamp_format: Annotated[str | None, typer.Option(help="strftime format of text "
                                                              "timestamps (default ISO 8601).")]
    = None,
    engine: Annotated[str, typer.Option(help="single (this machine) or dask.")] = "single",
    scheduler: Annotated[str, typer.Option(help="Dask engine: 'local' or a scheduler address "
                                                "such as tcp://host:8786.")] = "local",
    workers: Annotated[int, typer.Option(help="Worker processes for --scheduler local.",
                                         min=1)] = 2,
    partitions: Annotated[int | None, typer.Option(help="Dask engine: lead partitions "
                                                        "(default: automatic).")] = None,
) -> None:
    """Build a point-in-time training set: one row per (lead, as_of) snapshot.

    Features use only rows at or before as_of; the label says whether the lead
    converted within the horizon after it. Input is validated first; nothing is
    written when it breaks the data contract.
    """
    import pandas as pd

    from features.build import run_features
    from features.contract import ContractError
    from features.pipeline import PipelineConfig, SnapshotRule

    if unknown_activity not in ("reject", "other"):
        raise fail("--unknown-activity must be 'reject' or 'other'")
    if engine not in ("single", "dask"):
        raise fail("--engine must be 'single' or 'dask'")
    try:
        rule = SnapshotRule.parse(snapshots, max_lead_age)
        config = PipelineConfig(horizon, rule, pd.Timestamp(data_end) if data_end else None)
        t0 = time.perf_counter()
        with steps("features") as advance:
            if engine == "dask":
                from features.distributed import run_features_dask

                ts = run_features_dask(data, out, config, unknown_activity,  # type: ignore[arg-type]
                                       timestamp_format, progress=advance, scheduler=scheduler,
                                       n_workers=workers, n_partitions=partitions)
            else:
                ts = run_features(data, out, config, unknown_activity,  # type: ignore[arg-type]
                                  timestamp_format, progress=advance)
    except (ContractError, FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from exc
    meta = ts.metadata
    console.print(
        f"wrote {meta.rows:,} snapshots of {meta.leads:,} leads ({meta.positives:,} "
        f"positive) from {meta.activities:,} activities to {out} "
        f"in {time.perf_counter() - t0:.1f}s")


def _oracle(ground_truth: Path | None, horizon: int):
    if ground_truth is None:
        return None
    import pandas as pd

    from training.evaluate import oracle_from_ground_truth

    return oracle_from_ground_truth(pd.read_parquet(ground_truth), horizon)


@app.command()
def train(
    ctx: typer.Context,
    data: Annotated[str | None, typer.Option(help="Training set written by `leadscore "
                                                  "features` (path or fsspec URL).")] = None,
    config_file: Annotated[Path | None, typer.Option(
        "--config", help="Dataset config (YAML/TOML, see examples/): train on the export it "
        "maps, with its features, split, points baseline and training settings, instead of "
        "--data.")] = None,
    ground_truth: Annotated[Path | None, typer.Option(
        help="Simulator ground_truth.parquet: report the oracle AUC beside the model's.")]
    = None,
    tune: Annotated[int, typer.Option(help="Optuna trials of hyper-parameter search on the "
                                           "validation period (0: none).", min=0)] = 0,
    mql_rule: Annotated[str, typer.Option(help="capacity (top share of leads) or precision "
                                               "(minimum MQL→conversion rate).")] = "capacity",
    mql_target: Annotated[float, typer.Option(help="Share of leads that become MQLs, or the "
                                                   "precision to reach.")] = 0.1,
    per_region: Annotated[bool, typer.Option(help="Also choose one MQL threshold per "
                                                  "region.")] = False,
    calibration: Annotated[str, typer.Option(help="auto, isotonic, platt or none.")] = "auto",
    out: Annotated[Path | None, typer.Option(help="Also write bundle, model card, metrics "
                                                  "and plots to this folder.")] = None,
    register: Annotated[bool, typer.Option(help="Register the model in MLflow as "
                                                "challenger.")] = True,
    seed: Annotated[int, typer.Option(help="Seed for LightGBM, Optuna and baselines.")] = 0,
    threads: Annotated[int, typer.Option(help="LightGBM threads (0: all cores; 1 is faster "
                                              "on a busy machine).", min=0)] = 0,
    engine: Annotated[str, typer.Option(help="single (this machine; 'local' also accepted) "
                                             "or dask (lightgbm.dask on a Dask cluster).")]
    = "single",
    scheduler: Annotated[str, typer.Option(help="Dask engine: 'local' or a scheduler address "
                                                "such as tcp://host:8786.")] = "local",
    workers: Annotated[int, typer.Option(help="Worker processes for --scheduler local.",
                                         min=1)] = 2,
) -> None:
    """Train LightGBM on a training set, evaluate it against baselines, log and register it.

    Splits by time (train, then validation, then the latest test period), calibrates and
    picks the MQL policy on validation, reports test metrics against the points-based
    score and a logistic regression, logs everything to MLflow and registers the model
    as `challenger` (a first model also becomes `champion`). With `--engine dask` the
    trees are trained by lightgbm.dask on a Dask cluster; the registered model is the
    same kind of LightGBM text model.
    """
    from runtime.registry import ui_command
    from training.data import TrainingDataError
    from training.policy import PolicyConfig
    from training.train import TrainConfig, run_training

    settings: Settings = ctx.obj
    if (data is None) == (config_file is None):
        raise fail("give either --data (a training set) or --config (a dataset config)")
    engine = "single" if engine == "local" else engine
    if engine not in ("single", "dask"):
        raise fail("--engine must be 'single' (or 'local') or 'dask'")
    try:
        options = dict(tune_trials=tune, calibration=calibration,
                       policy=PolicyConfig(mql_rule, mql_target,  # type: ignore[arg-type]
                                           per_region), seed=seed, num_threads=threads,
                       engine=engine, scheduler=scheduler, workers=workers)
        if config_file is not None:
            from features.dataset_config import DatasetConfigError, load_dataset
            from training.train import dataset_train_config

            try:
                data = load_dataset(config_file)
            except DatasetConfigError as exc:
                raise fail(str(exc)) from exc
            if calibration == "auto" and data.metadata.train.calibration is not None:
                options.pop("calibration")
            config = dataset_train_config(data, **options)
            horizon = None
        else:
            config = TrainConfig(**options)  # type: ignore[arg-type]
            horizon = _horizon_of(data)
        with steps("train") as advance:
            result = run_training(data, config=config, tracking_uri=settings.tracking_uri,
                                  store_dir=settings.home, experiment=settings.experiment,
                                  model_name=settings.model_name, output_dir=out,
                                  oracle=_oracle(ground_truth, horizon or 90),
                                  register=register,
                                  progress=advance)
    except (TrainingDataError, FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from exc
    except OSError as exc:
        if engine != "dask":
            raise
        raise fail(str(exc)) from exc
    m = result.metrics
    console.print(
        f"test ROC AUC {m['test_roc_auc']:.3f} (points {m.get('points_roc_auc', float('nan')):.3f}"
        f", logistic {m['logistic_roc_auc']:.3f}"
        + (f", oracle {m['oracle_roc_auc']:.3f}" if "oracle_roc_auc" in m else "")
        + f"), ECE {m['test_ece']:.3f}, top-decile lift {m['test_lift_top10']:.2f}")
    if result.version:
        console.print(f"registered {result.model_name} version {result.version} "
                      f"({', '.join(result.aliases)}); run {result.run_id}")
    dataset = result.bundle.metadata.dataset if config_file else None
    if dataset is not None and dataset.kind == "lead_snapshot":
        from serving.samples import write_snapshot_samples

        folder = write_snapshot_samples(data, Path(settings.home) / "samples" / dataset.name,
                                        bundle=result.bundle)
        console.print(f"sample leads for the page: leadscore serve --samples {folder}",
                      markup=False)
    console.print(f"see it: {ui_command(result.tracking_uri)}")


@app.command()
def check(
    config_file: Annotated[Path, typer.Option("--config", help="Dataset config (YAML or "
                                                               "TOML) to validate.")],
) -> None:
    """Validate a dataset config and the data it points at; report every problem at once.

    Exit status 0 when the config loads cleanly (a summary is printed), 2 otherwise.
    """
    from features.dataset_config import DatasetConfigError, load_dataset

    try:
        ts = load_dataset(config_file)
    except DatasetConfigError as exc:
        console.print(f"[bold red]{len(exc.problems)} problem(s)[/] in {exc.path}:")
        for problem in exc.problems:
            console.print(f"  - {problem}", markup=False)
        raise typer.Exit(code=2) from exc
    meta = ts.metadata
    split = meta.split
    console.print(
        f"ok: {meta.dataset.name} ({meta.dataset.kind}): {meta.rows:,} rows, "
        f"{meta.positives:,} conversions ({meta.positives / max(meta.rows, 1):.1%}), "
        f"{len(meta.features)} features, split {split.kind if split else 'time (pipeline default)'}"
        + (f" at {split.at}" if split and split.at else ""), markup=False)


def _horizon_of(training_set: str | Path) -> int:
    from features.build import read_training_set

    return int(read_training_set(training_set).metadata.horizon_days or 90)


@app.command()
def promote(
    ctx: typer.Context,
    metric: Annotated[str, typer.Option(help="Metric compared on the latest test period.")]
    = "roc_auc",
    margin: Annotated[float, typer.Option(help="How much better the challenger must be.")]
    = 0.0,
    force: Annotated[bool, typer.Option(help="Promote even if the challenger is not "
                                             "better.")] = False,
    data: Annotated[Path | None, typer.Option(help="Training set to rebuild the test period "
                                                   "from (default: the one logged with the "
                                                   "challenger).")] = None,
) -> None:
    """Make the challenger the champion if it beats the champion on the latest period.

    Both are re-scored on the challenger's test period; the decision and both scores are
    recorded as tags on the versions. A first model is already champion.
    """
    from runtime.registry import RegistryError
    from training.promote import PromotionError
    from training.promote import promote as run_promote

    settings: Settings = ctx.obj
    try:
        result = run_promote(settings.tracking_uri, model_name=settings.model_name,
                             store_dir=settings.home, metric=metric, margin=margin,
                             force=force, data=data)
    except (RegistryError, PromotionError, ValueError) as exc:
        raise fail(str(exc)) from exc
    console.print(result.to_dict())


@app.command()
def score(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option(help="Folder with the four tables.")],
    out: Annotated[Path, typer.Option(help="File to write (.csv or .parquet).")],
    as_of: Annotated[str | None, typer.Option(help="Score as of this date (default: the "
                                                   "latest timestamp in the data).")] = None,
    alias: Annotated[str, typer.Option(help="Registry alias to score with.")] = "champion",
) -> None:
    """Score every open lead with the champion: probability, score, MQL, grade, reasons.

    Uses the same code path as the HTTP service.
    """
    from features.contract import ContractError
    from serving.batch import score_with_champion
    from serving.model_store import ModelNotAvailableError

    settings: Settings = ctx.obj
    try:
        with steps("score") as advance:
            advance("scoring open leads")
            scored = score_with_champion(data, out, as_of, settings.tracking_uri,
                                         settings.model_name, alias)
    except (ModelNotAvailableError, ContractError, FileNotFoundError, ValueError) as exc:
        raise fail(str(exc)) from exc
    console.print(f"scored {len(scored):,} open leads ({int(scored['mql'].sum()):,} MQLs) "
                  f"into {out}")


def _serving_settings(settings: Settings, samples: Path | None, workers: str | None = None):
    """The service's settings: its own environment (``serving.settings``: top reasons,
    reload period, workers, ...) with this command's store, model and samples."""
    import dataclasses

    from serving.settings import Settings as ServingSettings

    env = dict(os.environ)
    if workers is not None:
        env["LEADSCORE_WORKERS"] = workers
    try:
        served = ServingSettings.from_env(env)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    return dataclasses.replace(served, tracking_uri=settings.tracking_uri,
                               model_name=settings.model_name,
                               samples_dir=samples or served.samples_dir)


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 3000,
    samples: Annotated[Path | None, typer.Option(help="Folder of sample lead JSONs for the "
                                                      "page.")] = None,
    workers: Annotated[str | None, typer.Option(
        help="Worker processes: a number or cpu_count (default: LEADSCORE_WORKERS, else 1)."
    )] = None,
) -> None:
    """Serve the champion with BentoML: /score, /score_batch, /model and the page at /."""
    from serving.launch import serve_forever
    from serving.model_store import ModelNotAvailableError

    try:
        code = serve_forever(_serving_settings(ctx.obj, samples, workers), host, port)
    except ModelNotAvailableError as exc:
        raise fail(str(exc)) from exc
    raise typer.Exit(code)


@app.command()
def demo(
    ctx: typer.Context,
    leads: Annotated[int, typer.Option(help="Leads to simulate.", min=1000)] = 20_000,
    seed: Annotated[int, typer.Option(help="Simulation seed.")] = 0,
    host: Annotated[str, typer.Option(help="Address the service listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port the service listens on.")] = 3000,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve",
                                              help="Start the service at the end.")] = True,
) -> None:
    """The main job end to end: simulate, build features, train, register, score, serve."""
    from features.io import load_tables
    from serving.samples import write_samples

    settings: Settings = ctx.obj
    home = settings.home
    data, training_set = home / "data", home / "training_set.parquet"
    console.print(f"[bold]leadscore demo[/]: everything lands in {home}")
    simulate(out=data, leads=leads, seed=seed)
    features(data=str(data), out=str(training_set))
    train(ctx, data=training_set, ground_truth=data / "ground_truth.parquet",
          out=home / "report")
    promote(ctx)
    score(ctx, data=data, out=home / "scores.csv")
    samples = write_samples(load_tables(data), home / "samples", 6)
    console.print(f"wrote sample leads for the page to {samples}")
    if serve_after:
        console.print(f"serving on http://{host}:{port}/ (Ctrl-C to stop)")
        serve(ctx, host=host, port=port, samples=samples)


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()

"""The ``leadscore`` command: a thin layer that reads settings once and calls the stages."""

from __future__ import annotations

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
        f"wrote {meta['rows']:,} snapshots of {meta['leads']:,} leads ({meta['positives']:,} "
        f"positive) from {meta['activities']:,} activities to {out} "
        f"in {time.perf_counter() - t0:.1f}s")


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()

"""The ``leadscore`` command: a thin layer that reads settings once and calls the stages.

Two rules hold for every command, in one place each:

* **Errors.** A user's mistake (any ``leadscore.errors.LeadscoreError``, a missing file, a
  folder where a file belongs, an empty or unreadable file, a wrong value) is printed as one
  line, ``error: ...``, on stderr, and the exit status is 2 (``LeadscoreGroup.invoke``).
  Anything else is a bug and keeps its traceback. Inputs are checked up front where the
  message can say what to do instead (``need_file``, ``need_folder``).
* **Output.** Messages and progress go to stderr. Stdout carries only results: with
  ``--json`` a command prints one JSON object there for scripts (``emit``), and chatter a
  library would print on stdout meanwhile goes to stderr (``LeadscoreCommand.invoke``).
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, TextIO

import click
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from typer.core import TyperCommand, TyperGroup

import leadscore
from leadscore.errors import InputError, LeadscoreError
from leadscore.settings import CHAMPION_ALIAS, Settings

RESULTS: ContextVar[TextIO | None] = ContextVar("leadscore_results", default=None)
"""The stream results (``--json``) go to: the command's stdout, while it runs."""
FILE_ERRORS: tuple[type[OSError], ...] = (
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
    FileExistsError,
)


def user_errors() -> tuple[type[BaseException], ...]:
    """What counts as the user's mistake rather than a bug: one line, exit status 2.

    ``ValueError`` covers a wrong option value and the readers' format errors (pyarrow's
    ``ArrowInvalid``, pandas' ``EmptyDataError`` and ``ParserError``, ``UnicodeDecodeError``,
    JSON and TOML decoding); YAML's errors have their own root.
    """
    import yaml

    return (LeadscoreError, ValueError, yaml.YAMLError, *FILE_ERRORS)


def describe(exc: BaseException) -> list[str]:
    """The lines that tell the user what went wrong: a headline, then any list of problems.

    An error that lists problems (a dataset config's, the data contract's) keeps the
    list, one problem a line; a single problem is folded into the headline.
    """
    problems = [
        " ".join(str(p).split())
        for p in getattr(exc, "problems", None) or getattr(exc, "violations", None) or []
    ]
    if isinstance(exc, LeadscoreError) and problems:
        head = str(exc).splitlines()[0].rstrip(":")
        where = getattr(exc, "path", None)
        if len(problems) == 1:
            return [f"{where}: {problems[0]}" if where else f"{head}: {problems[0]}"]
        return [
            f"{where}: {len(problems)} problems:" if where else f"{head}:",
            *(f"  - {p}" for p in problems),
        ]
    if isinstance(exc, OSError) and exc.filename is not None:
        name = exc.filename
        if isinstance(exc, IsADirectoryError):
            return [f"{name} is a folder; a file was expected here"]
        if isinstance(exc, NotADirectoryError):
            return [f"{name}: a file stands where a folder was expected"]
        if isinstance(exc, FileNotFoundError):
            return [f"{name} does not exist"]
        return [f"{name}: {exc.strerror or exc}"]
    text = " ".join(str(exc).split()) or type(exc).__name__
    import yaml

    if isinstance(exc, UnicodeDecodeError):
        return [f"a file is not UTF-8 text ({exc.reason} at byte {exc.start})"]
    if isinstance(exc, yaml.YAMLError):
        return [f"not valid YAML: {text}"]
    if isinstance(exc, format_errors()):
        return [f"cannot read the input: {text} ({type(exc).__name__})"]
    if isinstance(exc, LeadscoreError) or type(exc) in (ValueError, *FILE_ERRORS):
        return [text]
    return [f"{text} ({type(exc).__name__})"]


def print_error(exc: BaseException) -> None:
    """Print ``error: ...`` on stderr, unwrapped and without markup, whatever the message."""
    head, *rest = describe(exc)
    click.echo(f"{click.style('error:', fg='red', bold=True)} {head}", err=True)
    for line in rest:
        click.echo(line, err=True)


class LeadscoreCommand(TyperCommand):
    """A command whose stdout carries nothing but its result."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command with stdout pointed at stderr; ``emit`` writes the result."""
        if RESULTS.get() is not None:  # a command run by another (``demo``)
            return super().invoke(ctx)
        token = RESULTS.set(sys.stdout)
        try:
            with contextlib.redirect_stdout(sys.stderr):
                return super().invoke(ctx)
        finally:
            RESULTS.reset(token)


class LeadscoreGroup(TyperGroup):
    """The ``leadscore`` group: the one place where a user's error becomes ``error: ...``."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the callback and the command; report a user's error in one line, exit 2."""
        try:
            return super().invoke(ctx)
        except user_errors() as exc:
            print_error(exc)
            raise typer.Exit(code=2) from None


app = typer.Typer(
    cls=LeadscoreGroup,
    help="Predictive lead scoring: simulate or load CRM data, build point-in-time features, "
    "train and register LightGBM models, and serve explained scores.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)
JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print the result as one JSON object on stdout (for scripts)."),
]


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"leadscore {leadscore.__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Read settings once, here, and hand them to every command through the context."""
    ctx.obj = Settings.from_env()


@contextmanager
def steps(title: str) -> Iterator:
    """A rich progress display whose ``advance(step)`` names the step now running."""
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(title, total=None)

        def advance(step: str) -> None:
            progress.update(task, description=f"{title}: {step}")

        yield advance
        progress.update(task, description=f"{title}: done")


def fail(message: str) -> InputError:
    """The error to raise for a bad option or input; printed as ``error: message``, exit 2."""
    return InputError(message)


def emit(result: Mapping[str, Any]) -> None:
    """Print ``result`` as one JSON object on the command's real stdout (``--json``)."""
    plain = json.loads(json.dumps(result, default=_jsonable))  # NaN and inf parse back
    stream = RESULTS.get() or sys.stdout
    stream.write(json.dumps(_finite(plain), allow_nan=False) + "\n")
    stream.flush()


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as null: strict JSON, which ``jq`` and others read."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _jsonable(value: Any) -> Any:
    """JSON for what results hold besides plain values: models, paths, dates, numpy."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _local(location: str | Path) -> Path | None:
    """``location`` as a local path, or None for an fsspec URL (checked by its reader)."""
    return None if "://" in str(location) else Path(location)


def need_file(location: str | Path | None, option: str, hint: str = "") -> None:
    """Refuse up front a ``option`` that is not an existing, non-empty file.

    Args:
        location: The path given (None: the option was not given; URLs are not checked).
        option: The option's name, for the message.
        hint: What to do instead when a folder was given.
    """
    path = None if location is None else _local(location)
    if path is None:
        return
    if not path.exists():
        raise fail(f"{option}: {path} does not exist")
    if path.is_dir():
        raise fail(hint or f"{option}: {path} is a folder; give a file")
    if path.stat().st_size == 0:
        raise fail(f"{option}: {path} is empty")


def need_folder(location: str | Path | None, option: str, hint: str = "") -> None:
    """Refuse up front a ``option`` that is not an existing folder (``hint``: for a file)."""
    path = None if location is None else _local(location)
    if path is None:
        return
    if not path.exists():
        raise fail(f"{option}: {path} does not exist")
    if not path.is_dir():
        raise fail(hint or f"{option}: {path} is a file; give a folder")


def can_write(location: str | Path | None, option: str, folder: bool = False) -> None:
    """Refuse up front an output path of the wrong kind (a folder for a file, or back)."""
    path = None if location is None else _local(location)
    if path is None:
        return
    if path.exists() and path.is_dir() != folder:
        raise fail(
            f"{option}: {path} is a {'file' if folder else 'folder'}; "
            f"give {'a folder' if folder else 'a file'} to write"
        )
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise fail(f"{option}: {parent} is a file, so {path} cannot be written")


def format_errors() -> tuple[type[Exception], ...]:
    """What the readers raise for a file that is not what its name says."""
    import pandas as pd
    import pyarrow as pa

    return (
        pa.ArrowInvalid,
        pd.errors.EmptyDataError,
        pd.errors.ParserError,
        UnicodeDecodeError,
        json.JSONDecodeError,
    )


@contextmanager
def reading(option: str, location: str | Path | None) -> Iterator[None]:
    """Name ``option`` and its path when a file read meanwhile has the wrong format."""
    try:
        yield
    except format_errors() as exc:
        if isinstance(exc, LeadscoreError):
            raise
        text = (
            f"not UTF-8 text ({exc.reason} at byte {exc.start})"
            if isinstance(exc, UnicodeDecodeError)
            else " ".join(str(exc).split())
        )
        raise fail(f"{option}: cannot read {location}: {text} ({type(exc).__name__})") from exc


def need_training_set(location: str | Path | None, option: str = "--data") -> None:
    """Refuse up front a training set that is not there, with the fix for the usual mistake:
    a folder of tables (``leadscore simulate``'s output) where a training set belongs."""
    path = None if location is None else _local(location)
    if path is not None and path.is_dir():
        from features.io import find_table_file

        if find_table_file(path, "leads") is not None:
            raise fail(
                f"{path} is a folder of tables; build a training set first with "
                f"`leadscore features --data {path} --out training_set.parquet`, "
                "or pass --config"
            )
        raise fail(
            f"{option}: {path} is a folder; give a training set (.parquet) written "
            "by `leadscore features`, or pass --config"
        )
    need_file(location, option)


@app.command(cls=LeadscoreCommand)
def simulate(
    out: Annotated[
        Path,
        typer.Option(
            help="Folder to write leads/accounts/activities/conversions (+ ground_truth) into."
        ),
    ],
    leads: Annotated[int, typer.Option(help="Number of leads to simulate.", min=10)] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same data.")] = 0,
    start: Annotated[str, typer.Option(help="First lead creation date.")] = "2024-01-01",
    months: Annotated[int, typer.Option(help="Months of lead creation.", min=3)] = 18,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    json_out: JsonOption = False,
) -> None:
    """Simulate a realistic B2B lead funnel with known conversion probabilities.

    Writes the four tables of the data contract, plus ground_truth.parquet (the
    probability the simulator used for each lead: never a model input, only used to
    report the oracle AUC).
    """
    from features.io import write_tables
    from features.simulate import simulate as run_simulation

    if fmt not in ("parquet", "csv"):
        raise fail("--format must be 'parquet' or 'csv'")
    can_write(out, "--out", folder=True)
    t0 = time.perf_counter()
    with steps("simulate") as advance:
        advance(f"simulating {leads:,} leads")
        sim = run_simulation(leads, seed=seed, start=start, months=months)
        advance("writing tables")
        write_tables({**sim.tables(), "ground_truth": sim.ground_truth}, out, fmt=fmt)
    console.print(
        f"wrote {len(sim.leads):,} leads, {len(sim.accounts):,} accounts, "
        f"{len(sim.activities):,} activities, {len(sim.conversions):,} conversions to {out} "
        f"in {time.perf_counter() - t0:.1f}s"
    )
    if json_out:
        emit(
            {
                "out": str(out),
                "leads": len(sim.leads),
                "accounts": len(sim.accounts),
                "activities": len(sim.activities),
                "conversions": len(sim.conversions),
                "seconds": round(time.perf_counter() - t0, 3),
            }
        )


@app.command(cls=LeadscoreCommand)
def features(
    data: Annotated[
        str,
        typer.Option(
            help="Folder or fsspec URL (s3://, gs://, memory://) "
            "with leads, accounts, activities and conversions "
            "(.parquet or .csv)."
        ),
    ],
    out: Annotated[
        str,
        typer.Option(
            help="Training set to write (.parquet, path or URL); metadata goes to OUT.json."
        ),
    ],
    horizon: Annotated[
        int, typer.Option(help="Label: converts within this many days after as_of.", min=1)
    ] = 90,
    snapshots: Annotated[
        str, typer.Option(help="monthly, weekly or after-creation:7,30,60.")
    ] = "monthly",
    max_lead_age: Annotated[
        int,
        typer.Option(help="Stop snapshotting leads older than this many days (calendar rules)."),
    ] = 180,
    data_end: Annotated[
        str | None,
        typer.Option(
            help="Last moment the data covers, UTC (a date means its midnight). Default: the "
            "latest timestamp not after the export time and not an isolated outlier "
            "(a tail of at most 0.1% of the rows, 30+ days after all others)."
        ),
    ] = None,
    export_time: Annotated[
        str | None,
        typer.Option(help="When the data was exported, UTC (default: now); bounds the data end."),
    ] = None,
    unknown_activity: Annotated[
        str, typer.Option(help="reject or other: what to do with unknown activity types.")
    ] = "reject",
    timestamp_format: Annotated[
        str | None, typer.Option(help="strftime format of text timestamps (default ISO 8601).")
    ] = None,
    engine: Annotated[str, typer.Option(help="single (this machine) or dask.")] = "single",
    scheduler: Annotated[
        str,
        typer.Option(help="Dask engine: 'local' or a scheduler address such as tcp://host:8786."),
    ] = "local",
    workers: Annotated[
        int, typer.Option(help="Worker processes for --scheduler local.", min=1)
    ] = 2,
    partitions: Annotated[
        int | None, typer.Option(help="Dask engine: lead partitions (default: automatic).")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Build a point-in-time training set: one row per (lead, as_of) snapshot.

    Features use only rows at or before as_of; the label says whether the lead
    converted within the horizon after it. Input is validated first; nothing is
    written when it breaks the data contract.
    """
    import pandas as pd

    from features.build import run_features
    from features.pipeline import PipelineConfig, SnapshotRule, describe_data_end

    if unknown_activity not in ("reject", "other"):
        raise fail("--unknown-activity must be 'reject' or 'other'")
    if engine not in ("single", "dask"):
        raise fail("--engine must be 'single' or 'dask'")
    if not out.endswith(".parquet"):
        raise fail(
            f"--out: the training set is written as Parquet; give a .parquet file, got {out}"
        )
    need_folder(
        data,
        "--data",
        hint=f"--data: {data} is a file; give the folder that holds "
        "leads, accounts, activities and conversions",
    )
    can_write(out, "--out")
    try:
        end = pd.Timestamp(data_end) if data_end else None
    except ValueError as exc:
        raise fail(f"--data-end: cannot read {data_end!r} as a date") from exc
    try:
        exported = pd.Timestamp(export_time) if export_time else None
    except ValueError as exc:
        raise fail(f"--export-time: cannot read {export_time!r} as a date") from exc
    rule = SnapshotRule.parse(snapshots, max_lead_age)
    config = PipelineConfig(horizon, rule, end, export_time=exported)
    t0 = time.perf_counter()
    with steps("features") as advance, reading("--data", data):
        if engine == "dask":
            from features.distributed import run_features_dask

            ts = run_features_dask(
                data,
                out,
                config,
                unknown_activity,  # type: ignore[arg-type]
                timestamp_format,
                progress=advance,
                scheduler=scheduler,
                n_workers=workers,
                n_partitions=partitions,
            )
        else:
            ts = run_features(
                data,
                out,
                config,
                unknown_activity,  # type: ignore[arg-type]
                timestamp_format,
                progress=advance,
            )
    meta = ts.metadata
    for line in describe_data_end(meta):
        console.print(line, markup=False, highlight=False)
    console.print(
        f"wrote {meta.rows:,} snapshots of {meta.leads:,} leads ({meta.positives:,} "
        f"positive) from {meta.activities:,} activities to {out} "
        f"in {time.perf_counter() - t0:.1f}s"
    )
    if json_out:
        emit(
            {
                "out": out,
                "seconds": round(time.perf_counter() - t0, 3),
                "metadata": meta.model_dump(mode="json"),
            }
        )


def _oracle(ground_truth: Path | None, horizon: int):
    if ground_truth is None:
        return None
    import pandas as pd

    from training.evaluate import oracle_from_ground_truth

    with reading("--ground-truth", ground_truth):
        return oracle_from_ground_truth(pd.read_parquet(ground_truth), horizon)


@app.command(cls=LeadscoreCommand)
def train(
    ctx: typer.Context,
    data: Annotated[
        str | None,
        typer.Option(help="Training set written by `leadscore features` (path or fsspec URL)."),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Dataset config (YAML/TOML, see examples/): train on the export it "
            "maps, with its features, split, points baseline and training settings, instead of "
            "--data.",
        ),
    ] = None,
    ground_truth: Annotated[
        Path | None,
        typer.Option(
            help="Simulator ground_truth.parquet: report the oracle AUC beside the model's."
        ),
    ] = None,
    tune: Annotated[
        int,
        typer.Option(
            help="Optuna trials of hyper-parameter search on the validation period (0: none).",
            min=0,
        ),
    ] = 0,
    mql_rule: Annotated[
        str,
        typer.Option(
            help="capacity (top share of leads) or precision (minimum MQL→conversion rate)."
        ),
    ] = "capacity",
    mql_target: Annotated[
        float, typer.Option(help="Share of leads that become MQLs, or the precision to reach.")
    ] = 0.1,
    per_region: Annotated[
        bool, typer.Option(help="Also choose one MQL threshold per region.")
    ] = False,
    calibration: Annotated[str, typer.Option(help="auto, isotonic, platt, beta or none.")] = "auto",
    model: Annotated[
        str,
        typer.Option(
            help="auto (the best of LightGBM, logistic regression and their blend by "
            "validation or cross-validated log loss), lightgbm, logistic or blend."
        ),
    ] = "auto",
    crossfit: Annotated[
        str,
        typer.Option(
            help="auto (K-fold cross-fitting on small data, a validation period on large), "
            "on or off."
        ),
    ] = "auto",
    monotone: Annotated[
        str,
        typer.Option(
            help="Monotone constraints from the signals' directions: auto (kept when they "
            "cost at most 0.002 validation ROC AUC), on or off."
        ),
    ] = "auto",
    out: Annotated[
        Path | None,
        typer.Option(help="Also write bundle, model card, metrics and plots to this folder."),
    ] = None,
    register: Annotated[
        bool, typer.Option(help="Register the model in MLflow as challenger.")
    ] = True,
    seed: Annotated[int, typer.Option(help="Seed for LightGBM, Optuna and baselines.")] = 0,
    threads: Annotated[
        int,
        typer.Option(help="LightGBM threads (0: all cores; 1 is faster on a busy machine).", min=0),
    ] = 0,
    engine: Annotated[
        str,
        typer.Option(
            help="single (this machine; 'local' also accepted) "
            "or dask (lightgbm.dask on a Dask cluster)."
        ),
    ] = "single",
    scheduler: Annotated[
        str,
        typer.Option(help="Dask engine: 'local' or a scheduler address such as tcp://host:8786."),
    ] = "local",
    workers: Annotated[
        int, typer.Option(help="Worker processes for --scheduler local.", min=1)
    ] = 2,
    json_out: JsonOption = False,
) -> None:
    """Train a lead-scoring model, evaluate it against baselines, log and register it.

    Splits by time (train, then validation, then the latest test period), fits LightGBM,
    a regularised logistic regression and their blend and registers the best by
    validation log loss (cross-validated on small data), calibrates and picks the MQL
    policy on validation (out-of-fold predictions on small data), reports test metrics
    against the points-based score and the same logistic regression, logs everything to
    MLflow and registers the model as `challenger` (a first model also becomes
    `champion`). With `--engine dask` the trees are trained by lightgbm.dask on a Dask
    cluster; the registered model is the same kind of LightGBM text model.
    """
    from runtime.registry import ui_command
    from training.policy import PolicyConfig
    from training.train import TrainConfig, run_training

    settings: Settings = ctx.obj
    if (data is None) == (config_file is None):
        raise fail("give either --data (a training set) or --config (a dataset config)")
    engine = "single" if engine == "local" else engine
    if engine not in ("single", "dask"):
        raise fail("--engine must be 'single' (or 'local') or 'dask'")
    need_training_set(data)
    need_file(config_file, "--config")
    need_file(ground_truth, "--ground-truth")
    can_write(out, "--out", folder=True)
    try:
        options = dict(
            tune_trials=tune,
            calibration=calibration,
            policy=PolicyConfig(
                mql_rule,
                mql_target,  # type: ignore[arg-type]
                per_region,
            ),
            seed=seed,
            num_threads=threads,
            model=model,
            crossfit=crossfit,
            monotone=monotone,
            engine=engine,
            scheduler=scheduler,
            workers=workers,
        )
        if config_file is not None:
            from training.config import load_training_dataset, train_config_from_dataset

            with reading("--config", config_file):
                data = load_training_dataset(config_file)
            declared = train_config_from_dataset(data).model_fields_set
            for key in ("calibration", "model", "crossfit", "monotone"):
                if options[key] == "auto" and key in declared:
                    options.pop(key)  # the config's own choice wins over the default
            config = train_config_from_dataset(data, **options)
            horizon = None
        else:
            config = TrainConfig(**options)  # type: ignore[arg-type]
            with reading("--data", data):
                horizon = _horizon_of(data)
        with steps("train") as advance:
            result = run_training(
                data,
                config=config,
                tracking_uri=settings.registry_uri,
                store_dir=settings.home,
                experiment=settings.experiment,
                model_name=settings.model_name,
                output_dir=out,
                oracle=_oracle(ground_truth, horizon or 90),
                register=register,
                progress=advance,
            )
    except OSError as exc:  # a Dask cluster that cannot be reached is not a bug either
        if engine != "dask" or isinstance(exc, FILE_ERRORS):
            raise
        raise fail(f"the Dask cluster: {exc}") from exc
    m = result.metrics
    # A baseline that could not be scored (no points rules, a single-valued score) has
    # no finite AUC: it is left out rather than printed as "nan".
    others = ", ".join(
        f"{name} {m[key]:.3f}"
        for name, key in (
            ("points", "points_roc_auc"),
            ("logistic", "logistic_roc_auc"),
            ("oracle", "oracle_roc_auc"),
        )
        if isinstance(m.get(key), int | float) and math.isfinite(m[key])
    )
    console.print(
        f"test ROC AUC {m['test_roc_auc']:.3f}"
        + (f" ({others})" if others else "")
        + f", ECE {m['test_ece']:.3f}, top-decile lift {m['test_lift_top10']:.2f}"
        + f"; model: {result.bundle.metadata.model_choice.chosen}"
    )
    if result.version:
        console.print(
            f"registered {result.model_name} version {result.version} "
            f"({', '.join(result.aliases)}); run {result.run_id}"
        )
    folder = None
    dataset = result.bundle.metadata.dataset if config_file else None
    if dataset is not None and dataset.kind == "lead_snapshot":
        from serving.samples import write_snapshot_samples

        folder = write_snapshot_samples(
            data, Path(settings.home) / "samples" / dataset.name, bundle=result.bundle
        )
        console.print(
            f"sample leads for the page: leadscore serve --samples {folder}", markup=False
        )
    console.print(f"see it: {ui_command(result.tracking_uri)}")
    if json_out:
        emit(
            {
                "model_name": result.model_name,
                "version": result.version,
                "aliases": result.aliases,
                "run_id": result.run_id,
                "tracking_uri": result.tracking_uri,
                "metrics": result.metrics,
                "output_dir": result.output_dir,
                "samples": folder,
                "seconds": result.seconds,
            }
        )


@app.command(cls=LeadscoreCommand)
def check(
    config_file: Annotated[
        Path, typer.Option("--config", help="Dataset config (YAML or TOML) to validate.")
    ],
    json_out: JsonOption = False,
) -> None:
    """Validate a dataset config and the data it points at; report every problem at once.

    Exit status 0 when the config loads cleanly (a summary is printed), 2 otherwise.
    """
    from training.config import load_training_dataset

    need_file(config_file, "--config")
    with reading("--config", config_file):
        # every problem at once, the train: keys included: DatasetConfigError.problems
        ts = load_training_dataset(config_file)
    meta = ts.metadata
    split = meta.split
    console.print(
        f"ok: {meta.dataset.name} ({meta.dataset.kind}): {meta.rows:,} rows, "
        f"{meta.positives:,} conversions ({meta.positives / max(meta.rows, 1):.1%}), "
        f"{len(meta.features)} features, split {split.kind if split else 'time (pipeline default)'}"
        + (f" at {split.at}" if split and split.at else ""),
        markup=False,
    )
    if json_out:
        emit({"ok": True, "config": str(config_file), "metadata": meta.model_dump(mode="json")})


def _horizon_of(training_set: str | Path) -> int:
    from features.build import read_training_set

    return int(read_training_set(training_set).metadata.horizon_days or 90)


@app.command(cls=LeadscoreCommand)
def promote(
    ctx: typer.Context,
    metric: Annotated[
        str, typer.Option(help="Metric compared on the latest test period.")
    ] = "roc_auc",
    margin: Annotated[float, typer.Option(help="How much better the challenger must be.")] = 0.0,
    force: Annotated[
        bool,
        typer.Option(
            help="Promote even if the challenger is not better, or cannot be compared with "
            "the champion (another horizon, outcome or population)."
        ),
    ] = False,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Training set to rebuild the test period "
            "from (default: the one logged with the "
            "challenger)."
        ),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Make the challenger the champion if it beats the champion on the latest period.

    Both are re-scored on the challenger's test period; the decision and both scores are
    recorded as tags on the versions. A first model is already champion.
    """
    from training.promote import promote as run_promote

    settings: Settings = ctx.obj
    need_training_set(data)
    with reading("--data", data):
        result = run_promote(
            settings.registry_uri,
            model_name=settings.model_name,
            store_dir=settings.home,
            metric=metric,
            margin=margin,
            force=force,
            data=data,
        )
    console.print(result.to_dict())
    if json_out:
        emit(result.to_dict())


@app.command(cls=LeadscoreCommand)
def score(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option(help="Folder with the four tables.")],
    out: Annotated[Path, typer.Option(help="File to write (.csv or .parquet).")],
    as_of: Annotated[
        str | None,
        typer.Option(
            help="Score as of this date (default: the data end, chosen as `leadscore "
            "features` chooses it: the latest timestamp not after now and not an outlier)."
        ),
    ] = None,
    alias: Annotated[str, typer.Option(help="Registry alias to score with.")] = CHAMPION_ALIAS,
    actions: Annotated[
        int,
        typer.Option(
            help="Next best actions per lead (what would raise its score most if it happened "
            "now), re-scored by the same features and model; 0: none.",
            min=0,
            max=20,
        ),
    ] = 3,
    json_out: JsonOption = False,
) -> None:
    """Score the open leads with the champion: probability, score, MQL, grade, reasons.

    Only leads in the population the champion was trained on are scored (the rule is
    recorded with the model, e.g. open leads up to 180 days old); the others are counted
    as skipped. The MQL share is reported beside the policy's target. Uses the same
    code path as the HTTP service.
    """
    from serving.batch import score_with_champion

    settings: Settings = ctx.obj
    need_folder(
        data,
        "--data",
        hint=f"--data: {data} is a file; give the folder that holds "
        "leads, accounts, activities and conversions",
    )
    if out.suffix not in (".csv", ".parquet"):
        raise fail(f"--out: give a .csv or .parquet file to write, got {out}")
    can_write(out, "--out")
    with steps("score") as advance:
        advance("scoring open leads")
        with reading("--data", data):
            run = score_with_champion(
                data, out, as_of, settings.registry_uri, settings.model_name, alias, actions
            )
    scored = run.scores
    console.print(
        f"scored {len(scored):,} open leads ({int(scored['mql'].sum()):,} MQLs) into {out}"
    )
    console.print(run.summary())
    if (note := run.skipped_note()) is not None:
        console.print(note)
    if json_out:
        emit({"out": str(out), **run.to_dict()})


def _serving_settings(
    settings: Settings, samples: Path | None, workers: str | None = None
) -> Settings:
    """The settings the server gets: these, serving this command's registry (the embedded
    store in ``home`` unless one is named), with ``--samples`` and ``--workers`` applied."""
    changes: dict[str, Any] = {"tracking_uri": settings.registry_uri}
    if samples is not None:
        changes["samples_dir"] = samples
    if workers is not None:
        changes["workers"] = workers
    return settings.replace(**changes)


@app.command(cls=LeadscoreCommand)
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 3000,
    samples: Annotated[
        Path | None, typer.Option(help="Folder of sample lead JSONs for the page.")
    ] = None,
    workers: Annotated[
        str | None,
        typer.Option(
            help="Worker processes: a number or cpu_count (default: LEADSCORE_WORKERS, else 1)."
        ),
    ] = None,
) -> None:
    """Serve the champion with BentoML: /score, /score_batch, /model and the page at /."""
    from serving.launch import serve_forever

    need_folder(samples, "--samples")
    code = serve_forever(_serving_settings(ctx.obj, samples, workers), host, port)
    raise typer.Exit(code)


@app.command(cls=LeadscoreCommand)
def demo(
    ctx: typer.Context,
    leads: Annotated[int, typer.Option(help="Leads to simulate.", min=1000)] = 20_000,
    seed: Annotated[int, typer.Option(help="Simulation seed.")] = 0,
    host: Annotated[str, typer.Option(help="Address the service listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port the service listens on.")] = 3000,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the service at the end.")
    ] = True,
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
    train(ctx, data=training_set, ground_truth=data / "ground_truth.parquet", out=home / "report")
    promote(ctx)
    score(ctx, data=data, out=home / "scores.csv")
    samples = write_samples(load_tables(data), home / "samples", 6)
    console.print(f"wrote sample leads for the page to {samples}")
    if serve_after:
        console.print(f"serving on http://{host}:{port}/ (Ctrl-C to stop)")
        serve(ctx, host=host, port=port, samples=samples)


feedback_app = typer.Typer(
    cls=TyperGroup,
    help="Sales feedback: record what sales did with each lead (accepted, rejected with a "
    "reason, SQL, opportunity, won, lost) in the lead store.",
    no_args_is_help=True,
)
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("import", cls=LeadscoreCommand)
def feedback_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Option("--file", help="CSV export of dispositions from the CRM.")],
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Dataset config whose `feedback:` section maps the export's columns and "
            "values (default: the file uses lead_id, stage, occurred_at, reason_code, "
            "reason_text, recorded_by, owner and leadscore's stage and reason names).",
        ),
    ] = None,
    recorded_by: Annotated[
        str | None,
        typer.Option(
            help="Who recorded the rows that do not say (default: the config's "
            "feedback.recorded_by, else 'import:<file name>')."
        ),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Import a CRM export of sales dispositions into the lead store, all or nothing.

    Every bad row is reported (file, row as the file numbers it, column) and then nothing
    is written; importing the same export again records nothing new (duplicates are
    counted). Stages recorded out of funnel order are kept, flagged out_of_order.
    """
    from features.dataset_config import DatasetConfigError
    from features.dataset_config.feedback import read_feedback_config, read_feedback_export
    from store.engine import store
    from store.feedback import Naming, config_problems, record_dispositions

    settings: Settings = ctx.obj
    need_file(file, "--file")
    need_file(config_file, "--config")
    config = None
    if config_file is not None:
        with reading("--config", config_file):
            config = read_feedback_config(config_file)
        if problems := config_problems(config):
            raise DatasetConfigError(config_file, problems)
    with reading("--file", file):
        export = read_feedback_export(file, config)
    naming = Naming(where=str(file), rows=export.rows, columns=export.columns)
    who = recorded_by or (config.recorded_by if config else None) or f"import:{file.name}"
    with store(settings.store_url) as engine:
        result = record_dispositions(engine, export.frame, "import", who, naming=naming)
    counts = {**result.to_dict(), "skipped": export.skipped}
    extra = [f"{export.skipped:,} skipped"] if export.skipped else []
    extra += [f"{result.owners:,} owners set"] if result.owners else []
    console.print(
        f"{file}: {result.recorded:,} recorded, {result.duplicates:,} duplicates, "
        f"{result.flagged:,} flagged out of order" + "".join(f", {e}" for e in extra),
        markup=False,
    )
    if json_out:
        emit({"file": str(file), **counts})


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()

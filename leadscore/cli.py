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
    if path is not None and (path / "_leadscore.json").is_file():
        return  # a training set the Dask engine wrote as a folder (features.partitioned)
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
    leads: Annotated[
        int | None,
        typer.Option(help="Number of leads to simulate [default: 20000, or the preset's].", min=10),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same data.")] = 0,
    start: Annotated[str, typer.Option(help="First lead creation date.")] = "2024-01-01",
    months: Annotated[
        int | None,
        typer.Option(help="Months of lead creation [default: 18, or the preset's].", min=3),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    drift: Annotated[
        str,
        typer.Option(
            help="Inject drift for monitoring to find: none, source_shift (paid search and "
            "syndication take over the lead sources) or low_fit_flood (a campaign floods "
            "low-fit leads in the last months)."
        ),
    ] = "none",
    drift_start_month: Annotated[
        int | None,
        typer.Option(help="Month (from --start) the drift begins; default: the scenario's."),
    ] = None,
    preset: Annotated[
        str,
        typer.Option(
            help="none, or a named company setting: small-company (600 leads over 12 months, "
            "about 4% converting, one large region and two tiny ones)."
        ),
    ] = "none",
    buying_groups: Annotated[
        bool,
        typer.Option(
            help="Make the buying group matter: colleagues share intent, and each persona "
            "already engaged at the account raises a lead's chance to win (the world "
            "`leadscore train-accounts` is measured on; docs/accounts.md)."
        ),
    ] = False,
    partitioned: Annotated[
        bool,
        typer.Option(
            help="Write leads, activities and conversions as hive-partitioned Parquet "
            "folders by month (leads/month=2024-01/part-0.parquet), the layout "
            "`leadscore features --engine dask` reads on the workers."
        ),
    ] = False,
    json_out: JsonOption = False,
) -> None:
    """Simulate a realistic B2B lead funnel with known conversion probabilities.

    Writes the four tables of the data contract, plus ground_truth.parquet (the
    probability the simulator used for each lead: never a model input, only used to
    report the oracle AUC).
    """
    from features.io import write_tables
    from features.simulate import simulate as run_simulation
    from features.simulate.drift import LowFitFlood, SourceShift

    if fmt not in ("parquet", "csv"):
        raise fail("--format must be 'parquet' or 'csv'")
    if partitioned and fmt != "parquet":
        raise fail("--partitioned writes Parquet folders; drop --format csv")
    scenarios = {"none": None, "source_shift": SourceShift, "low_fit_flood": LowFitFlood}
    if drift not in scenarios:
        raise fail(f"--drift: give one of {', '.join(scenarios)}, got {drift!r}")
    kind = scenarios[drift]
    if kind is None and drift_start_month is not None:
        raise fail("--drift-start-month: give a --drift scenario too")
    scenario = None if kind is None else kind(start_month=drift_start_month)
    can_write(out, "--out", folder=True)
    setting = _simulator_preset(preset)
    if setting is not None:
        leads = setting.n_leads if leads is None else leads
        months = setting.months if months is None else months
    leads = 20_000 if leads is None else leads
    months = 18 if months is None else months
    t0 = time.perf_counter()
    with steps("simulate") as advance:
        advance(f"simulating {leads:,} leads")
        if setting is None:
            sim = run_simulation(
                leads,
                seed=seed,
                start=start,
                months=months,
                drift=scenario,
                buying_groups=buying_groups,
            )
        else:
            sim = setting.simulate(
                seed, leads, start=start, months=months, drift=scenario, buying_groups=buying_groups
            )
        advance("writing tables")
        if partitioned:
            _write_partitioned(sim, out)
        else:
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
    on_workers = engine == "dask" and _partitioned_input(data)
    can_write(out, "--out", folder=on_workers)
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
        if on_workers:
            ts = _features_on_workers(
                data,
                out,
                config,
                unknown_activity,
                timestamp_format,
                advance,
                scheduler,
                workers,
                partitions,
            )
        elif engine == "dask":
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
            help="auto (the best of the points score, logistic regression, LightGBM and "
            "the blend by validation or cross-validated log loss), points, lightgbm, "
            "logistic or blend."
        ),
    ] = "auto",
    crossfit: Annotated[
        str,
        typer.Option(
            help="auto (K-fold cross-fitting on small data, a validation period on large), "
            "on or off."
        ),
    ] = "auto",
    per_region_model: Annotated[
        str,
        typer.Option(
            help="auto (serve a region with enough conversions its own model when it beats "
            "the pooled model's cross-validated log loss on the region's rows; the pooled "
            "model otherwise, plus a region offset where it does not read the region) or "
            "off (one pooled model)."
        ),
    ] = "off",
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
            per_region_model=per_region_model,
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
            if options["per_region_model"] == "off" and "per_region_model" in declared:
                options.pop("per_region_model")  # likewise (its default is off)
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
        + _regional_words(result.bundle.margin)
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
        Path | None, typer.Option("--config", help="Dataset config (YAML or TOML) to validate.")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="A data folder (the contract's tables): is it enough to train, calibrate, "
            "choose a threshold and grade, overall and per region?"
        ),
    ] = None,
    segment: Annotated[
        list[str] | None,
        typer.Option(help="A leads or accounts column to break the data report down by too."),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Validate a dataset config and the data it points at; report every problem at once.

    With --data, report whether a data folder is enough (leads, conversions, time span,
    conversion rate with its 95% interval and four verdicts, overall and per region).
    Exit status 0 when the config loads cleanly (a summary is printed), 2 otherwise.
    """
    from training.config import load_training_dataset

    if (config_file is None) == (data is None):
        raise fail("check: give --config (a dataset config) or --data (a data folder)")
    if data is not None:
        _check_data(data, tuple(segment or ()), json_out)
        return
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
    enough = _training_set_sufficiency(ts.frame, tuple(segment or ()))
    if json_out:
        emit(
            {
                "ok": True,
                "config": str(config_file),
                "metadata": meta.model_dump(mode="json"),
                **({"sufficiency": enough.to_dict()} if enough is not None else {}),
            }
        )


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
    store: Annotated[
        bool,
        typer.Option(
            "--store/--no-store",
            help="Also write the run into the lead store (LEADSCORE_DB_URL, default "
            "<home>/leadscore.db): scores with their cards, MQL events, lead states.",
        ),
    ] = True,
    weeks: Annotated[
        int,
        typer.Option(
            help="Score the N-1 weeks before the scoring date too, oldest first, each as a "
            "run in the lead store (a score history from past data); --out gets the last.",
            min=1,
            max=260,
        ),
    ] = 1,
    json_out: JsonOption = False,
) -> None:
    """Score the open leads with the champion: probability, score, MQL, grade, reasons.

    Only leads in the population the champion was trained on are scored (the rule is
    recorded with the model, e.g. open leads up to 180 days old); the others are counted
    as skipped. The MQL share is reported beside the policy's target. Uses the same
    code path as the HTTP service. The run lands in the lead store too (unless
    ``--no-store``): each lead's score history, who entered or left MQL, and when.
    """
    from features.io import load_tables
    from features.pipeline import data_window
    from serving.batch import load_champion, parse_moment, score_run
    from store.engine import store as lead_store

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
    if weeks > 1 and not store:
        raise fail("--weeks: a score history needs the lead store; drop --no-store")
    with contextlib.ExitStack() as stack:
        engine = stack.enter_context(lead_store(settings.store_url)) if store else None
        with steps("score") as advance:
            advance("loading the champion")
            champion = load_champion(settings.registry_uri, settings.model_name, alias)
            end = parse_moment(as_of) if as_of is not None else None
            tables = None
            if weeks > 1:  # read once for every week
                with reading("--data", data):
                    tables = load_tables(data)
                end = data_window(tables)[1] if end is None else end
            dates = [None] if end is None else [end - pd_weeks(k) for k in range(weeks)][::-1]
            for i, moment in enumerate(dates):
                advance(f"scoring open leads ({i + 1} of {len(dates)})" if weeks > 1 else "scoring")
                with reading("--data", data):
                    run = score_run(
                        data, out, moment, champion, actions=actions, store=engine, tables=tables
                    )
                if weeks > 1 and (note := run.stored_note()) is not None:
                    console.print(f"{run.as_of:%Y-%m-%d}: {note}")
        if engine is not None:
            _alert_after(settings, engine)
    scored = run.scores
    console.print(
        f"scored {len(scored):,} open leads ({int(scored['mql'].sum()):,} MQLs) into {out}"
    )
    console.print(run.summary())
    if (note := run.skipped_note()) is not None:
        console.print(note)
    if weeks == 1 and (note := run.stored_note()) is not None:
        console.print(f"{note} ({_shown_url(settings.store_url)})")
    if json_out:
        emit({"out": str(out), **run.to_dict()})


def pd_weeks(k: int) -> Any:
    """``k`` weeks as a pandas offset (kept here so the CLI imports pandas lazily)."""
    import pandas as pd

    return pd.Timedelta(weeks=k)


def _shown_url(url: str) -> str:
    """A database URL fit to print: the password hidden."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


db_app = typer.Typer(
    cls=LeadscoreGroup,
    help="The lead store's schema: migrate it, or see where it stands.",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")


@db_app.command("upgrade", cls=LeadscoreCommand)
def db_upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Migration to go up to.")] = "head",
) -> None:
    """Create the lead store or bring its schema up to date (LEADSCORE_DB_URL, default
    <home>/leadscore.db). Every command that writes to the store does this itself."""
    from store.engine import connect, current_revision, upgrade

    settings: Settings = ctx.obj
    engine = connect(settings.store_url)
    try:
        upgrade(engine, revision)
        console.print(
            f"lead store at {_shown_url(settings.store_url)}: migration {current_revision(engine)}"
        )
    finally:
        engine.dispose()


@db_app.command("downgrade", cls=LeadscoreCommand)
def db_downgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Migration to go down to (base: empty).")],
) -> None:
    """Take the lead store's schema down to an older migration (data in dropped tables
    and columns is lost)."""
    from store.engine import connect, current_revision, downgrade

    settings: Settings = ctx.obj
    engine = connect(settings.store_url)
    try:
        downgrade(engine, revision)
        console.print(
            f"lead store at {_shown_url(settings.store_url)}: migration "
            f"{current_revision(engine) or 'none'}"
        )
    finally:
        engine.dispose()


@db_app.command("current", cls=LeadscoreCommand)
def db_current(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Print the lead store's migration and the newest this release ships."""
    from store.engine import connect, current_revision, head_revision

    settings: Settings = ctx.obj
    engine = connect(settings.store_url)
    try:
        at, head = current_revision(engine), head_revision()
    finally:
        engine.dispose()
    console.print(f"lead store at {_shown_url(settings.store_url)}: migration {at or 'none'}")
    console.print("up to date" if at == head else f"behind: this release needs {head}")
    if json_out:
        emit({"url": _shown_url(settings.store_url), "current": at, "head": head})


leads_app = typer.Typer(
    cls=LeadscoreGroup,
    help="Read the score history in the lead store: new MQLs, momentum, a lead's timeline.",
    no_args_is_help=True,
)
app.add_typer(leads_app, name="leads")


def _print_frame(frame: Any, title: str) -> None:
    """A small frame as a table on stderr (results for people; --json is for scripts)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in frame.columns:
        table.add_column(str(column))
    for row in frame.itertuples(index=False):
        table.add_row(*("" if _missing(v) else _cell(v) for v in row))
    console.print(table)


def _missing(value: Any) -> bool:
    import pandas as pd

    return value is None or (not isinstance(value, (list, dict)) and bool(pd.isna(value)))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if hasattr(value, "strftime"):
        return str(value.strftime("%Y-%m-%d %H:%M"))
    return str(value)


def _records(frame: Any) -> list[dict[str, Any]]:
    return [
        {k: (None if _missing(v) else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


@leads_app.command("new", cls=LeadscoreCommand)
def leads_new(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="Leads that became MQLs after this date/time.")],
    top: Annotated[int, typer.Option(help="Show at most this many.", min=1)] = 50,
    json_out: JsonOption = False,
) -> None:
    """New MQLs since a moment that are MQLs still, newest first."""
    from serving.batch import parse_moment
    from store.engine import store as lead_store
    from store.history import new_mqls

    moment = parse_moment(since, "--since")
    with lead_store(ctx.obj.store_url) as engine:
        fresh = new_mqls(engine, moment)
    console.print(f"{len(fresh):,} new MQLs since {moment:%Y-%m-%d %H:%M}")
    if len(fresh):
        _print_frame(fresh.head(top), f"newest {min(top, len(fresh))}")
    if json_out:
        emit({"since": moment.isoformat(), "count": len(fresh), "leads": _records(fresh.head(top))})


@leads_app.command("momentum", cls=LeadscoreCommand)
def leads_momentum(
    ctx: typer.Context,
    days: Annotated[int, typer.Option(help="Rank by the change over 7 or 30 days.")] = 7,
    top: Annotated[int, typer.Option(help="Show at most this many.", min=1)] = 20,
    json_out: JsonOption = False,
) -> None:
    """Leads whose score rose most over the last 7 (or 30) days, as of the latest run."""
    from store.engine import store as lead_store
    from store.history import MOMENTUM_DAYS, momentum

    if days not in MOMENTUM_DAYS:
        raise fail(f"--days: give one of {', '.join(map(str, MOMENTUM_DAYS))}, got {days}")
    with lead_store(ctx.obj.store_url) as engine:
        moves = momentum(engine)
    column = f"momentum_{days}d"
    ranked = moves.dropna(subset=[column]).sort_values([column, "lead_id"], ascending=[False, True])
    if not len(ranked):
        console.print(f"no lead has a score from {days} days before its latest one yet")
    else:
        _print_frame(ranked.head(top), f"biggest risers over {days} days")
    if json_out:
        emit({"days": days, "leads": _records(ranked.head(top))})


@leads_app.command("timeline", cls=LeadscoreCommand)
def leads_timeline(
    ctx: typer.Context,
    lead_id: Annotated[str, typer.Argument(help="The lead's id.")],
    json_out: JsonOption = False,
) -> None:
    """Every score a lead was given, oldest first, with its MQL flag and model version."""
    from store.engine import store as lead_store
    from store.history import timeline

    with lead_store(ctx.obj.store_url) as engine:
        line = timeline(engine, lead_id)
    if line.empty:
        raise fail(f"lead {lead_id!r}: no score for it in the lead store")
    _print_frame(line, f"lead {lead_id}: {len(line)} scores")
    if json_out:
        emit({"lead_id": lead_id, "scores": _records(line)})


accounts_app = typer.Typer(
    cls=LeadscoreGroup,
    help="Read the account history in the lead store: new MQAs, momentum, an account's "
    "timeline, MQA funnel rates.",
    no_args_is_help=True,
)
app.add_typer(accounts_app, name="accounts")


@accounts_app.command("new", cls=LeadscoreCommand)
def accounts_new(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="Accounts that became MQAs after this date/time.")],
    top: Annotated[int, typer.Option(help="Show at most this many.", min=1)] = 50,
    json_out: JsonOption = False,
) -> None:
    """New MQAs (marketing-qualified accounts) since a moment that are MQAs still."""
    from serving.batch import parse_moment
    from store.engine import store as lead_store
    from store.history import new_mqas

    moment = parse_moment(since, "--since")
    with lead_store(ctx.obj.store_url) as engine:
        fresh = new_mqas(engine, moment)
    console.print(f"{len(fresh):,} new MQAs since {moment:%Y-%m-%d %H:%M}")
    if len(fresh):
        _print_frame(fresh.head(top), f"newest {min(top, len(fresh))}")
    if json_out:
        emit(
            {
                "since": moment.isoformat(),
                "count": len(fresh),
                "accounts": _records(fresh.head(top)),
            }
        )


@accounts_app.command("momentum", cls=LeadscoreCommand)
def accounts_momentum(
    ctx: typer.Context,
    days: Annotated[
        int, typer.Option(help="Rank by the change over 7 days, or 28 (the three weeks before).")
    ] = 7,
    top: Annotated[int, typer.Option(help="Show at most this many.", min=1)] = 20,
    json_out: JsonOption = False,
) -> None:
    """Accounts whose score rose most over the last 7 (or 28) days, as of the latest run."""
    from store.engine import store as lead_store
    from store.history import ACCOUNT_MOMENTUM_DAYS, account_momentum

    if days not in ACCOUNT_MOMENTUM_DAYS:
        raise fail(f"--days: give one of {', '.join(map(str, ACCOUNT_MOMENTUM_DAYS))}, got {days}")
    with lead_store(ctx.obj.store_url) as engine:
        moves = account_momentum(engine)
    column = f"momentum_{days}d"
    ranked = moves.dropna(subset=[column]).sort_values(
        [column, "account_id"], ascending=[False, True]
    )
    if not len(ranked):
        console.print(f"no account has a score from {days} days before its latest one yet")
    else:
        _print_frame(ranked.head(top), f"biggest risers over {days} days")
    if json_out:
        emit({"days": days, "accounts": _records(ranked.head(top))})


@accounts_app.command("timeline", cls=LeadscoreCommand)
def accounts_timeline(
    ctx: typer.Context,
    account_id: Annotated[str, typer.Argument(help="The account's id.")],
    json_out: JsonOption = False,
) -> None:
    """Every score an account was given, oldest first, with its MQA flag."""
    from store.engine import store as lead_store
    from store.history import account_timeline

    with lead_store(ctx.obj.store_url) as engine:
        line = account_timeline(engine, account_id)
    if line.empty:
        raise fail(f"account {account_id!r}: no score for it in the lead store")
    _print_frame(line, f"account {account_id}: {len(line)} scores")
    if json_out:
        emit({"account_id": account_id, "scores": _records(line)})


@accounts_app.command("funnel", cls=LeadscoreCommand)
def accounts_funnel(
    ctx: typer.Context,
    by: Annotated[
        list[str] | None,
        typer.Option(help="Group by grade, fit, engagement, region, score_band, cohort_month."),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """MQA → accepted, SQL, opportunity, won rates (an account reaches a stage when any
    of its people does), with Wilson intervals, on the maturity windows of the lead funnel."""
    from store.engine import store as lead_store
    from store.funnel import account_funnel_rates

    with lead_store(ctx.obj.store_url) as engine:
        rates = account_funnel_rates(engine, by=by or ["grade"])
    if rates.empty:
        console.print("no account has entered MQA yet")
    else:
        _print_frame(rates, "MQA funnel")
    if json_out:
        emit({"by": by or ["grade"], "rates": _records(rates)})


@app.command("simulate-sales", cls=LeadscoreCommand)
def simulate_sales(
    ctx: typer.Context,
    data: Annotated[Path, typer.Option(help="A simulated data folder (with ground_truth).")],
    out: Annotated[Path, typer.Option(help="CRM export of the dispositions to write (.csv).")],
    seed: Annotated[int, typer.Option(help="Seed of the sales process.")] = 0,
    json_out: JsonOption = False,
) -> None:
    """Play the sales team on the MQLs in the lead store: accept or reject (with reasons),
    SQL, opportunity, won, lost, with realistic delays, from the simulator's ground truth.

    Writes what a CRM export would show (``leadscore feedback import`` reads it) and, next
    to it, ``<name>_truth.parquet`` with the latent state behind every draw.
    """
    import pandas as pd
    import sqlalchemy as sa

    from features.io import load_tables, write_frame
    from features.simulate.sales import simulate_sales as play_sales
    from store.engine import store as lead_store
    from store.frames import read_frame
    from store.schema import mql_events

    settings: Settings = ctx.obj
    need_folder(data, "--data")
    truth_file = data / "ground_truth.parquet"
    need_file(
        truth_file,
        "--data",
        hint=f"--data: {data} has no ground_truth.parquet: "
        "sales can only be simulated on data from `leadscore simulate`",
    )
    if out.suffix != ".csv":
        raise fail(f"--out: give a .csv file to write, got {out}")
    can_write(out, "--out")
    with reading("--data", data):
        tables = load_tables(data)
        ground_truth = pd.read_parquet(truth_file)
    query = sa.select(
        mql_events.c.lead_id,
        mql_events.c.occurred_at.label("mql_at"),
        mql_events.c.grade,
        mql_events.c.score,
    ).where(mql_events.c.event == "entered")
    with lead_store(settings.store_url) as engine, engine.connect() as connection:
        mqls = read_frame(connection, query)
    if mqls.empty:
        raise fail("the lead store has no MQLs yet: run `leadscore score` first")
    sales = play_sales(tables["leads"], tables["accounts"], ground_truth, mqls, seed=seed)
    write_frame(out, sales.dispositions)
    truth = out.with_name(f"{out.stem}_truth.parquet")
    write_frame(truth, sales.truth)
    counts = sales.dispositions["stage"].value_counts().to_dict()
    shown = ", ".join(
        f"{counts.get(s, 0):,} {s}"
        for s in ("accepted", "rejected", "sql", "opportunity", "won", "lost")
    )
    console.print(f"{len(mqls):,} MQLs worked by sales: {shown} into {out}")
    if json_out:
        emit({"out": str(out), "truth": str(truth), "mqls": len(mqls), "stages": counts})


@app.command(cls=LeadscoreCommand)
def report(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="HTML file to write (self-contained).")] = Path(
        "report.html"
    ),
    data: Annotated[
        Path | None,
        typer.Option(
            help="The data folder, so conversions that never became MQLs count as missed "
            "(default: won dispositions only)."
        ),
    ] = None,
    capacity: Annotated[
        str | None,
        typer.Option(
            help="MQLs sales can work per week: 120, or NA=60,EMEA=40 per region "
            "(default: LEADSCORE_MQL_CAPACITY; none: volume not judged)."
        ),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Write the loop's report from the lead store: runs, MQL flow, funnel by grade,
    threshold diagnostics, rejection reasons, conversion by score band, model health and
    drift."""
    from features.io import atomic_write, load_tables
    from leadscore.settings import parse_capacity
    from serving.report import build_report
    from store.engine import store as lead_store

    settings: Settings = ctx.obj
    if out.suffix not in (".html", ".htm"):
        raise fail(f"--out: give an .html file to write, got {out}")
    can_write(out, "--out")
    need_folder(data, "--data")
    try:
        team = settings.mql_capacity if capacity is None else parse_capacity(capacity, "--capacity")
    except ValueError as exc:
        raise fail(str(exc)) from None
    conversions = None
    if data is not None:
        with reading("--data", data):
            conversions = load_tables(data)["conversions"]
    with lead_store(settings.store_url) as engine:
        page = build_report(engine, team, conversions)
    atomic_write(out, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    console.print(f"wrote the report to {out} ({len(page) / 1024:,.0f} KB); open it in a browser")
    if json_out:
        emit({"out": str(out), "bytes": len(page.encode())})


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


DEMO_WEEKS = 20
"""Weekly scoring runs the demo writes: enough for MQLs old enough to be won (90 days)."""


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
    """The main job end to end: simulate, build features, train, register, score 20 weeks
    into the lead store, play sales on its MQLs and import their feedback, monitor the
    champion, write the report, serve."""
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
    score(ctx, data=data, out=home / "scores.csv", weeks=DEMO_WEEKS)
    simulate_sales(ctx, data=data, out=home / "crm_export.csv")
    feedback_import(ctx, file=home / "crm_export.csv")
    _print_report(_monitor_champion(settings, data, None, None, CHAMPION_ALIAS, True))
    report(ctx, out=home / "report.html", data=data)
    console.print(
        f"the loop: scores and feedback in {home / 'leadscore.db'} (`leadscore leads new "
        f"--since ...`), the report in {home / 'report.html'}"
    )
    samples = write_samples(load_tables(data), home / "samples", 6)
    console.print(f"wrote sample leads for the page to {samples}")
    if serve_after:
        console.print(f"serving on http://{host}:{port}/ (Ctrl-C to stop)")
        serve(ctx, host=host, port=port, samples=samples)


# --- monitoring and scheduled retraining (issue 16) -----------------------------------

FAIL_ON = ("never", "warn", "alert")
STATUS_STYLE = {"ok": "green", "warn": "yellow", "alert": "bold red"}


def _monitor_champion(
    settings: Settings,
    data: Path,
    config_file: Path | None,
    data_end: str | None,
    alias: str,
    record: bool,
) -> Any:
    """Run ``training.monitor.run_monitor`` on ``data`` with the registry's ``alias``:
    the performance period scored by batch scoring's own ``score_frame``, results to the
    lead store and to MLflow (``record``)."""
    import pandas as pd

    from features.io import load_tables
    from runtime import registry
    from serving.batch import load_champion, score_frame
    from store.engine import open_store
    from training.monitor import MonitorConfig, logged_test_predictions, run_monitor

    need_file(config_file, "--config")
    with reading("--config", config_file):
        config = MonitorConfig.from_yaml(config_file) if config_file else MonitorConfig()
    try:
        end = pd.Timestamp(data_end) if data_end else None
    except ValueError as exc:
        raise fail(f"--data-end: cannot read {data_end!r} as a date") from exc
    with reading("--data", data):
        tables = load_tables(data)
    registry.require_store(settings.registry_uri)  # not an empty store made by reading
    served = load_champion(settings.registry_uri, settings.model_name, alias)

    def scorer(tables: dict, snapshots: Any) -> Any:
        return score_frame(tables, snapshots, served, top=1, actions=0)

    engine = open_store(settings.store_url) if record else None
    try:
        with steps("monitor") as advance:
            return run_monitor(
                tables,
                served.bundle,
                model_name=served.name,
                model_version=served.version,
                config=config,
                scorer=scorer,
                engine=engine,
                tracking_uri=settings.registry_uri if record else None,
                experiment=f"{settings.experiment}-monitoring",
                test_predictions=logged_test_predictions(settings.registry_uri, served.run_id),
                data_end=end,
                progress=advance,
            )
    finally:
        if engine is not None:
            engine.dispose()


def _print_report(report: Any) -> None:
    """The checks as a table: every check but the stable features, then the notes."""
    from rich.table import Table

    table = Table(
        title=f"monitor: {report.model_name} v{report.model_version}, performance period "
        f"{report.period_start.date()} to {report.period_end.date()}, data end "
        f"{report.data_end.date()}"
    )
    for column in ("check", "subject", "metric", "value", "reference", "status"):
        table.add_column(
            column,
            justify="right" if column in ("value", "reference") else "left",
            overflow="fold",
        )
    stable = 0
    for r in report.results:
        if r.check == "feature_drift" and r.status == "ok":
            stable += 1
            continue
        table.add_row(
            r.check,
            r.subject,
            r.metric,
            "-" if r.value is None else f"{r.value:.4g}",
            "-" if r.reference is None else f"{r.reference:.4g}",
            f"[{STATUS_STYLE[r.status]}]{r.status}[/]",
        )
    console.print(table)
    _print_bands(report.bands)
    if stable:
        console.print(
            f"{stable} feature(s) stable (PSI below the warn level, or no significant change)"
        )
    for note in report.notes:
        console.print(f"note: {note}", markup=False)
    counts = report.counts()
    console.print(
        f"[{STATUS_STYLE[report.status]}]{report.status}[/]: {counts['alert']} alert(s), "
        f"{counts['warn']} warning(s), {counts['ok']} ok; check run {report.check_run}"
        + (f", MLflow run {report.mlflow_run_id}" if report.mlflow_run_id else "")
    )


def _print_bands(bands: dict) -> None:
    """Conversion by score band in the period, beside the test period's."""
    from rich.table import Table

    if not bands.get("now"):
        return
    test = {b["band"]: b for b in bands.get("test") or []}
    table = Table(title="conversion by score band (performance period; test period)")
    for column in ("band", "leads", "conversions", "rate", "test rate", "capture"):
        table.add_column(column, justify="left" if column == "band" else "right")
    for band in bands["now"]:
        then = test.get(band["band"], {}).get("rate")
        table.add_row(
            band["band"],
            f"{band['leads']:,}",
            f"{band['conversions']:,}",
            "-" if band["rate"] is None else f"{band['rate']:.1%}",
            "-" if then is None else f"{then:.1%}",
            f"{band['capture']:.0%}",
        )
    console.print(table)


def _fail_on(value: str) -> str:
    if value not in FAIL_ON:
        raise fail(f"--fail-on must be one of {', '.join(FAIL_ON)}, got {value!r}")
    return value


FailOnOption = Annotated[
    str,
    typer.Option(
        help="Exit with status 1 when a check is at this level or worse: never, warn or "
        "alert (for schedulers)."
    ),
]
DataFolderOption = Annotated[
    Path,
    typer.Option(help="Folder with the four tables (leads, accounts, activities, conversions)."),
]
DataEndOption = Annotated[
    str | None,
    typer.Option(help="The data end, UTC (default: the latest timestamp, as `leadscore score`)."),
]


@app.command(cls=LeadscoreCommand)
def monitor(
    ctx: typer.Context,
    data: DataFolderOption,
    config_file: Annotated[
        Path | None,
        typer.Option("--config", help="Monitoring thresholds (YAML); default: the built-in ones."),
    ] = None,
    data_end: DataEndOption = None,
    alias: Annotated[str, typer.Option(help="Registry alias to monitor.")] = CHAMPION_ALIAS,
    record: Annotated[
        bool,
        typer.Option(
            "--record/--no-record",
            help="Write the results to the lead store and an MLflow monitoring run.",
        ),
    ] = True,
    fail_on: FailOnOption = "never",
    json_out: JsonOption = False,
) -> None:
    """Re-evaluate the champion: performance, calibration, drift and sales feedback.

    On the newest period whose outcomes are known (one label horizon before the data
    end) the champion's ROC AUC, top-decile lift, ECE and conversion by score band are
    compared with its own test-time figures; every feature and the score are compared
    with the model's training window (PSI and a KS / chi-square test); precision comes
    from sales dispositions when the lead store holds some. Each check is ok, warn or
    alert; results go to the lead store and to the MLflow experiment
    <experiment>-monitoring. Exit status 0 unless --fail-on says otherwise.
    """
    fail_on = _fail_on(fail_on)
    need_folder(data, "--data", hint=f"--data: {data} is a file; give the folder of tables")
    report = _monitor_champion(ctx.obj, data, config_file, data_end, alias, record)
    _print_report(report)
    if record:
        from store.engine import store as lead_store

        with lead_store(ctx.obj.store_url) as engine:
            _alert_after(ctx.obj, engine)
    if json_out:
        emit(report.to_dict())
    raise typer.Exit(report.exit_code(fail_on))


@app.command(cls=LeadscoreCommand)
def retrain(
    ctx: typer.Context,
    data: DataFolderOption,
    window_months: Annotated[
        int, typer.Option(help="Months of snapshots to train on, ending at the data end.", min=1)
    ] = 24,
    metric: Annotated[str, typer.Option(help="Metric promotion compares.")] = "roc_auc",
    margin: Annotated[float, typer.Option(help="How much better the challenger must be.")] = 0.0,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="Monitoring thresholds (YAML) for the monitor.")
    ] = None,
    data_end: DataEndOption = None,
    seed: Annotated[int, typer.Option(help="Seed for LightGBM and the baselines.")] = 0,
    threads: Annotated[int, typer.Option(help="LightGBM threads (0: all cores).", min=0)] = 0,
    per_region_model: Annotated[
        str,
        typer.Option(
            help="auto or off, as for `leadscore train`: a model per region for the "
            "challenger's tournament."
        ),
    ] = "off",
    fail_on: FailOnOption = "never",
    json_out: JsonOption = False,
) -> None:
    """Retrain on a rolling window, promote on the margin rule, then monitor.

    Rebuilds the training set from the data folder on the last --window-months before
    the data end (with the champion's horizon and snapshot rule), trains a challenger as
    `leadscore train` does, promotes it only if it beats the champion by more than
    --margin on its test period, and runs `leadscore monitor` on the champion that
    results. Meant for a timer: see docs/monitoring.md.
    """
    import pandas as pd

    from features.io import load_tables
    from training.retrain import retrain as run_retrain
    from training.train import TrainConfig

    settings: Settings = ctx.obj
    fail_on = _fail_on(fail_on)
    need_folder(data, "--data", hint=f"--data: {data} is a file; give the folder of tables")
    need_file(config_file, "--config")
    if per_region_model not in ("auto", "off"):
        raise fail(f"--per-region-model: give auto or off, got {per_region_model!r}")
    try:
        end = pd.Timestamp(data_end) if data_end else None
    except ValueError as exc:
        raise fail(f"--data-end: cannot read {data_end!r} as a date") from exc
    with reading("--data", data):
        tables = load_tables(data)
    with steps("retrain") as advance:
        result = run_retrain(
            tables,
            window_months=window_months,
            tracking_uri=settings.registry_uri,
            store_dir=settings.home,
            experiment=settings.experiment,
            model_name=settings.model_name,
            config=TrainConfig(
                seed=seed,
                num_threads=threads,
                per_region_model=per_region_model,  # type: ignore[arg-type]
            ),
            metric=metric,
            margin=margin,
            data_end=end,
            progress=advance,
        )
    console.print(result.summary(), markup=False)
    report = _monitor_champion(settings, data, config_file, data_end, CHAMPION_ALIAS, True)
    _print_report(report)
    if json_out:
        emit({"retrain": result.to_dict(), "monitor": report.to_dict()})
    raise typer.Exit(report.exit_code(fail_on))


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


alerts_app = typer.Typer(
    cls=TyperGroup,
    help="Alerts to Slack and webhooks: new MQLs, score jumps (LEADSCORE_ALERT_JUMP) and "
    "monitor alerts, queued in the lead store and delivered until the receiver takes them.",
    no_args_is_help=True,
)
app.add_typer(alerts_app, name="alerts")


def _alert_after(settings: Settings, engine: Any) -> None:
    """When alert destinations are configured, send the alerts a command's writes raised
    (new MQLs, score jumps, monitor alerts) right away, so they do not wait for the next
    ``leadscore alerts send`` on a timer; a receiver that is down keeps them queued."""
    from serving.alerts.deliver import AlertConfig, deliver

    config = AlertConfig.from_settings(settings)
    if not config.configured:
        return
    report = deliver(engine, config)
    _alerts_summary(report)


def _alerts_summary(report: Any, revived: int | None = None) -> None:
    """One line of counts, then each failure on its own line (stderr)."""
    queued = report.queued
    head = f"{revived:,} dead letters revived; " if revived is not None else ""
    console.print(
        f"{head}queued {queued.total:,} (mql {queued.mql:,}, mqa {queued.mqa:,}, "
        f"jump {queued.jump:,}, monitor {queued.monitor:,}); sent {report.sent:,} in "
        f"{report.messages:,} messages; "
        f"failed {report.failed:,} ({report.dead:,} now dead); held for the digest "
        f"{report.held:,}; waiting for a receiver {report.waiting:,}",
        markup=False,
    )
    for error in dict.fromkeys(report.errors):  # each distinct failure once
        console.print(f"  {error}", markup=False, style="yellow")


@alerts_app.command("send", cls=LeadscoreCommand)
def alerts_send(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Queue alerts for what happened in the store since the last pass (new MQLs, score
    jumps, monitor alerts) and deliver every due one. Run it from a timer after each
    scoring run; a failed delivery stays queued and is retried with backoff."""
    from serving.alerts.deliver import AlertConfig, deliver
    from store.engine import store

    settings: Settings = ctx.obj
    with store(settings.store_url) as engine:
        report = deliver(engine, AlertConfig.from_settings(settings))
    _alerts_summary(report)
    if json_out:
        emit(report.to_dict())


@alerts_app.command("retry", cls=LeadscoreCommand)
def alerts_retry(
    ctx: typer.Context,
    destination: Annotated[
        str | None,
        typer.Option(help="Only this destination (e.g. webhook, slack:#sales-na)."),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Send the dead letters again (alerts that failed every attempt), with fresh attempts."""
    from serving.alerts.deliver import AlertConfig, retry_dead
    from store.engine import store

    settings: Settings = ctx.obj
    with store(settings.store_url) as engine:
        revived, report = retry_dead(engine, AlertConfig.from_settings(settings), None, destination)
    _alerts_summary(report, revived)
    if json_out:
        emit({"revived": revived, **report.to_dict()})


@alerts_app.command("list", cls=LeadscoreCommand)
def alerts_list(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option(help="Only alerts with this status: pending, sent or dead.")
    ] = None,
    top: Annotated[int, typer.Option(help="Show at most this many, newest first.", min=1)] = 50,
    json_out: JsonOption = False,
) -> None:
    """The alert outbox: what is pending, sent or dead, with attempts and the last error."""
    from store.alerts import outbox
    from store.engine import store
    from store.schema import ALERT_STATUSES

    if status is not None and status not in ALERT_STATUSES:
        raise fail(f"--status: give one of {', '.join(ALERT_STATUSES)}, got {status!r}")
    with store(ctx.obj.store_url) as engine:
        rows = outbox(engine, status)
    counts = rows["status"].value_counts().to_dict() if len(rows) else {}
    console.print(
        f"{len(rows):,} alerts" + "".join(f", {n:,} {s}" for s, n in sorted(counts.items()))
    )
    newest = rows.iloc[::-1].head(top)
    if len(newest):
        _print_frame(newest, f"newest {len(newest)}")
    if json_out:
        emit({"count": len(rows), "by_status": counts, "alerts": _records(newest)})


sync_app = typer.Typer(
    cls=TyperGroup,
    help="CRM sync: write each lead's score, grade, MQL flag, reasons and next best action "
    "onto the CRM record, and pull sales statuses back into the lead store as feedback.",
    no_args_is_help=True,
)
app.add_typer(sync_app, name="sync")
DryRunOption = Annotated[
    bool,
    typer.Option(
        "--dry-run", help="Print what a push would change; talk to no CRM, write nothing."
    ),
]
PushOption = Annotated[
    bool, typer.Option("--push/--no-push", help="Write leadscore's values to the CRM.")
]
PullOption = Annotated[
    bool, typer.Option("--pull/--no-pull", help="Read CRM statuses into the feedback table.")
]
StatusesOption = Annotated[
    Path | None,
    typer.Option(
        "--statuses",
        help="YAML mapping CRM status values to stages, over the defaults "
        "(e.g. hs_lead_status: {MY_VALUE: 'rejected:no_budget'}); see docs/crm.md.",
    ),
]


def _print_sync(system: str, result: Any) -> None:
    """A sync's summary on stderr: created fields, pushed and pulled counts, dry-run lines."""
    for line in result.dry_lines:
        console.print(line, markup=False)
    if result.created:
        console.print(f"{system}: created {', '.join(result.created)}", markup=False)
    if result.pull is not None:
        p = result.pull
        console.print(
            f"{system}: pulled {p.records:,} records, {p.recorded:,} dispositions recorded, "
            f"{p.duplicates:,} already known, {p.owners:,} owners set, "
            f"{p.unknown_leads:,} statuses of leads never scored",
            markup=False,
        )
    if result.push is not None:
        p = result.push
        if p.dry_run:
            console.print(f"{system}: dry run, {p.changed:,} records would change", markup=False)
        else:
            resumed = f" (resumed after lead {p.resumed_after})" if p.resumed_after else ""
            console.print(
                f"{system}: {p.sent:,} of {p.changed:,} changed records sent in "
                f"{p.batches:,} batches{resumed}",
                markup=False,
            )
            for lead, why in list(p.refused.items())[:20]:
                console.print(f"  not updated: {lead}: {why}", markup=False)
            if len(p.refused) > 20:
                console.print(f"  ... and {len(p.refused) - 20:,} more", markup=False)


@sync_app.command("hubspot", cls=LeadscoreCommand)
def sync_hubspot(
    ctx: typer.Context,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="LEADSCORE_HUBSPOT_TOKEN",
            help="Private app access token (default: LEADSCORE_HUBSPOT_TOKEN).",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(envvar="LEADSCORE_HUBSPOT_HOST", help="HubSpot API base URL.")
    ] = "https://api.hubapi.com",
    dry_run: DryRunOption = False,
    push: PushOption = True,
    pull: PullOption = True,
    batch_size: Annotated[
        int, typer.Option(help="Contacts per batch update (HubSpot allows 100).", min=1, max=100)
    ] = 100,
    statuses: StatusesOption = None,
    json_out: JsonOption = False,
) -> None:
    """Sync the lead store with HubSpot contacts (the lead id is the contact id).

    Pulls lifecycle stage and lead status changes into the feedback table, then writes
    leadscore_probability, _score, _grade, _mql, _reasons and _next_action on every
    contact whose values changed since the last sync (creating the property group
    leadscore and the properties when missing). Resumable: a run stopped midway (a
    revoked token, a crash) is continued by the next. See docs/crm.md.
    """
    from serving.crm.hubspot import STATUSES, HubSpot, sync
    from serving.crm.sync import read_status_map
    from store.engine import store

    settings: Settings = ctx.obj
    need_file(statuses, "--statuses")
    mapping = read_status_map(statuses, STATUSES) if statuses else dict(STATUSES)
    hub = HubSpot(token=token, host=host, statuses=mapping) if token else None
    with store(settings.store_url) as engine:
        result = sync(
            engine, hub, do_push=push, do_pull=pull, dry_run=dry_run, batch_size=batch_size
        )
    _print_sync("hubspot", result)
    if json_out:
        emit(result.to_dict())


@sync_app.command("salesforce", cls=LeadscoreCommand)
def sync_salesforce(
    ctx: typer.Context,
    instance_url: Annotated[
        str | None,
        typer.Option(
            envvar="LEADSCORE_SALESFORCE_INSTANCE_URL",
            help="The org's URL, e.g. https://acme.my.salesforce.com "
            "(default: LEADSCORE_SALESFORCE_INSTANCE_URL).",
            show_default=False,
        ),
    ] = None,
    session_id: Annotated[
        str | None,
        typer.Option(
            envvar="LEADSCORE_SALESFORCE_SESSION_ID",
            help="Session id or OAuth access token (default: LEADSCORE_SALESFORCE_SESSION_ID).",
            show_default=False,
        ),
    ] = None,
    api_version: Annotated[str, typer.Option(help="Salesforce REST API version.")] = "59.0",
    dry_run: DryRunOption = False,
    push: PushOption = True,
    pull: PullOption = True,
    batch_size: Annotated[
        int, typer.Option(help="Leads per sObject Collections request (up to 200).", min=1, max=200)
    ] = 200,
    statuses: StatusesOption = None,
    json_out: JsonOption = False,
) -> None:
    """Sync the lead store with Salesforce Leads (the lead id is the Lead Id).

    Pulls Lead Status, conversions and the converted Opportunities' outcome into the
    feedback table, then writes Leadscore_Probability__c, _Score__c, _Grade__c, _MQL__c,
    _Reasons__c and _Next_Action__c on every Lead whose values changed since the last
    sync (creating the fields when missing). Resumable. See docs/crm.md.
    """
    from serving.crm.salesforce import STATUSES, Salesforce, sync
    from serving.crm.sync import read_status_map
    from store.engine import store

    settings: Settings = ctx.obj
    need_file(statuses, "--statuses")
    mapping = read_status_map(statuses, STATUSES) if statuses else dict(STATUSES)
    org = None
    if instance_url and session_id:
        org = Salesforce(
            instance_url=instance_url, session_id=session_id, version=api_version, statuses=mapping
        )
    with store(settings.store_url) as engine:
        result = sync(
            engine, org, do_push=push, do_pull=pull, dry_run=dry_run, batch_size=batch_size
        )
    _print_sync("salesforce", result)
    if json_out:
        emit(result.to_dict())


@sync_app.command("status", cls=LeadscoreCommand)
def sync_status(ctx: typer.Context, json_out: JsonOption = False) -> None:
    """Where each CRM sync stands: the last push (done, or stopped and why, and after
    which lead), the pull's high-water mark, and how many leads were sent and pulled."""
    from serving.crm.sync import status
    from store.engine import store

    settings: Settings = ctx.obj
    with store(settings.store_url) as engine:
        rows = status(engine)
    for row in rows:
        if row.get("updated_at") is None:
            console.print(f"{row['system']}: never synced", markup=False)
            continue
        push = row.get("push_status") or "never pushed"
        cursor = f" after lead {row['push_cursor']}" if row.get("push_cursor") else ""
        pulled = row.get("pull_cursor")
        console.print(
            f"{row['system']}: push {push}{cursor} ({row.get('push_sent') or 0:,} sent in "
            f"the last run); {row['leads_sent']:,} leads sent, {row['leads_pulled']:,} pulled"
            + (f"; pulled up to {pulled}" if pulled else ""),
            markup=False,
        )
        if row.get("message"):
            console.print(f"  {row['message']}", markup=False)
    if json_out:
        emit({"systems": rows})


# --- Data sufficiency (issue 19): simulator presets and `leadscore check --data` ---------


def _simulator_preset(name: str) -> Any:
    """The simulator preset ``--preset`` names (None for ``none``), refused when unknown."""
    from features.simulate.presets import PRESETS

    if name == "none":
        return None
    if name not in PRESETS:
        raise fail(f"--preset: give none or one of {', '.join(PRESETS)}, got {name!r}")
    return PRESETS[name]


def _check_data(data: Path, segments: tuple[str, ...], json_out: bool) -> None:
    """``leadscore check --data``: the data-sufficiency report of a folder of tables."""
    from features.io import load_tables
    from features.sufficiency import sufficiency_of_tables

    need_folder(data, "--data", f"--data: {data} is a file; give the folder of tables")
    with reading("--data", data):
        tables = load_tables(data)
    report = sufficiency_of_tables(tables, segments)
    _print_sufficiency(report)
    if json_out:
        emit({"data": str(data), **report.to_dict()})


def _training_set_sufficiency(frame: Any, segments: tuple[str, ...]) -> Any:
    """Print and return the sufficiency of a config's training set (None: no lead ids)."""
    from features.sufficiency import sufficiency_of_training_set

    if not {"lead_id", "as_of", "label"} <= set(frame.columns):
        return None
    report = sufficiency_of_training_set(frame, segments)
    _print_sufficiency(report)
    return report


def _print_sufficiency(report: Any) -> None:
    """The sufficiency report as a table, with the rule behind each verdict below it."""
    from rich import box
    from rich.table import Table

    from features.sufficiency import PURPOSES, RULES, report_rows

    table = Table(
        title=f"Is the data enough? ({report.source})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1),
    )
    headers = ("group", "leads", "conv.", "span", "rate [95% CI]", *PURPOSES)
    for header in headers:
        table.add_column(header, no_wrap=True, justify="left" if header == "group" else "right")
    for row in report_rows(report):
        group = row["group"] if row["scope"] == "overall" else f"{row['scope']} {row['group']}"
        table.add_row(
            group,
            row["leads"],
            row["conversions"],
            row["span"],
            row["rate"],
            *(row[p] for p in PURPOSES),
        )
    # Its own console: a pipe's 80 columns would cut the table (rich caps a print's width).
    Console(stderr=True, width=max(console.width, 120)).print(table)
    for purpose in PURPOSES:
        console.print(
            f"  {purpose}: at least {report.minimum[purpose]} conversions ({RULES[purpose]})",
            markup=False,
        )


# -- issue 20: inputs read and features built on the workers (partitioned datasets) ------


def _partitioned_input(data: str) -> bool:
    """Whether ``--data`` holds a table as a partitioned Parquet folder (``leads/``...)."""
    from features.partitioned import holds_partitioned_tables

    try:
        return holds_partitioned_tables(data)
    except (OSError, ValueError):  # unreachable or odd locations: let the readers say why
        return False


def _write_partitioned(sim: Any, out: Path) -> None:
    """``leadscore simulate --partitioned``: month folders, accounts and truth as files."""
    from features.partitioned import write_partitioned_tables

    write_partitioned_tables({**sim.tables(), "ground_truth": sim.ground_truth}, out)


def _features_on_workers(
    data: str,
    out: str,
    config: Any,
    unknown_activity: str,
    timestamp_format: str | None,
    advance: Any,
    scheduler: str,
    workers: int,
    partitions: int | None,
) -> Any:
    """``leadscore features --engine dask`` on partitioned input: the workers read and
    check the tables, plan, compute and write the training set as a Parquet folder
    (``features.dask_build``); the client holds aggregates only."""
    from features.dask_build import run_features_partitioned

    return run_features_partitioned(
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


# --- Accounts (issue 18) -----------------------------------------------------------------


@app.command("train-accounts", cls=LeadscoreCommand)
def train_accounts(
    ctx: typer.Context,
    data: Annotated[
        Path,
        typer.Option(
            help="Folder with the four tables (leads, accounts, activities, "
            "conversions), e.g. from `leadscore simulate`."
        ),
    ],
    personas_file: Annotated[
        Path | None,
        typer.Option(
            "--personas",
            help="YAML/TOML file with a `personas:` list (default: economic buyer, technical "
            "evaluator, champion, end user).",
        ),
    ] = None,
    horizon: Annotated[int, typer.Option(help="Label window in days.", min=1)] = 90,
    model_name: Annotated[
        str, typer.Option(help="Registered model name of the account score.")
    ] = "leadscore-accounts",
    out: Annotated[
        Path | None, typer.Option(help="Also write the account model and its card here.")
    ] = None,
    register: Annotated[bool, typer.Option(help="Register the chosen account score.")] = True,
    json_out: JsonOption = False,
) -> None:
    """Train the account score: compare the roll-up of lead probabilities, the best single
    lead and an account-level model on the time split; register the better one."""
    from features.dataset_config.readers import read_config
    from features.io import load_tables
    from features.personas import parse_personas
    from training.accounts import run_account_training

    settings: Settings = ctx.obj
    need_folder(data, "--data")
    if out is not None:
        can_write(out, "--out", folder=True)
    personas = None
    if personas_file is not None:
        need_file(personas_file, "--personas")
        with reading("--personas", personas_file):
            personas = read_config(personas_file).get("personas")
        if personas is None:
            raise fail(f"--personas: {personas_file} has no `personas:` list")
    buying_group = parse_personas(personas)
    with reading("--data", data):
        tables = load_tables(data)
    with steps("train-accounts") as advance:
        result = run_account_training(
            tables,
            horizon_days=horizon,
            personas=buying_group,
            tracking_uri=settings.registry_uri,
            store_dir=settings.home,
            experiment=settings.experiment,
            model_name=model_name,
            register=register,
            output_dir=out,
            progress=advance,
        )
    console.print(result.card, markup=False)
    if result.version is not None:
        console.print(
            f"registered {result.model_name} version {result.version} "
            f"({', '.join(result.aliases)}): {result.fit.chosen}",
            markup=False,
        )
    if json_out:
        emit(
            {
                "model_name": result.model_name,
                "version": result.version,
                "aliases": result.aliases,
                "chosen": result.fit.chosen,
                "metrics": result.fit.metrics,
                "counts": result.fit.counts,
                "unattached_leads": len(result.fit.unattached),
                "run_id": result.run_id,
                "tracking_uri": result.tracking_uri,
                "output_dir": None if result.output_dir is None else str(result.output_dir),
            }
        )


# --- A model per region (issue 19 item 2) -------------------------------------------------


def _regional_words(margin: object) -> str:
    """``, per region: EMEA own blend, LATAM offset`` for a regional margin, else ""."""
    from runtime.regional import RegionalMargin

    if not isinstance(margin, RegionalMargin):
        return ""
    routes = ", ".join(
        f"{r.region} {'own ' + r.candidate if r.source == 'own' else 'offset'}"
        for r in margin.routes
    )
    return f", per region: {routes}"


def main() -> None:
    """Console entry point."""
    app()


if __name__ == "__main__":
    main()

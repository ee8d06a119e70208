"""Mutation score per module, from the results ``mutmut run`` leaves in ``mutants/``.

``make mutation`` runs mutmut on the functions where a silent error changes every score
(``SCOPE`` below) and then this script, which reads mutmut's ``mutants/<file>.meta``
files and prints, per module, how many mutants the fast tests killed out of how many
were made. A surviving mutant is a change to the code that no test notices: each one is
either a missing assertion or an equivalent change (one that cannot alter behaviour).

Usage::

    python benchmarks/mutation_report.py --run      # mutmut run on SCOPE, then the scores
    python benchmarks/mutation_report.py            # scores of the last run
    python benchmarks/mutation_report.py --globs    # the mutant names `mutmut run` takes
    python benchmarks/mutation_report.py --survivors
    python benchmarks/mutation_report.py --fail-under 80
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

SCOPE: dict[str, tuple[str, ...]] = {
    # The MQL policy: thresholds, grade cuts, score knots.
    "training/policy.py": ("*",),
    # Margin -> probability.
    "training/calibration.py": ("*",),
    # Train / validation / test periods.
    "training/split.py": ("*",),
    # Snapshot planning and labels (and what they call); the feature arithmetic of the
    # same file is tested against hand-computed values elsewhere and is out of scope.
    "features/pipeline.py": (
        "x_data_window",
        "x__calendar",
        "x_make_snapshots",
        "x_label_snapshots",
        "x_plan_snapshots",
        "xǁSnapshotRuleǁparse",
    ),
    # The bundle's scoring and reasons (Calibration, Policy, Scores, the scoring path);
    # saving and loading files is covered by the artifact tests, not in scope here.
    "runtime/bundle.py": (
        "xǁCalibrationǁ*",
        "xǁPolicyǁ*",
        "xǁScoresǁ*",
        "xǁCalibratedModelǁ__init__",
        "xǁCalibratedModelǁpredict*",
        "xǁCalibratedModelǁexplain_matrix",
        "xǁModelBundleǁ__init__",
        "xǁModelBundleǁscore*",
    ),
}
"""Source file -> patterns of mutmut's mangled function names (``x_func``, ``xǁClassǁmethod``)."""

KILLED = {1, 3}  # pytest failed (3: internal error, still a failure caused by the mutant)
SURVIVED = {0}
TIMEOUT = {24, -24, 152, 255, 36}
NO_TESTS = {5, 33}
NOT_CHECKED = {None}


@dataclass
class ModuleScore:
    """Counts of one module's mutants in scope, by outcome."""

    module: str
    counts: Counter
    survivors: list[str]

    @property
    def total(self) -> int:
        """Mutants made in scope."""
        return sum(self.counts.values())

    @property
    def detected(self) -> int:
        """Killed by a failing test, or by running past the time limit (an endless loop)."""
        return self.counts["killed"] + self.counts["timeout"]

    @property
    def score(self) -> float:
        """Share of the mutants in scope that the tests detect (0 when none were made)."""
        return 100.0 * self.detected / self.total if self.total else 0.0


def module_name(path: str) -> str:
    """``training/policy.py`` -> ``training.policy`` (mutmut's key prefix)."""
    return path.removesuffix(".py").replace("/", ".")


def function_of(key: str, module: str) -> str:
    """The mangled function of a mutant key: ``training.policy.x_f__mutmut_3`` -> ``x_f``."""
    return key.removeprefix(module + ".").rsplit("__mutmut_", 1)[0]


def in_scope(key: str, path: str) -> bool:
    """Whether a mutant's function is one of ``SCOPE[path]``."""
    func = function_of(key, module_name(path))
    return any(fnmatch.fnmatchcase(func, pattern) for pattern in SCOPE[path])


def outcome(exit_code: int | None) -> str:
    """mutmut's verdict for a worker's exit code (as ``mutmut results`` names them)."""
    if exit_code in KILLED:
        return "killed"
    if exit_code in SURVIVED:
        return "survived"
    if exit_code in TIMEOUT:
        return "timeout"
    if exit_code in NO_TESTS:
        return "no tests"
    if exit_code in NOT_CHECKED:
        return "not checked"
    return "suspicious"


def read_scores(root: Path) -> list[ModuleScore]:
    """Score every module of ``SCOPE`` from ``root/mutants/<path>.meta``.

    Raises:
        SystemExit: when a module has no results (``mutmut run`` has not been run).
    """
    scores = []
    for path in SCOPE:
        meta = root / "mutants" / (path + ".meta")
        if not meta.is_file():
            raise SystemExit(f"no mutmut results for {path} ({meta} missing): run `make mutation`")
        exit_codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        counts: Counter = Counter()
        survivors = []
        for key, code in exit_codes.items():
            if not in_scope(key, path):
                continue
            verdict = outcome(code)
            counts[verdict] += 1
            if verdict != "killed" and verdict != "timeout":
                survivors.append(f"{key}: {verdict}")
        scores.append(ModuleScore(module_name(path), counts, sorted(survivors)))
    return scores


def globs() -> list[str]:
    """The mutant-name patterns of ``SCOPE``, as ``mutmut run`` takes them."""
    return [f"{module_name(path)}.{pattern}__mutmut_*" for path in SCOPE for pattern in SCOPE[path]]


def run_mutmut(root: Path, max_children: int) -> int:
    """``mutmut run`` on the mutants of ``SCOPE`` (re-running each of them), in ``root``.

    ``PYTHONPATH`` is dropped so the tests import the mutated copies under ``mutants/``
    rather than the sources. mutmut forks a child per mutant from a process where the
    tests have already run, so the thread pools must survive a fork: OpenMP is kept to
    one thread (a forked LightGBM pool hangs, and every prediction would time out
    instead of failing) and numba's parallel kernels use its ``workqueue`` layer (its
    GNU OpenMP layer kills a forked child with SIGTERM, which mutmut reports as
    "suspicious" instead of a verdict).
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["OMP_NUM_THREADS"] = "1"
    env["NUMBA_THREADING_LAYER"] = "workqueue"
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)]
    return subprocess.run([*command, *globs()], cwd=root, env=env, check=False).returncode


def print_table(scores: list[ModuleScore]) -> None:
    """One line per module and a total line."""
    print(f"{'module':<24} {'killed':>7} {'total':>6} {'score':>7}  other outcomes")
    all_counts: Counter = Counter()
    for s in scores:
        all_counts += s.counts
        other = ", ".join(
            f"{n} {k}" for k, n in sorted(s.counts.items()) if k not in ("killed", "timeout")
        )
        print(f"{s.module:<24} {s.detected:>7} {s.total:>6} {s.score:>6.1f}%  {other}")
    total = sum(all_counts.values())
    detected = all_counts["killed"] + all_counts["timeout"]
    pct = 100.0 * detected / total if total else 0.0
    print(f"{'all':<24} {detected:>7} {total:>6} {pct:>6.1f}%")


def main(argv: list[str] | None = None) -> int:
    """Print the scores (or the globs or survivors); exit 1 under ``--fail-under``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="run mutmut on SCOPE first")
    parser.add_argument("--max-children", type=int, default=1, help="mutmut's worker processes")
    parser.add_argument("--globs", action="store_true", help="print the mutant patterns in scope")
    parser.add_argument("--survivors", action="store_true", help="list the undetected mutants")
    parser.add_argument("--fail-under", type=float, default=None, help="minimum score, percent")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository root")
    args = parser.parse_args(argv)
    if args.globs:
        print("\n".join(globs()))
        return 0
    if args.run:
        code = run_mutmut(args.root, args.max_children)
        if code != 0:
            print(f"mutmut run failed (exit {code})", file=sys.stderr)
            return code
    scores = read_scores(args.root)
    print_table(scores)
    if args.survivors:
        for s in scores:
            for line in s.survivors:
                print(f"  {line}")
    if args.fail_under is not None:
        low = [s for s in scores if s.score < args.fail_under]
        for s in low:
            print(f"{s.module}: {s.score:.1f}% is under {args.fail_under:.0f}%", file=sys.stderr)
        return 1 if low else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

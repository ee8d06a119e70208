"""LightGBM on a Dask cluster: ``lightgbm.dask.DaskLGBMClassifier`` behind the model contract.

:class:`DaskGradientBoostedModel` is a drop-in for ``training.model.GradientBoostedModel``
(same arguments, same ``fit(X, y, *, eval_set=...)``, same learned ``booster_``,
``best_iteration_``, ``evals_result_``, ``params_``), so calibration, the MQL policy, SHAP,
the bundle, the registry and the service are the same code whichever engine trained the
trees. Select it with ``TrainConfig(engine="dask")`` or ``leadscore train --engine dask``.

How a fit runs:

1. The client splits the encoded training rows into one partition per worker (at most),
   stratified by label and otherwise random (seeded), so every worker holds a fair sample:
   in LightGBM's data-parallel mode each feature's bins are built from one worker's rows,
   and every worker's classifier must see both classes.
2. Each partition is scattered straight to its own worker as a chunk of a dask array, with
   a full copy of the validation rows beside it. LightGBM computes evaluation metrics on
   each worker's local validation rows only (lightgbm 4.x does not combine them across
   workers), and early stopping stops each worker's loop on its own metric: with the whole
   validation period on every worker, all workers see the same metric, stop at the same
   round and never leave the others waiting on a socket (lightgbm issues #6351, #6197).
3. ``DaskLGBMClassifier`` trains data-parallel (``tree_learner=data``: histograms are summed
   across workers, so ``min_data_in_leaf`` and the other leaf constraints apply to the
   global counts), with the same parameters and early stopping on validation log loss as
   the single-machine model.
4. The booster comes back as LightGBM text, trimmed to the best iteration and with the
   cluster's network settings reset, as a plain ``lightgbm.Booster``: nothing of Dask is in
   the saved model.

What scales and what does not: the workers share the tree building (histograms over their
own rows), but the client still holds the encoded training matrix (it builds it, splits it
and ships it), and every worker holds the whole validation period. Workers need the same
``lightgbm`` version as the client.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, Self

import lightgbm as lgb
import numpy as np

from features.distributed import dask_client
from training.estimator import EvalPair, EvalSet, validation_pair
from training.model import GradientBoostedModel

if TYPE_CHECKING:
    from distributed import Client

MIN_ROWS_PER_WORKER = 1000
"""Fewer training rows per worker than this and fewer workers are used: a worker builds
the bins of its share of the features from its own rows, which need to be a fair sample."""

_NETWORK = {"num_machines": "1", "machines": "", "local_listen_port": "12400", "time_out": "120"}
"""LightGBM's defaults for the network parameters the cluster run leaves in the model text."""


def _reset_network(model_text: str) -> str:
    """The model text with the training cluster's addresses and size reset to defaults.

    They are only a record in the ``parameters:`` block, but a saved model should not name
    the hosts and ports of a cluster that is gone, nor look distributed when it is loaded.
    """
    for name, default in _NETWORK.items():
        model_text = re.sub(
            rf"^\[{name}: [^\]\n]*\]$",
            f"[{name}: {default}]",
            model_text,
            count=1,
            flags=re.MULTILINE,
        )
    return model_text


def partition_rows(y: np.ndarray, n_parts: int, seed: int) -> list[np.ndarray]:
    """Row positions of each partition: stratified by label, random within, sorted.

    Positives and negatives are each shuffled (seeded) and dealt round-robin, so partition
    sizes differ by at most two rows and every partition has both classes when each class
    has at least ``n_parts`` rows.
    """
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(n_parts)]
    for value in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == value))
        for p in range(n_parts):
            parts[p].append(rows[p::n_parts])
    return [np.sort(np.concatenate(p)) for p in parts]


def plan_parts(n_workers: int, y: np.ndarray) -> int:
    """How many workers to train on: all of them, unless the data is too small to share."""
    n_rows, n_pos = len(y), int(np.count_nonzero(y))
    return max(1, min(n_workers, n_rows // MIN_ROWS_PER_WORKER, n_pos, n_rows - n_pos))


class DaskGradientBoostedModel(GradientBoostedModel):
    """``GradientBoostedModel`` trained with ``lightgbm.dask`` on a Dask cluster.

    Args:
        params: LightGBM parameters overriding ``training.model.DEFAULT_PARAMS``
            (``tree_learner`` defaults to ``data``; ``voting`` is allowed too).
        num_boost_round: Upper bound on trees; early stopping usually ends sooner.
        early_stopping_rounds: Stop after this many rounds without validation gain.
        seed: Seed for bagging, feature sampling and the split into worker partitions.
        num_threads: Ignored: each worker uses its own Dask thread count.
        scheduler: ``local`` (a ``LocalCluster`` of ``n_workers`` processes for the
            duration of ``fit``), a scheduler address (``tcp://host:8786``), or a
            ``distributed.Client`` to reuse.
        n_workers: Worker processes of the local cluster (ignored otherwise).
    """

    def __init__(
        self,
        params: dict[str, Any] | None = None,
        num_boost_round: int = 2000,
        early_stopping_rounds: int = 100,
        seed: int = 0,
        num_threads: int = 0,
        scheduler: str | Client = "local",
        n_workers: int = 2,
    ):
        super().__init__(params, num_boost_round, early_stopping_rounds, seed, num_threads)
        self.scheduler = scheduler
        self.n_workers = n_workers

    def resolved_params(self) -> dict[str, Any]:
        """Parameters for the cluster: no ``num_threads`` (each worker's own), data-parallel."""
        params = super().resolved_params()
        params.pop("num_threads")
        params.setdefault("tree_learner", "data")
        return params

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        eval_set: EvalSet | None = None,
        feature_names: Sequence[str] | None = None,
        categorical_features: Sequence[int] | None = None,
    ) -> Self:
        """Train on the cluster and stop early on the validation period.

        Same arguments and learned attributes as ``GradientBoostedModel.fit``;
        ``params_`` also records ``num_machines``, the workers that trained.

        Raises:
            EvalSetError: when ``eval_set`` is not one pair matching ``X``.
            ConnectionError: when the scheduler cannot be reached.
        """
        X = np.asarray(X)
        valid_pair = validation_pair(eval_set, X.shape[1])
        connect: contextlib.AbstractContextManager[Client]
        if isinstance(self.scheduler, str):
            connect = dask_client(self.scheduler, self.n_workers)
        else:
            connect = nullcontext(self.scheduler)
        with contextlib.ExitStack() as stack:
            try:
                client = stack.enter_context(connect)
            except OSError as exc:
                raise ConnectionError(
                    f"cannot reach the Dask scheduler at {self.scheduler}: {exc}"
                ) from exc
            return self._fit_on(
                client,
                X,
                np.asarray(y),
                valid_pair,
                None if feature_names is None else list(feature_names),
                None if categorical_features is None else list(categorical_features),
            )

    def _fit_on(
        self,
        client: Client,
        X: np.ndarray,
        y: np.ndarray,
        valid_pair: EvalPair | None,
        feature_names: list[str] | None,
        categorical_features: list[int] | None,
    ) -> Self:
        import dask.array as da
        from lightgbm.dask import DaskLGBMClassifier

        workers = sorted(client.nthreads())
        if not workers:
            raise RuntimeError("the Dask cluster has no workers")
        parts = partition_rows(y, plan_parts(len(workers), y), self.seed)
        futures: list = []
        chunks: dict[str, list] = {"X": [], "y": [], "Xv": [], "yv": []}
        valid = () if valid_pair is None else valid_pair
        try:
            for rows, worker in zip(parts, workers, strict=False):
                local = (np.ascontiguousarray(X[rows]), y[rows], *valid)
                # hash=False: every worker gets its own copy of the validation rows.
                sent = client.scatter(list(local), workers=[worker], hash=False)
                futures.extend(sent)
                for key, future, value in zip(chunks, sent, local, strict=False):
                    chunks[key].append(da.from_delayed(future, value.shape, value.dtype))
                del local
            params = self.resolved_params()
            model = DaskLGBMClassifier(client=client, n_estimators=self.num_boost_round, **params)
            evaluation: dict[str, Any] = {}
            if valid_pair is not None:
                evaluation = {
                    "eval_X": da.concatenate(chunks["Xv"]),
                    "eval_y": da.concatenate(chunks["yv"]),
                    "eval_names": ["valid"],
                    "callbacks": [
                        lgb.early_stopping(
                            self.early_stopping_rounds, first_metric_only=True, verbose=False
                        )
                    ],
                }
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                # lightgbm.dask warns that n_jobs (always among the estimator's arguments)
                # is replaced by each worker's threads, and prints how it found ports.
                warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
                model.fit(
                    da.concatenate(chunks["X"]),
                    da.concatenate(chunks["y"]),
                    feature_name="auto" if feature_names is None else feature_names,
                    categorical_feature=(
                        "auto" if categorical_features is None else categorical_features
                    ),
                    **evaluation,
                )
        finally:
            client.cancel(futures)
        booster = model.booster_
        best = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
        text = _reset_network(booster.model_to_string(num_iteration=best))
        self.booster_ = lgb.Booster(model_str=text)
        self.best_iteration_ = int(best)
        self.evals_result_ = {
            k: [float(x) for x in v] for k, v in model.evals_result_.get("valid", {}).items()
        }
        self.params_ = {**params, "num_machines": len(parts)}
        return self

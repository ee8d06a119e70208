"""The MLflow pyfunc face of a bundle: ``predict(feature_frame) -> calibrated probabilities``.

MLflow stores this class as *code* (``runtime/mlflow_model.py`` is logged as the model
file, "models from code"), never as a pickle, and hands it the bundle folder (its margin
model as LightGBM text and/or JSON, the rest JSON) as an artifact. So
``mlflow.pyfunc.load_model("models:/lead-scoring@champion")`` runs ``ModelBundle.load``
and scores with the same routine as training and serving.

The model is logged with a signature (``model_signature``: each feature of the input spec
as a column, the probability as the output) and an input example (``input_example``: a
few validation rows), so MLflow shows its schema and checks frames against it.
"""

from typing import Any

import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc.model import PythonModel, PythonModelContext
from mlflow.types import ColSpec, Schema
from mlflow.types.schema import AnyType

from runtime.bundle import ModelBundle
from runtime.encoding import InputSpec

# No ``from __future__ import annotations`` here: MLflow reads the ``predict`` type hint
# as an object, and ``pd.DataFrame`` tells it to pass frames through untouched.

BUNDLE_ARTIFACT = "bundle"
"""Key of the bundle folder in the pyfunc model's ``artifacts``."""
EXAMPLE_ROWS = 5
"""Rows of the input example logged with the model."""


def model_signature(spec: InputSpec, frame: pd.DataFrame | None = None) -> ModelSignature:
    """The pyfunc's signature: the model's features in column order, and its probability.

    MLflow checks every frame against it before ``predict`` (converting nothing that
    might lose information), so each column is typed as the feature frames that train
    the model hold it:

    * a categorical feature is an ``any`` column: its values are text (or None), but
      feature frames hold them in pandas' ``category`` dtype, which MLflow's ``string``
      type refuses;
    * any other feature is a ``long`` column where ``frame`` holds it as NumPy integers
      (the ICP flags of the contract's pipeline), a ``boolean`` one where it holds NumPy
      booleans, and a ``double`` otherwise (float64, NaN when unknown).

    Args:
        spec: The model's input spec.
        frame: A feature frame of the training data; without it every number is a
            ``double``.
    """

    def column_type(name: str, dtype: str) -> str | AnyType:
        if dtype == "category":
            return AnyType()  # type: ignore[no-untyped-call]  # MLflow's own class is untyped
        held = frame[name].dtype if frame is not None and name in frame else None
        kind = held.kind if isinstance(held, np.dtype) else "f"
        return {"i": "long", "b": "boolean"}.get(kind, "double")

    inputs = Schema([ColSpec(column_type(f.name, f.dtype), f.name) for f in spec.features_])
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec("double", "probability")]))


def input_example(spec: InputSpec, frame: pd.DataFrame, rows: int = EXAMPLE_ROWS) -> pd.DataFrame:
    """The first ``rows`` rows of a feature frame, in the model's columns (categories as
    text, None when unknown), for MLflow to store and show as the input example."""
    head = frame.head(rows).reset_index(drop=True)
    return pd.DataFrame(
        {
            f.name: (
                head[f.name].astype(object).where(head[f.name].notna(), None)
                if f.dtype == "category"
                else head[f.name]
            )
            for f in spec.features_
        }
    )


class LeadScoringPyfunc(PythonModel):
    """Loads a ``ModelBundle`` from the model's artifacts and returns probabilities."""

    def load_context(self, context: PythonModelContext) -> None:
        """Load the bundle from the artifact folder MLflow downloaded."""
        self.bundle = ModelBundle.load(context.artifacts[BUNDLE_ARTIFACT])

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> np.ndarray:
        """Calibrated conversion probabilities, one per row of a feature frame.

        Args:
            context: MLflow's model context (unused; the bundle is loaded already).
            model_input: A frame with every feature of the model's input spec (extra
                columns such as ``lead_id`` and ``as_of`` are ignored).
            params: Unused.
        """
        frame = (
            model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        )  # tolerate records from a REST payload
        missing = [name for name in self.bundle.spec.names if name not in frame.columns]
        if missing:
            raise ValueError(f"input lacks feature columns the model needs: {missing}")
        return self.bundle.predict_proba(frame)

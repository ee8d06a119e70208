"""The MLflow pyfunc face of a bundle: ``predict(feature_frame) -> calibrated probabilities``.

MLflow stores this class as *code* (``runtime/mlflow_model.py`` is logged as the model
file, "models from code"), never as a pickle, and hands it the bundle folder (LightGBM
text + JSON) as an artifact. So ``mlflow.pyfunc.load_model("models:/lead-scoring@champion")``
runs ``ModelBundle.load`` and scores with the same routine as training and serving.
"""

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from runtime.bundle import ModelBundle

# No ``from __future__ import annotations`` here: MLflow reads the ``predict`` type hint
# as an object, and ``pd.DataFrame`` tells it to pass frames through untouched.

BUNDLE_ARTIFACT = "bundle"
"""Key of the bundle folder in the pyfunc model's ``artifacts``."""


class LeadScoringPyfunc(PythonModel):
    """Loads a ``ModelBundle`` from the model's artifacts and returns probabilities."""

    def load_context(self, context) -> None:
        """Load the bundle from the artifact folder MLflow downloaded."""
        self.bundle = ModelBundle.load(context.artifacts[BUNDLE_ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        """Calibrated conversion probabilities, one per row of a feature frame.

        Args:
            context: MLflow's model context (unused; the bundle is loaded already).
            model_input: A frame with every feature of the model's input spec (extra
                columns such as ``lead_id`` and ``as_of`` are ignored).
            params: Unused.
        """
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(
            model_input)  # tolerate records from a REST payload
        missing = [name for name in self.bundle.spec.names if name not in frame.columns]
        if missing:
            raise ValueError(f"input lacks feature columns the model needs: {missing}")
        return self.bundle.predict_proba(frame)

"""Model file logged to MLflow ("models from code"); MLflow executes it when loading.

It is not imported by leadscore itself. Executing it only declares which class serves
the model; the class then loads the bundle (LightGBM text + JSON) from the model's
artifacts, so no Python object of ours is ever pickled into the registry.
"""

import mlflow

from runtime.pyfunc import LeadScoringPyfunc

mlflow.models.set_model(LeadScoringPyfunc())

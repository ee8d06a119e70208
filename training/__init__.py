"""Training, evaluation, calibration, MQL policy and the MLflow registry."""

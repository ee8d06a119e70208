"""The trained model's runtime: what training writes and serving reads.

One home for everything a trained model needs after training: the bundle (load, save,
score), the exact TreeSHAP explainer, input encoding, score cards and reasons, and
registry access (MLflow lookups and aliases). ``training`` writes it, ``serving`` and
batch scoring read it; it imports only ``features`` and ``leadscore``'s core modules.
"""

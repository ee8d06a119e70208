"""leadscore: predictive lead scoring with explained scores (CLI entry point)."""

__version__ = "0.1.0"

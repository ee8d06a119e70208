"""Constants shared by the reliability tests (imported by name: pytest puts this folder on
``sys.path``)."""

from __future__ import annotations

import os

FULL = os.environ.get("LEADSCORE_RELIABILITY_FULL", "") == "1"
"""Full mode: thousands of fuzzed requests, kills at several points of every stage."""
TOKEN = "reliability-test-token-0123456789abcdef"
"""The bearer token of the guarded server; tests assert it never reaches its log."""


def budget(bounded: int, full: int) -> int:
    """``bounded`` in CI, ``full`` with ``LEADSCORE_RELIABILITY_FULL=1``."""
    return full if FULL else bounded

"""The one root of every error leadscore raises on purpose.

A ``LeadscoreError`` is a user's problem (bad data, a wrong path, a missing model), told
in one line; the CLI prints it as ``error: ...`` and exits with code 2. Anything else
that escapes is a bug and keeps its traceback. Each stage defines its own subclasses
next to the code that raises them; they also keep the built-in base they always had
(``ValueError``, ``RuntimeError``), so callers that caught those still do.
"""

from __future__ import annotations


class LeadscoreError(Exception):
    """A problem with the user's input, data, configuration or environment."""


class InputError(LeadscoreError, ValueError):
    """A command-line option or input path is wrong: missing, empty, or of the wrong kind."""

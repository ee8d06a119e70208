"""The error the simulator raises for bad input (unknown leads, bad scenarios)."""

from __future__ import annotations

from leadscore.errors import LeadscoreError


class SimulationInputError(LeadscoreError, ValueError):
    """An input of the sales process or a drift scenario is malformed."""

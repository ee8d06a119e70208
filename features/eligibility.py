"""Which leads a model knows: the one eligibility rule of training, batch scoring and serving.

A model learns from the snapshots training planned, and its MQL threshold is a quantile
of that population (a capacity policy) or a rate measured on it (a precision policy).
A lead outside it — older than any lead the model saw, say — still gets a probability,
but not one the policy was chosen for: scored in bulk, such leads move the MQL share
away from its target. So the rule that decides which (lead, ``as_of``) pairs training
snapshots is a value of its own, recorded in the training set's and the model's
metadata, and read back by batch scoring (which skips leads outside it) and by the
service (which scores them but says so in the answer's ``warnings``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

DAY_SECONDS = 86_400


class Population(BaseModel):
    """The leads a model is trained on and meant to score, at a moment ``as_of``.

    A lead is in the population at ``as_of`` when it was created at or before ``as_of``,
    had not converted at or before ``as_of``, and is at most ``max_lead_age_days`` old.

    Attributes:
        max_lead_age_days: Oldest lead age (days between creation and ``as_of``) in it;
            None: no limit (``OPEN_LEADS``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_lead_age_days: int | None = 180

    def eligible(
        self,
        created_at: pd.Series,
        converted_at: pd.Series,
        as_of: pd.Series | pd.Timestamp,
    ) -> np.ndarray:
        """Whether each lead is in the population at its ``as_of``.

        Args:
            created_at: Creation time of each lead.
            converted_at: Conversion time of each lead (NaT: not converted).
            as_of: Scoring moment, per lead or one for all.

        Returns:
            A boolean array, one entry per lead.
        """
        age = as_of - created_at
        ok = age >= pd.Timedelta(0)
        if self.max_lead_age_days is not None:
            ok &= age <= pd.Timedelta(days=self.max_lead_age_days)
        converted = converted_at <= as_of  # NaT (not converted) compares False
        return np.asarray(ok & ~converted, dtype=bool)

    def age_warning(self, age_seconds: float) -> str | None:
        """Why one lead of the given age at ``as_of`` is outside the population (None: it is not).

        The service has no conversion facts, so only the lead's age is judged.
        """
        days = age_seconds / DAY_SECONDS
        if days < 0:
            later = _days(math.floor(-days)) if -days >= 1 else "less than a day"
            return (
                f"lead was created {later} after as_of; the model was trained on leads "
                "created at or before as_of"
            )
        if self.max_lead_age_days is not None and days > self.max_lead_age_days:
            whole = math.floor(days)
            old = _days(whole) if whole > self.max_lead_age_days else f"more than {_days(whole)}"
            return (
                f"lead is {old} old; the model was trained on leads up to "
                f"{self.max_lead_age_days} days old"
            )
        return None

    def describe(self) -> str:
        """The rule in a few words, for reports."""
        if self.max_lead_age_days is None:
            return "open leads"
        return f"open leads up to {_days(self.max_lead_age_days)} old"


OPEN_LEADS = Population(max_lead_age_days=None)
"""Every lead that exists and has not converted, whatever its age."""


def _days(n: int) -> str:
    return f"{n} day{'' if n == 1 else 's'}"

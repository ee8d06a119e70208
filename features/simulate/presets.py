"""Named settings of the simulator for a kind of company: one name, the same world.

A preset only chooses among the simulator's existing arguments (how many leads, over how
many months, which regions the companies are in, how often a lead converts in the long
run); the generative model, and so the oracle, stay those of :mod:`features.simulate`.

``small-company`` is a team that installed the product recently: a few hundred leads in a
year, a low base rate (B2B lead-to-customer rates of 1-5 % are common), almost all of them
in one home market and a handful in two markets it has just entered. It is the data the
cold-start questions are about (is this enough to train? to calibrate? per region?), so it
is deliberately not flattering: the two small regions get a few dozen leads and a
conversion or two each.
"""

from __future__ import annotations

from dataclasses import dataclass

from features.simulate.drift import Drift
from features.simulate.errors import SimulationInputError
from features.simulate.simulation import Simulation, simulate


@dataclass(frozen=True)
class Preset:
    """One named setting of :func:`features.simulate.simulate`.

    Attributes:
        name: What ``leadscore simulate --preset`` takes.
        description: One line for help texts and docs.
        n_leads: Leads simulated unless the caller asks for another number.
        months: Months of lead creation unless the caller asks for another window.
        region_weights: (region, share of companies) pairs; regions left out get none.
        target_conversion: Share of human leads that would convert given unlimited time.
    """

    name: str
    description: str
    n_leads: int
    months: int
    region_weights: tuple[tuple[str, float], ...]
    target_conversion: float

    def simulate(
        self,
        seed: int = 0,
        n_leads: int | None = None,
        start: str = "2024-01-01",
        months: int | None = None,
        drift: Drift | None = None,
        buying_groups: bool = False,
    ) -> Simulation:
        """Run the simulator with this preset (``n_leads``/``months``: override its own)."""
        return simulate(
            self.n_leads if n_leads is None else n_leads,
            seed=seed,
            start=start,
            months=self.months if months is None else months,
            drift=drift,
            region_weights=dict(self.region_weights),
            target_conversion=self.target_conversion,
            buying_groups=buying_groups,
        )


SMALL_COMPANY = Preset(
    name="small-company",
    description=(
        "600 leads over 12 months, about 4% converting, 86% in NA and a few dozen leads "
        "each in EMEA and LATAM (no APAC)"
    ),
    n_leads=600,
    months=12,
    region_weights=(("NA", 0.86), ("EMEA", 0.08), ("LATAM", 0.06)),
    target_conversion=0.06,
)

PRESETS: dict[str, Preset] = {SMALL_COMPANY.name: SMALL_COMPANY}
"""Every preset by name."""


def preset(name: str) -> Preset:
    """The preset called ``name``.

    Raises:
        SimulationInputError: No preset has that name (the message lists those that do).
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise SimulationInputError(
            f"unknown simulator preset {name!r}; known: {', '.join(PRESETS)}"
        ) from None

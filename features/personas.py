"""Buying-group personas, declared as data: who a lead is in a deal, from seniority and department.

A B2B purchase is made by a buying group, not one person. Which roles the group needs
(someone who signs, someone who checks the product works, someone who pushes for it,
someone who will use it) is a sales team's own model of its deals, so it is data: the
built-in :data:`DEFAULT_PERSONAS` or a dataset config's ``personas:`` list::

    personas:
      - name: economic_buyer
        description: Signs the contract
        seniorities: [C-Level, VP]
      - {name: technical_evaluator, seniorities: [Director, Manager, Individual Contributor],
         departments: [IT, Engineering]}

A lead is the *first* persona (in declared order) whose ``seniorities`` and
``departments`` both contain its own (an empty list matches anything), so a VP of
Engineering declared under both ``economic_buyer`` and ``technical_evaluator`` is the one
listed first. Leads that match none (students, assistants) belong to no persona and count
toward no coverage. Values are the contract's vocabularies (``features.catalogue``
``SENIORITIES`` and ``DEPARTMENTS``); a misspelt one is a problem with a "did you mean".

Account features (``features.accounts``) use the mapping for persona coverage (which
personas are engaged at an account, which are missing) and the simulator uses the
default personas for its buying-group effect, so the claim that multi-threaded deals
close more often is part of the ground truth rather than an assumption.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from features.catalogue import DEPARTMENTS, SENIORITIES
from leadscore.errors import LeadscoreError


class PersonaError(LeadscoreError, ValueError):
    """A ``personas:`` declaration is unusable; lists every problem."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"personas: {len(self.problems)} problem(s)\n{lines}")


class PersonaSpec(BaseModel):
    """One persona of the buying group.

    Attributes:
        name: Identifier (``economic_buyer``); used in feature names, so snake_case.
        description: What the persona does in a deal, for reasons and the docs.
        seniorities: Seniorities that may hold it (empty: any).
        departments: Departments that may hold it (empty: any).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    seniorities: tuple[str, ...] = ()
    departments: tuple[str, ...] = ()

    def matches(self, seniority: np.ndarray, department: np.ndarray) -> np.ndarray:
        """Which leads (arrays of catalogue strings, None for missing) fit this persona."""
        ok = np.ones(len(seniority), dtype=bool)
        if self.seniorities:
            ok &= np.isin(seniority.astype(object), list(self.seniorities))
        if self.departments:
            ok &= np.isin(department.astype(object), list(self.departments))
        return ok


_REVENUE_TEAMS = ("Executive", "Marketing", "Sales", "Operations", "Finance")
DEFAULT_PERSONAS: tuple[PersonaSpec, ...] = (
    PersonaSpec(
        name="economic_buyer",
        description="owns the budget and signs",
        seniorities=("C-Level", "VP"),
        departments=_REVENUE_TEAMS,
    ),
    PersonaSpec(
        name="technical_evaluator",
        description="checks the product works with their systems",
        seniorities=("C-Level", "VP", "Director", "Manager", "Individual Contributor"),
        departments=("IT", "Engineering"),
    ),
    PersonaSpec(
        name="champion",
        description="pushes for the purchase inside the company",
        seniorities=("Director", "Manager"),
        departments=("Marketing", "Sales", "Operations"),
    ),
    PersonaSpec(
        name="end_user",
        description="will use the product every day",
        seniorities=("Manager", "Individual Contributor"),
        departments=("Marketing", "Sales", "Operations", "Finance", "HR", "Other"),
    ),
)
"""The built-in buying group of a B2B marketing product (override with ``personas:``)."""

NO_PERSONA = ""
"""The persona of a lead that matches none (students, assistants, unknown titles)."""


def persona_of(
    seniority: np.ndarray | Sequence[Any],
    department: np.ndarray | Sequence[Any],
    personas: Sequence[PersonaSpec] = DEFAULT_PERSONAS,
) -> np.ndarray:
    """Each lead's persona name (``NO_PERSONA`` when none matches), first match wins.

    Args:
        seniority: One value per lead (catalogue strings; None or NaN for missing).
        department: One value per lead, aligned with ``seniority``.
        personas: The buying group, in priority order.

    Returns:
        Object array of persona names aligned with the inputs.
    """
    sen = np.asarray(seniority, dtype=object)
    dept = np.asarray(department, dtype=object)
    if sen.shape != dept.shape:
        raise ValueError(f"seniority and department differ in length: {sen.shape} vs {dept.shape}")
    out = np.full(len(sen), NO_PERSONA, dtype=object)
    open_ = np.ones(len(sen), dtype=bool)
    for spec in personas:
        hit = open_ & spec.matches(sen, dept)
        out[hit] = spec.name
        open_ &= ~hit
    return out


def persona_codes(
    seniority: np.ndarray, department: np.ndarray, personas: Sequence[PersonaSpec]
) -> np.ndarray:
    """Each lead's persona as an index into ``personas`` (-1: none); see :func:`persona_of`."""
    sen = np.asarray(seniority, dtype=object)
    dept = np.asarray(department, dtype=object)
    if sen.shape != dept.shape:
        raise ValueError(f"seniority and department differ in length: {sen.shape} vs {dept.shape}")
    out = np.full(len(sen), -1, dtype=np.int64)
    for i, spec in enumerate(personas):
        out[(out < 0) & spec.matches(sen, dept)] = i
    return out


_SINGULAR = {"seniorities": "seniority", "departments": "department"}
_NAME = re.compile(r"[a-z][a-z0-9_]*")


def _suggest(value: object, vocabulary: Sequence[str]) -> str:
    """A "did you mean", trying a case-insensitive match first (``Vp`` is ``VP``)."""
    from features.dataset_config.schema import did_you_mean

    folded = {v.lower(): v for v in vocabulary}
    exact = folded.get(str(value).lower())
    return f" (did you mean {exact!r}?)" if exact else did_you_mean(value, vocabulary)


def persona_problems(raw: Any) -> list[str]:
    """Every problem of a ``personas:`` declaration, worded as ``personas[i] (name): ...``.

    Unknown keys, names that are not snake_case, duplicate names, and seniorities or
    departments outside the catalogue (with a "did you mean").
    """
    from features.dataset_config.schema import did_you_mean

    if not isinstance(raw, list) or not raw:
        return [
            "personas: give a list of personas, each with a `name` and `seniorities` "
            "and/or `departments`"
        ]
    problems: list[str] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        label = item.get("name") if isinstance(item, Mapping) else None
        where = f"personas[{i}]" + (f" ({label})" if label else "")
        if not isinstance(item, Mapping):
            problems.append(f"{where}: must be a mapping with `name`, got {item!r}")
            continue
        for key in item:
            if key not in PersonaSpec.model_fields:
                fields = list(PersonaSpec.model_fields)
                problems.append(f"{where}: unknown key {key!r}{did_you_mean(key, fields)}")
        for key, vocabulary in (("seniorities", SENIORITIES), ("departments", DEPARTMENTS)):
            values = item.get(key, [])
            if not isinstance(values, list | tuple):
                problems.append(f"{where}: {key} must be a list, got {values!r}")
                continue
            for value in values:
                if value not in vocabulary:
                    problems.append(
                        f"{where}: {key}: {value!r} is not a known {_SINGULAR[key]}"
                        f"{_suggest(value, vocabulary)}"
                    )
        name = item.get("name")
        if not name:
            problems.append(f"{where}: needs a `name`")
        elif not isinstance(name, str) or not _NAME.fullmatch(name):
            problems.append(f"{where}: name must be snake_case (e.g. economic_buyer)")
        elif name in seen:
            problems.append(f"{where}: duplicate persona name")
        else:
            seen.add(name)
    if problems:
        return problems
    try:
        [PersonaSpec.model_validate(item) for item in raw]
    except ValidationError as exc:  # anything the checks above did not word
        problems.append(f"personas: {exc.errors()[0]['msg']}")
    return problems


def parse_personas(raw: Any | None) -> tuple[PersonaSpec, ...]:
    """The personas of a ``personas:`` declaration (None: the built-in ones).

    Raises:
        PersonaError: listing every problem of the declaration.
    """
    if raw is None:
        return DEFAULT_PERSONAS
    problems = persona_problems(raw)
    if problems:
        raise PersonaError(problems)
    return tuple(PersonaSpec.model_validate(item) for item in raw)

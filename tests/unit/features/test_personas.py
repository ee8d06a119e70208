"""Buying-group personas: the mapping from seniority and department, and config checks."""

from __future__ import annotations

import numpy as np
import pytest

from features.dataset_config import validate_config
from features.personas import (
    DEFAULT_PERSONAS,
    NO_PERSONA,
    PersonaError,
    PersonaSpec,
    parse_personas,
    persona_codes,
    persona_of,
)


def test_default_personas_map_seniority_and_department():
    seniority = [
        "VP",
        "Individual Contributor",
        "Director",
        "Individual Contributor",
        "Student",
        "C-Level",
        None,
        "Manager",
    ]
    department = ["Marketing", "Engineering", "Sales", "Marketing", "Other", "IT", "Sales", None]
    assert list(persona_of(seniority, department)) == [
        "economic_buyer",
        "technical_evaluator",
        "champion",
        "end_user",
        NO_PERSONA,  # students buy nothing
        "technical_evaluator",  # a CIO evaluates: economic_buyer is for revenue teams
        NO_PERSONA,  # missing seniority matches no persona that names seniorities
        NO_PERSONA,  # missing department likewise
    ]
    assert [p.name for p in DEFAULT_PERSONAS] == [
        "economic_buyer",
        "technical_evaluator",
        "champion",
        "end_user",
    ]


def test_first_declared_persona_wins_and_empty_lists_match_anything():
    personas = (
        PersonaSpec(name="exec", seniorities=("C-Level", "VP")),
        PersonaSpec(name="anyone_in_it", departments=("IT",)),
    )
    names = persona_of(
        np.array(["VP", "Manager", "Manager"], dtype=object),
        np.array(["IT", "IT", "HR"], dtype=object),
        personas,
    )
    assert list(names) == ["exec", "anyone_in_it", NO_PERSONA]
    assert list(
        persona_codes(
            np.array(["VP", "Manager", "Manager"], dtype=object),
            np.array(["IT", "IT", "HR"], dtype=object),
            personas,
        )
    ) == [0, 1, -1]


def test_persona_of_refuses_misaligned_inputs():
    with pytest.raises(ValueError, match="differ in length"):
        persona_of(["VP"], ["IT", "HR"])


def _raw(**changes):
    raw = {
        "kind": "lead_snapshot",
        "source": {"file": "leads.csv"},
        "id": "Id",
        "outcome": {"column": "Converted"},
        "as_of": "2024-01-01",
        "features": [{"name": "source"}],
    }
    return raw | changes


def test_personas_in_a_dataset_config_are_checked_with_did_you_mean():
    _, problems = validate_config(
        _raw(
            personas=[
                {"name": "buyer", "seniorities": ["Vp", "C-Level"], "departments": ["Finanse"]},
                {"name": "buyer", "seniorities": ["Director"]},
                {"name": "Evaluator", "departmets": ["IT"]},
            ]
        )
    )
    assert (
        "personas[0] (buyer): seniorities: 'Vp' is not a known seniority (did you mean 'VP'?)"
        in problems
    )
    assert (
        "personas[0] (buyer): departments: 'Finanse' is not a known department "
        "(did you mean 'Finance'?)" in problems
    )
    assert "personas[1] (buyer): duplicate persona name" in problems
    assert (
        "personas[2] (Evaluator): unknown key 'departmets' (did you mean 'departments'?)"
        in problems
    )
    assert "personas[2] (Evaluator): name must be snake_case (e.g. economic_buyer)" in problems


def test_valid_personas_parse_and_absent_ones_are_the_defaults():
    raw = [{"name": "signer", "description": "signs", "seniorities": ["C-Level"]}]
    cfg, problems = validate_config(_raw(personas=raw))
    assert problems == []
    assert parse_personas(cfg.personas) == (
        PersonaSpec(name="signer", description="signs", seniorities=("C-Level",)),
    )
    assert parse_personas(None) == DEFAULT_PERSONAS
    with pytest.raises(PersonaError, match="give a list of personas"):
        parse_personas([])

"""The sentence of a next best action: what it would do, in words a rep reads at a glance."""

from __future__ import annotations

import pytest

from runtime.actions import sentence


@pytest.mark.parametrize(
    ("score", "probability", "mql", "expected"),
    [
        (
            (41, 78),
            (0.05, 0.31),
            (False, True),
            "A demo request now would raise the score from 41 to 78 and make it an MQL.",
        ),
        (
            (41, 78),
            (0.05, 0.31),
            (True, True),
            "A demo request now would raise the score from 41 to 78.",
        ),
        (
            (41, 58),
            (0.05, 0.08),
            (False, False),
            "A demo request now would raise the score from 41 to 58.",
        ),
        (
            (41, 43),
            (0.05, 0.052),
            (False, False),
            "A demo request now would barely change the score (from 41 to 43).",
        ),
        (
            (89, 90),
            (0.287, 0.301),
            (False, True),
            "A demo request now would barely change the score (from 89 to 90), but it would "
            "make it an MQL.",
        ),
        (
            (41, 41),
            (0.0501, 0.0512),
            (False, False),
            "A demo request now would barely change the score (it stays at 41; the chance to "
            "convert moves from 5.0% to 5.1%).",
        ),
        (
            (41, 41),
            (0.05011, 0.05016),
            (False, False),
            "A demo request now would barely change the score (it stays at 41; the chance to "
            "convert moves from 5.01% to 5.02%).",
        ),
        (
            (41, 41),
            (0.050110, 0.050111),
            (False, False),
            "A demo request now would barely change the score (it stays at 41).",
        ),
    ],
)
def test_sentences(score, probability, mql, expected):
    assert sentence("A demo request", score, probability, mql) == expected

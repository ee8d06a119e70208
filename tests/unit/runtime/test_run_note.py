"""The model card as an MLflow run description: whole when it fits, else cut at a line."""

from __future__ import annotations

from runtime.registry import NOTE_LIMIT, run_note


def test_a_card_that_fits_is_kept_whole() -> None:
    card = "# Model card\n\nshort\n"
    assert run_note(card) == card


def test_a_long_card_is_cut_at_a_line_within_mlflows_limit_and_says_where_the_rest_is() -> None:
    card = "".join(f"line {i}: " + "x" * 60 + "\n" for i in range(300))
    note = run_note(card)
    assert len(note) <= NOTE_LIMIT
    body, _, pointer = note.rpartition("\n\n… ")
    assert card.startswith(body + "\n") and body.endswith("x")  # whole lines only
    assert "report/model_card.md" in pointer

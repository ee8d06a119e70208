"""The pieces of serving per region: offsets shrunk by evidence and kept only when they
help held out, the alignment of a region's own margins, and whether a model reads the
region at all."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.bundle import Calibration
from runtime.linear import CategoricalTerm, LinearMargin, NumericTerm
from training import choice, regional

PLATT = Calibration("platt", a=1.0, b=0.0)  # probability = sigmoid(margin)


def _rows(n: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Margins whose true log-odds are ``margin + shift``."""
    rng = np.random.default_rng(seed)
    raw = rng.normal(-1.5, 1.0, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(raw + shift)))).astype(int)
    return raw, y


def test_an_offset_is_shrunk_toward_zero_by_little_evidence():
    big = regional.fit_offset(PLATT, *_rows(20_000, 0.6, 0), slope=1.0)
    small = regional.fit_offset(PLATT, *_rows(60, 0.6, 0), slope=1.0)
    assert big == pytest.approx(0.6, abs=0.08)
    assert 0 <= small < big


def test_an_offset_is_kept_only_when_it_helps_held_out():
    assert regional.offset_cv_gain(PLATT, *_rows(4_000, 0.6, 1), slope=1.0) > 0
    assert regional.offset_cv_gain(PLATT, *_rows(4_000, 0.0, 2), slope=1.0) <= 1e-4
    raw, y = _rows(50, 0.0, 3)
    y[:] = 0
    y[0] = 1
    assert regional.offset_cv_gain(PLATT, raw, y, slope=1.0) is None  # one conversion


def test_a_regions_own_margins_are_aligned_to_the_pooled_scale():
    raw, y = _rows(20_000, 0.0, 4)
    # the region's own model: the same ranking on another scale
    scale, shift = regional.align(PLATT, (raw - 3.0) / 2.0, y, raw, y)
    assert scale == pytest.approx(2.0, rel=0.05) and shift == pytest.approx(3.0, abs=0.15)


def test_whether_a_model_reads_the_region():
    numeric = NumericTerm("x", 0, fill=0.0, center=0.0, scale=1.0, coef=1.0)
    region = CategoricalTerm("region", 1, codes=(0, 1), coefs=(0.4, -0.2), means=(0.5, 0.5))
    X = np.column_stack([np.linspace(0, 5, 20), np.tile([0.0, 1.0], 10)])
    assert regional.reads_column(LinearMargin([numeric, region], -1.0, 2), X, 1, [0.0, 1.0])
    assert not regional.reads_column(LinearMargin([numeric], -1.0, 2), X, 1, [0.0, 1.0])


def test_own_beats_pooled_only_past_the_tolerance():
    pooled = choice.Score(0.3000, 0.7, 0.1)
    close = {choice.LOGISTIC: choice.Score(0.29995, 0.7, 0.1)}
    better = {choice.LOGISTIC: choice.Score(0.2900, 0.7, 0.1)}
    assert regional.decide_own(close, pooled) == (choice.LOGISTIC, False)
    assert regional.decide_own(better, pooled) == (choice.LOGISTIC, True)

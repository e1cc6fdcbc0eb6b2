"""The maths of the per-module signals, on deltas with known answers (no training)."""

from __future__ import annotations

import math

import pytest
import torch

from jupyter_peft.diagnostics import signals


def _orthonormal(rows: int, cols: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q


@pytest.mark.parametrize(("spectrum", "expected"), [
    ([1.0, 1.0, 1.0, 1.0], 4.0),                 # k equal directions: effective rank k
    ([5.0, 0.0, 0.0, 0.0], 1.0),                 # rank one
    ([3.0, 1.0], math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))),
    ([4.0, 2.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0], math.exp(-sum(p * math.log(p) for p in (0.5, 0.25, 0.125, 0.125)))),
])
def test_the_effective_rank_of_a_delta_with_a_known_spectrum(spectrum, expected):
    r = len(spectrum)
    u, v = _orthonormal(48, r, 0), _orthonormal(40, r, 1)
    b, a = u * torch.tensor(spectrum, dtype=torch.float64), v.T  # B A = U diag(s) V^T: singular values s
    sigma = signals.lowrank_singular_values(b, a)
    assert sorted(sigma.tolist(), reverse=True) == pytest.approx(spectrum, abs=1e-9)
    assert signals.effective_rank(sigma) == pytest.approx(expected, rel=1e-9)
    # the dense path (peft's get_delta_weight for LoHa, LoKr...) agrees
    assert signals.effective_rank(torch.linalg.svdvals(b @ a)) == pytest.approx(expected, rel=1e-6)


def test_a_zero_delta_has_no_effective_rank():
    assert math.isnan(signals.effective_rank(torch.zeros(4)))


def test_norms_from_the_factors_equal_the_materialised_ones():
    g = torch.Generator().manual_seed(0)
    b1, a1, b0, a0 = (torch.randn(*s, generator=g, dtype=torch.float64) for s in ((64, 8), (8, 32), (64, 8), (8, 32)))
    assert float(signals.lowrank_norm(b1, a1)) == pytest.approx(float(torch.linalg.norm(b1 @ a1)), rel=1e-10)
    direct = float(torch.linalg.norm(b1 @ a1 - b0 @ a0))
    assert float(signals.lowrank_diff_norm(b1, a1, b0, a0)) == pytest.approx(direct, rel=1e-10)
    assert float(signals.lowrank_diff_norm(b1, a1, b1.clone(), a1.clone())) == pytest.approx(0.0, abs=1e-6)

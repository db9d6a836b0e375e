"""hermes.stats: golden values, the bootstrap's size under H0, and the decision rule."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hermes.stats import (
    BootstrapResult,
    deflated_sharpe,
    expected_max_sharpe,
    paired_block_bootstrap,
    probabilistic_sharpe,
)

SAMPLE = [0.01, -0.02, 0.015, 0.03, -0.005, 0.02, -0.01, 0.005]


def paired_noise(seed: int, n: int, edge: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Two books on the same bars: a shared market move plus the challenger's own noise."""
    rng = np.random.default_rng(seed)
    market = rng.normal(0.0, 0.01, n)
    challenger = market + rng.normal(edge, 0.002, n)
    return challenger, market


def binomial_band(trials: int, p: float, z: float = 3.5) -> tuple[float, float]:
    sd = math.sqrt(p * (1 - p) / trials)
    return p - z * sd, p + z * sd


def psr_by_hand(returns: list[float], sr_star: float) -> float:
    """Direct evaluation of Bailey & López de Prado's formula in plain Python."""
    n = len(returns)
    mean = sum(returns) / n
    sr = mean / statistics.stdev(returns)
    m2 = sum((x - mean) ** 2 for x in returns) / n
    g3 = sum((x - mean) ** 3 for x in returns) / n / m2**1.5
    g4 = sum((x - mean) ** 4 for x in returns) / n / m2**2
    z = (sr - sr_star) * math.sqrt(n - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def test_psr_matches_direct_formula() -> None:
    # SR = 0.3394759, skewness -0.1168409, kurtosis 1.9651715 for this sample.
    assert probabilistic_sharpe(SAMPLE) == pytest.approx(psr_by_hand(SAMPLE, 0.0), rel=1e-12)
    assert probabilistic_sharpe(SAMPLE) == pytest.approx(0.8076639566100984, rel=1e-10)
    assert probabilistic_sharpe(SAMPLE, 0.1) == pytest.approx(psr_by_hand(SAMPLE, 0.1), rel=1e-12)
    assert probabilistic_sharpe(SAMPLE, 0.1) == pytest.approx(0.7301421553858372, rel=1e-10)


def test_psr_is_half_at_the_benchmark_and_monotone() -> None:
    r = np.asarray(SAMPLE)
    sr = r.mean() / r.std(ddof=1)
    assert probabilistic_sharpe(r, sr) == pytest.approx(0.5, abs=1e-12)
    values = [probabilistic_sharpe(r, s) for s in (-0.5, 0.0, 0.2, 0.5, 1.0)]
    assert values == sorted(values, reverse=True)


def test_psr_is_calibrated_under_h0() -> None:
    # True Sharpe 0, normal returns: PSR(0) is ~uniform, so P(PSR > 0.95) ~ 5%.
    rng = np.random.default_rng(7)
    samples = rng.normal(0.0, 0.01, size=(1000, 250))
    rate = np.mean([probabilistic_sharpe(row) > 0.95 for row in samples])
    lo, hi = binomial_band(1000, 0.05)
    assert lo < rate < hi


def test_psr_degenerate_inputs() -> None:
    assert probabilistic_sharpe([]) == 0.0
    assert probabilistic_sharpe([0.01, 0.02]) == 0.0  # n < 3: no evidence
    assert probabilistic_sharpe([0.001] * 10) == 1.0  # riskless gain beats any benchmark
    assert probabilistic_sharpe([-0.001] * 10) == 0.0
    assert probabilistic_sharpe([0.0] * 10) == 0.5
    assert probabilistic_sharpe([0.0] * 10, 0.1) == 0.0
    assert probabilistic_sharpe([0.0] * 10, -0.1) == 1.0
    with pytest.raises(ValueError):
        probabilistic_sharpe([0.01, float("nan"), 0.02])


def test_expected_max_sharpe_golden_and_monte_carlo() -> None:
    # sqrt(V) ((1-γ) Φ⁻¹(0.9) + γ Φ⁻¹(1 - 1/(10e))) with Φ⁻¹(0.9) = 1.2815516,
    # Φ⁻¹(0.9632121) = 1.7892418, γ = 0.5772157.
    emax = expected_max_sharpe(10, 1.0)
    assert emax == pytest.approx(0.4227843 * 1.2815516 + 0.5772157 * 1.7892418, rel=1e-6)
    assert emax == pytest.approx(1.5745983, rel=1e-6)
    # E[max of 10 N(0,1)] is 1.5388 exactly; the Gumbel approximation is within ~2.5%.
    mc = np.random.default_rng(0).standard_normal((200_000, 10)).max(axis=1).mean()
    assert mc == pytest.approx(1.5388, abs=0.01)
    assert emax == pytest.approx(mc, rel=0.03)
    # Scales with the standard deviation of the Sharpe estimates; grows with trials.
    assert expected_max_sharpe(100, 0.25) == pytest.approx(0.5 * expected_max_sharpe(100, 1.0))
    assert expected_max_sharpe(100, 1.0) > expected_max_sharpe(10, 1.0) > 0


def test_expected_max_sharpe_degenerate() -> None:
    assert expected_max_sharpe(1, 1.0) == 0.0
    assert expected_max_sharpe(50, 0.0) == 0.0
    for trials, var in [(0, 1.0), (5, -1.0), (5, float("nan"))]:
        with pytest.raises(ValueError):
            expected_max_sharpe(trials, var)


def test_deflated_sharpe() -> None:
    r = np.random.default_rng(3).normal(0.0005, 0.01, 2000)
    assert deflated_sharpe(r, 1, 0.01) == probabilistic_sharpe(r, 0.0)
    sr_star = expected_max_sharpe(100, 0.0004)
    assert deflated_sharpe(r, 100, 0.0004) == probabilistic_sharpe(r, sr_star)
    # More candidates tried: a higher bar, a lower probability the Sharpe is real.
    dsr = [deflated_sharpe(r, k, 0.0004) for k in (1, 10, 100, 1000)]
    assert dsr == sorted(dsr, reverse=True) and dsr[0] > dsr[-1]
    assert deflated_sharpe([], 10, 0.01) == 0.0


# --------------------------------------------------------------------------- bootstrap


def test_identical_series_give_no_evidence() -> None:
    c, _ = paired_noise(1, 500)
    res = paired_block_bootstrap(c, c.copy())
    assert res == BootstrapResult(mean_diff=0.0, p_value=1.0, n=500, block=8)


def test_planted_edge_is_detected() -> None:
    c, b = paired_noise(2, 1000, edge=0.0005)  # 0.05% per bar vs 0.2% noise: t ~ 8
    res = paired_block_bootstrap(c, b, n_boot=2000)
    assert res.mean_diff > 0
    assert res.p_value == pytest.approx(1 / 2001)  # the smallest p the bootstrap can give
    assert paired_block_bootstrap(b, c).p_value == 1.0  # the reversed test sees nothing


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    c, b = paired_noise(3, 700, edge=0.0001)
    first = paired_block_bootstrap(c, b, seed=11)
    assert paired_block_bootstrap(c, b, seed=11) == first
    other = [paired_block_bootstrap(c, b, seed=s).p_value for s in range(12, 17)]
    assert any(p != first.p_value for p in other)
    assert all(abs(p - first.p_value) < 0.05 for p in other)  # Monte Carlo noise only


def test_block_length() -> None:
    c, b = paired_noise(4, 1000)
    assert paired_block_bootstrap(c, b).block == 10  # round(1000^(1/3))
    assert paired_block_bootstrap(c, b, block=1).block == 1
    assert paired_block_bootstrap(c[:5], b[:5], block=50).block == 5  # clamped to n
    assert paired_block_bootstrap(c[:3], b[:3]).block == 1


def test_bootstrap_degenerate_and_bad_input() -> None:
    assert paired_block_bootstrap([], []) == BootstrapResult(0.0, 1.0, 0, 1)
    assert paired_block_bootstrap([0.02], [0.01]).p_value == 1.0
    with pytest.raises(ValueError):
        paired_block_bootstrap([0.1, 0.2], [0.1])
    with pytest.raises(ValueError):
        paired_block_bootstrap([0.1, float("inf")], [0.1, 0.2])
    with pytest.raises(ValueError):
        paired_block_bootstrap([0.1, 0.2], [0.1, 0.2], block=0)


def test_false_positive_rate_under_h0() -> None:
    """200 experiments with no true difference: rejections at 5% stay near 5%."""
    seeds, n = 200, 500
    p = np.array(
        [paired_block_bootstrap(*paired_noise(10_000 + s, n), seed=s).p_value for s in range(seeds)]
    )
    rate = float(np.mean(p < 0.05))
    lo, hi = binomial_band(seeds, 0.05)  # 3.5 sd: [0.0, 0.104] for 200 draws
    assert lo <= rate <= hi, rate
    # p is roughly uniform under H0: a quarter of the mass in each quartile, loosely.
    assert np.all(np.abs(np.histogram(p, bins=4, range=(0, 1))[0] / seeds - 0.25) < 0.1)


@pytest.mark.slow
def test_false_positive_rate_under_h0_autocorrelated() -> None:
    """AR(1) differences (phi 0.3): the blocks keep the size near 5%; resampling bars one by
    one (block=1) ignores the dependence, underestimates the variance by a factor ~1.9
    and rejects ~11% of the time."""
    seeds, n, phi = 1500, 1000, 0.3
    blocked = single = 0
    for s in range(seeds):
        rng = np.random.default_rng(20_000 + s)
        eps = rng.normal(0.0, 0.002, n)
        d = np.empty(n)
        d[0] = eps[0] / math.sqrt(1 - phi**2)  # start in the stationary distribution
        for t in range(1, n):
            d[t] = phi * d[t - 1] + eps[t]
        market = rng.normal(0.0, 0.01, n)
        blocked += paired_block_bootstrap(market + d, market, seed=s).p_value < 0.05
        single += paired_block_bootstrap(market + d, market, block=1, seed=s).p_value < 0.05
    # Block bootstraps are mildly liberal under dependence at small n (~5.5% measured here),
    # hence the upper bound only, with 1% of slack above the binomial band.
    assert blocked / seeds < binomial_band(seeds, 0.05)[1] + 0.01
    assert single / seeds > 0.09


def test_long_series_runs() -> None:
    # Speed sanity, not a timing test: 20,000 bars x 2,000 resamples is a few tens of ms.
    c, b = paired_noise(5, 20_000)
    res = paired_block_bootstrap(c, b, n_boot=2000)
    assert res.n == 20_000 and res.block == 27 and 0 < res.p_value <= 1


floats = st.floats(min_value=-0.5, max_value=0.5, allow_nan=False, allow_subnormal=False)


@settings(max_examples=60, deadline=None)
@given(pairs=st.lists(st.tuples(floats, floats), max_size=60), block=st.none() | st.integers(1, 9))
def test_bootstrap_properties(pairs: list[tuple[float, float]], block: int | None) -> None:
    c = np.array([x for x, _ in pairs])
    b = np.array([y for _, y in pairs])
    fwd = paired_block_bootstrap(c, b, block=block, n_boot=199, seed=1)
    rev = paired_block_bootstrap(b, c, block=block, n_boot=199, seed=1)
    assert 0.0 < fwd.p_value <= 1.0 and 0.0 < rev.p_value <= 1.0
    assert rev.mean_diff == -fwd.mean_diff
    assert fwd.n == rev.n == len(pairs) and fwd.block == rev.block
    # Same resamples mirrored: "at least as large" and "at least as small" cover every draw.
    if len(pairs) >= 2:
        assert fwd.p_value + rev.p_value >= 1.0

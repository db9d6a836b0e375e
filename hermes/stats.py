"""The statistics behind Hermes' decisions: is a challenger really better, or just lucky?

Pure functions of numpy arrays (no I/O, no state). Returns are simple per-bar returns and
every Sharpe ratio here is *per bar* (not annualised): the formulas below are stated in the
units of the sample they are estimated from.

- `paired_block_bootstrap`: one-sided test that the challenger's mean per-bar return beats
  the baseline's on the same bars, robust to the serial dependence of market returns.
- `probabilistic_sharpe`, `expected_max_sharpe`, `deflated_sharpe`: Bailey & López de Prado's
  corrections of a Sharpe ratio for sample length, non-normal returns and selection among
  many candidates.

Hermes' promotion decisions do not use these: they are sequential e-value tests
(`hermes.sequential`). The bootstrap compares two equity curves after the fact (benchmarks),
the deflated Sharpe ratio reports the multiplicity of the walk-forward screening.

References
----------
- Politis, D. N. & Romano, J. P. (1992). "A circular block-resampling procedure for
  stationary data." In *Exploring the Limits of Bootstrap*, Wiley, 263-270.
- Hall, P., Horowitz, J. L. & Jing, B.-Y. (1995). "On blocking rules for the bootstrap with
  dependent data." *Biometrika* 82(3), 561-574 (block length of order n^(1/3)).
- Bailey, D. H. & López de Prado, M. (2012). "The Sharpe ratio efficient frontier."
  *Journal of Risk* 15(2), 3-44 (the probabilistic Sharpe ratio).
- Bailey, D. H. & López de Prado, M. (2014). "The deflated Sharpe ratio: correcting for
  selection bias, backtest overfitting and non-normality." *Journal of Portfolio
  Management* 40(5), 94-107.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

__all__ = [
    "EULER_GAMMA",
    "BootstrapResult",
    "deflated_sharpe",
    "expected_max_sharpe",
    "paired_block_bootstrap",
    "probabilistic_sharpe",
]

EULER_GAMMA = 0.5772156649015329  # Euler–Mascheroni constant
_NORMAL = NormalDist()  # standard normal: cdf via erf, inv_cdf via Wichura's AS241
# Resample indices are drawn in chunks of at most this many, so that a tiny block on a long
# series (block=1, n=20,000 -> 40M indices) does not allocate hundreds of megabytes at once.
_MAX_DRAWS_PER_CHUNK = 2_000_000


def _as_returns(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


# --------------------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class BootstrapResult:
    """Outcome of `paired_block_bootstrap`.

    mean_diff: mean of d = challenger - baseline (per bar); p_value: one-sided p-value of
    H0: E[d] <= 0; n: paired bars; block: block length used.
    """

    mean_diff: float
    p_value: float
    n: int
    block: int


def default_block(n: int) -> int:
    """Block length round(n^(1/3)), at least 1 and at most n (Hall, Horowitz & Jing 1995)."""
    if n <= 1:
        return 1
    return int(min(n, max(1, round(n ** (1.0 / 3.0)))))


def paired_block_bootstrap(
    challenger: np.ndarray,
    baseline: np.ndarray,
    *,
    block: int | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> BootstrapResult:
    """One-sided circular block bootstrap test of H0: E[challenger - baseline] <= 0.

    Both arrays hold simple per-bar returns on the *same* bars, so the test is on the paired
    differences d_t = c_t - b_t, which removes the market move both books share.

    Procedure (Politis & Romano 1992):

    1. d̄ = mean(d); centre the differences, e_t = d_t - d̄, so resamples obey H0 (mean 0).
    2. Wrap e around a circle and draw k = ceil(n / L) block starts uniformly from 0..n-1;
       concatenate the blocks e[s], e[s+1], ..., e[s+L-1] (indices mod n), truncate to n.
       Blocks keep the serial dependence (volatility clustering, autocorrelation) within
       L bars; the circle gives every bar the same chance to be drawn, so E*[ē*] = 0 exactly.
    3. p = (1 + #{ē*_j >= d̄}) / (n_boot + 1)  (the +1 counts the observed sample itself, so
       p is never 0 and the test is exact-size under exchangeability; Davison & Hinkley 1997).

    Vectorised: each resample mean is a sum of precomputed circular block sums, so the work
    is n_boot * k gathers instead of n_boot * n (20,000 bars x 2,000 resamples in ~20 ms).

    The reversed test (H0: E[d] >= 0) is `paired_block_bootstrap(baseline, challenger)` with
    the same seed: it draws the same blocks, so its resample means are exactly negated.

    Degenerate inputs: with n < 2 there is no estimate of the variability of d, so the
    result is p = 1.0 (no evidence); mean_diff is 0.0 for n = 0. `block` defaults to
    round(n^(1/3)) and is clamped to [1, n].
    """
    c = _as_returns(challenger, "challenger")
    b = _as_returns(baseline, "baseline")
    if c.shape != b.shape:
        raise ValueError(f"paired series must have the same length: {c.size} != {b.size}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if block is not None and block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    n = int(c.size)
    L = default_block(n) if block is None else int(min(block, max(n, 1)))
    if n == 0:
        return BootstrapResult(mean_diff=0.0, p_value=1.0, n=0, block=L)
    d = c - b
    observed = float(d.mean())
    if n < 2:
        return BootstrapResult(mean_diff=observed, p_value=1.0, n=n, block=L)

    e = d - observed
    k = -(-n // L)  # ceil(n / L) blocks per resample
    tail = n - (k - 1) * L  # length of the last, truncated block, in 1..L
    wrapped = np.concatenate([e, e[: L - 1]])  # circular: block starting at s may wrap
    windows = np.lib.stride_tricks.sliding_window_view(wrapped, L)  # (n, L), a view
    full_sums = windows.sum(axis=1)
    tail_sums = full_sums if tail == L else windows[:, :tail].sum(axis=1)

    rng = np.random.default_rng(seed)
    boot_sums = np.empty(n_boot)
    chunk = max(1, _MAX_DRAWS_PER_CHUNK // k)
    for lo in range(0, n_boot, chunk):  # one iteration unless the resamples are huge
        hi = min(n_boot, lo + chunk)
        starts = rng.integers(0, n, size=(hi - lo, k))
        boot_sums[lo:hi] = full_sums[starts[:, :-1]].sum(axis=1) + tail_sums[starts[:, -1]]
    boot_means = boot_sums / n

    exceed = int(np.count_nonzero(boot_means >= observed))
    p = (1 + exceed) / (n_boot + 1)
    return BootstrapResult(mean_diff=observed, p_value=float(p), n=n, block=L)


# --------------------------------------------------------------------------- Sharpe


def _sharpe_moments(r: np.ndarray) -> tuple[float, float, float] | None:
    """(SR, skewness, kurtosis) of per-bar returns; None when the variance is zero.

    SR = mean / sample std (ddof 1), as in the backtest metrics; skewness γ3 = m3 / m2^1.5
    and kurtosis γ4 = m4 / m2^2 (non-excess, 3 for a normal) use the central moments m_k of
    the sample itself, which satisfy Pearson's γ4 >= 1 + γ3² and so keep PSR's variance term
    non-negative.
    """
    mean = float(r.mean())
    dev = r - mean
    m2 = float(np.mean(dev * dev))
    # Constant returns leave only rounding noise in the deviations: treat as zero variance.
    if m2 <= (1e-12 * abs(mean)) ** 2 or m2 == 0.0:
        return None
    std = math.sqrt(m2 * r.size / (r.size - 1))
    g3 = float(np.mean(dev**3)) / m2**1.5
    g4 = float(np.mean(dev**4)) / m2**2
    return mean / std, g3, g4


def probabilistic_sharpe(returns: np.ndarray, benchmark_sr: float = 0.0) -> float:
    """Probability that the true per-bar Sharpe ratio exceeds `benchmark_sr`.

    PSR(SR*) = Φ( (SR - SR*) * sqrt(n - 1) / sqrt(1 - γ3 SR + (γ4 - 1)/4 SR²) )
    (Bailey & López de Prado 2012, eq. 11), with SR = mean / std of the n per-bar returns,
    γ3 their skewness and γ4 their (non-excess) kurtosis. `benchmark_sr` is per bar too.

    Degenerate inputs, without NaN:
    - n < 3 (including no data): 0.0, no evidence that the Sharpe beats anything;
    - zero variance: SR is +inf / -inf / undefined for a positive / negative / zero mean,
      so PSR is 1.0 / 0.0 / (1.0 if SR* < 0, 0.5 if SR* == 0, 0.0 if SR* > 0);
    - SR == SR*: 0.5 (Φ(0));
    - a zero variance term (two-point returns at Pearson's bound): 1.0, 0.5 or 0.0 by the
      sign of SR - SR*.
    """
    r = _as_returns(returns, "returns")
    if not math.isfinite(benchmark_sr):
        raise ValueError(f"benchmark_sr must be finite, got {benchmark_sr}")
    n = r.size
    if n < 3:
        return 0.0
    moments = _sharpe_moments(r)
    if moments is None:
        mean = float(r.mean())
        if mean > 0.0:
            return 1.0
        if mean < 0.0:
            return 0.0
        return _step(0.0 - benchmark_sr)
    sr, g3, g4 = moments
    var_term = 1.0 - g3 * sr + (g4 - 1.0) / 4.0 * sr * sr
    if var_term <= 0.0:
        return _step(sr - benchmark_sr)
    z = (sr - benchmark_sr) * math.sqrt(n - 1) / math.sqrt(var_term)
    return float(_NORMAL.cdf(z))


def _step(x: float) -> float:
    return 1.0 if x > 0.0 else 0.0 if x < 0.0 else 0.5


def expected_max_sharpe(trials: int, sr_variance: float) -> float:
    """Expected maximum of `trials` Sharpe estimates whose true value is 0 (under H0).

    E[max SR] ≈ sqrt(V) * ( (1 - γ) Φ⁻¹(1 - 1/N) + γ Φ⁻¹(1 - 1/(N e)) )
    (Bailey & López de Prado 2014, eq. 2; the Gumbel approximation of the maximum of N
    normals), with V the variance of the N Sharpe estimates across trials (same per-bar
    units as the Sharpe ratios) and γ the Euler–Mascheroni constant. For N = 10, V = 1 it
    gives 1.5745 against the exact 1.5388: the approximation errs slightly high (stricter).

    trials = 1 returns 0.0 (a single estimate's expected value under H0; the formula would
    give -inf), and so does sr_variance = 0.
    """
    if int(trials) != trials or trials < 1:
        raise ValueError(f"trials must be an integer >= 1, got {trials}")
    if not (math.isfinite(sr_variance) and sr_variance >= 0.0):
        raise ValueError(f"sr_variance must be finite and >= 0, got {sr_variance}")
    n = int(trials)
    if n == 1 or sr_variance == 0.0:
        return 0.0
    q1 = _NORMAL.inv_cdf(1.0 - 1.0 / n)
    q2 = _NORMAL.inv_cdf(1.0 - 1.0 / (n * math.e))
    return float(math.sqrt(sr_variance) * ((1.0 - EULER_GAMMA) * q1 + EULER_GAMMA * q2))


def deflated_sharpe(returns: np.ndarray, trials: int, sr_variance: float) -> float:
    """Deflated Sharpe ratio: PSR against the Sharpe the best of `trials` would show by luck.

    DSR = PSR(SR*) with SR* = expected_max_sharpe(trials, sr_variance)
    (Bailey & López de Prado 2014, eq. 3). With trials = 1 it is PSR(0). The degenerate cases
    are those of `probabilistic_sharpe`.
    """
    return probabilistic_sharpe(returns, expected_max_sharpe(trials, sr_variance))

"""Claims of docs/theory.md §1 for ``ratedist verify``."""


from __future__ import annotations

SECTION = 1

import numpy as np

from . import Check, claim
from ..rd.channel import sample_laplace_test_channel
from ..rd.closed import rate_laplace


@claim("rd.laplace.test_channel", "Sampling the backward test channel U = V + Z gives E|U-V| = D, "
       "P(V=0) = (λD)² and E|U| = 1/λ (Laplace(λ) source)", "docs/theory.md §1 (test channel); slides")
def _test_channel() -> Check:
    n, lam, d = 400_000, 1.0, 0.4
    u, v = sample_laplace_test_channel(n, d, lam, seed=1)
    # errors in units of standard errors: |U-V| ~ Exp(mean D), 1{V=0} ~ Bern(atom), |U| ~ Exp(1/λ)
    z1 = abs(np.mean(np.abs(u - v)) - d) / (d / np.sqrt(n))
    atom = (lam * d) ** 2
    z2 = abs(np.mean(v == 0) - atom) / np.sqrt(atom * (1 - atom) / n)
    z3 = abs(np.mean(np.abs(u)) - 1 / lam) / (1 / lam / np.sqrt(n))
    return Check(measured=float(max(z1, z2, z3)), tolerance=5.0, detail="max deviation in standard errors")


@claim("rd.laplace.convex_nonincreasing", "The Laplacian R(D) is convex and non-increasing on (0, 2/λ]",
       "docs/theory.md §1 check (a)")
def _convex() -> Check:
    d = np.linspace(0.01, 2.0, 2001)
    r = rate_laplace(d)
    slope_viol = float(np.max(np.diff(r)))
    second = np.diff(r, 2)
    conv_viol = float(-np.min(second))
    return Check(measured=max(slope_viol, conv_viol, 0.0), tolerance=1e-12)


@claim("rd.laplace.ba_agrees", "The Laplacian R(D) = −ln(λD) agrees with Blahut–Arimoto on a fine grid "
       "for D in [0.05/λ, 1/λ]: R_L − a ≤ −ln(λD_BA) ≤ R_BA + a, a = (Δ/D)²/3 the grid allowance "
       "(slopes −20 … −1; slope −1 is the critical one, where D → 1/λ and R → 0)",
       "docs/theory.md §1 (BA, checks (b))")
def _ba_agrees() -> Check:
    from ..rd.blahut_arimoto import blahut_arimoto_grid
    from ..rd.discretize import discretize_laplace

    g = discretize_laplace(1.0, 0.008, 14.0)
    worst, ds = -np.inf, []
    for s in (-20.0, -6.0, -2.0, -1.25, -1.05, -1.0):
        res = blahut_arimoto_grid(g.points, g.pmf, s, tol=1e-4)
        closed = rate_laplace(res.distortion)
        allow = (g.step / res.distortion) ** 2 / 3
        excess = max(res.rate_lower - allow - closed, closed - res.rate - allow, -1.0)
        worst = max(worst, excess)
        ds.append(res.distortion)
    return Check(measured=float(worst), tolerance=0.0,
                 detail=f"max violation of the certified bracket (nats); D from {min(ds):.3g} to {max(ds):.3g}")


@claim("rd.slb.tight_laplace", "The Shannon lower bound is tight for Laplace/absolute error (closed form = SLB "
       "for D ≤ 1/λ), and for a non-Laplacian source (Gaussian under absolute error) BA ≥ SLB − Δ",
       "docs/theory.md §1 (Shannon lower bound)")
def _slb() -> Check:
    from ..rd.blahut_arimoto import blahut_arimoto_grid
    from ..rd.channel import differential_entropy_laplace, shannon_lower_bound
    from ..rd.discretize import discretize_gaussian

    d = np.linspace(0.01, 1.0, 200)
    tight = float(np.max(np.abs(shannon_lower_bound(d, entropy=differential_entropy_laplace(1.0)) - rate_laplace(d))))
    g = discretize_gaussian(1.0, 0.05, 7.0)
    below = -np.inf
    for s in (-4.0, -1.5):
        res = blahut_arimoto_grid(g.points, g.pmf, s, tol=1e-5)
        slb = shannon_lower_bound(res.distortion, pmf=g.pmf, step=g.step)
        below = max(below, slb - res.rate - g.step)  # > 0 would violate BA ≥ SLB − Δ
    return Check(measured=max(tight - 1e-12, below), tolerance=0.0,
                 detail=f"|SLB − R| for Laplace = {tight:.2e}; max (SLB − R_BA − Δ) for Gaussian/L1 = {below:.3g}")

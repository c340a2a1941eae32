"""Claims of THEORY.md §1 for ``ratedist verify``."""

from __future__ import annotations

import numpy as np

from ..verify import Check, claim
from .channel import sample_laplace_test_channel
from .closed import rate_laplace


@claim("rd.laplace.test_channel", "Sampling the backward test channel U = V + Z gives E|U-V| = D, "
       "P(V=0) = (λD)² and E|U| = 1/λ (Laplace(λ) source)", "THEORY.md §1 (test channel); slides")
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
       "THEORY.md §1 check (a)")
def _convex() -> Check:
    d = np.linspace(0.01, 2.0, 2001)
    r = rate_laplace(d)
    slope_viol = float(np.max(np.diff(r)))
    second = np.diff(r, 2)
    conv_viol = float(-np.min(second))
    return Check(measured=max(slope_viol, conv_viol, 0.0), tolerance=1e-12)

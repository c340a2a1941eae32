"""Claims of docs/theory.md §3 (successive refinement) for ``ratedist verify``."""


from __future__ import annotations

SECTION = 3

import numpy as np

from ..rd import rate_laplace
from ..refinement import ideal_refinement_stage, make_refinement_code, measure_refinement, nearest_codeword
from . import Check, claim

__all__: list[str] = []


@claim("refinement.ideal_stage.residual_laplace",
       "After an ideal stage (V drawn from the optimal channel P(V|U)) the residual U − V is "
       "Laplace(λ_{t+1}) with λ_{t+1} = λ_t·2^{R_t} (KS test at level 0.01, fixed seed)",
       "docs/theory.md §3 (constructive successive refinability)")
def _ideal() -> Check:
    from scipy import stats

    u = np.random.default_rng(0).laplace(scale=0.5, size=100_000)
    p = 1.0
    lam = 2.0
    for t, r in enumerate((0.7, 0.8)):
        st = ideal_refinement_stage(u, lam, r, seed=t + 1)
        p = min(p, stats.kstest(st.residual, stats.laplace(scale=1 / st.lam_next).cdf).pvalue)
        u, lam = st.residual, st.lam_next
    return Check(measured=p, tolerance=0.01, passed=p > 0.01, detail="smallest KS p-value over two stages")


@claim("refinement.rates_add_up",
       "Stage rates k_t/n add up to the total, and Σ_t log2(λ_{t+1}/λ_t) = R(D_L): no rate loss",
       "docs/theory.md §3")
def _rates() -> Check:
    worst = 0.0
    for n, rates in ((4, [0.5, 0.25, 0.25]), (12, [0.25] * 4), (7, [3 / 7, 1 / 7])):
        code = make_refinement_code(n, rates)
        lams = np.array(code.lams)
        r_dl = rate_laplace(code.distortions()[-1], code.lam, units="bits")
        worst = max(worst, abs(np.sum(np.log2(lams[1:] / lams[:-1])) - r_dl),
                    abs(sum(code.stage_rates()) - sum(code.index_bits) / n))
    return Check(measured=worst, tolerance=1e-12)


@claim("refinement.gap_shrinks_with_n",
       "Random-codebook successive refinement (2 stages, 1 bit/symbol) approaches D(R) as the block "
       "length grows: the distortion gap decreases over n = 2, 4, 8, 12 (3000 blocks, fixed seed)",
       "docs/theory.md §3; random coding argument")
def _gap() -> Check:
    gaps = []
    for n in (2, 4, 8, 12):
        s = measure_refinement(n, [0.5, 0.5], blocks=3000, seed=0, compare_single=False).stages[-1]
        gaps.append(s.distortion / s.rd_distortion - 1)
    worst = max(b - a for a, b in zip(gaps, gaps[1:]))
    return Check(measured=worst, tolerance=0.0, passed=worst < 0 and gaps[-1] > 0,
                 detail="largest increase of the relative gap between consecutive n; gaps " +
                        ", ".join(f"{g:.3f}" for g in gaps))


@claim("refinement.search.backends_agree",
       "The numba nearest-codeword search returns the NumPy reference's indices bitwise",
       "ratedist kernels convention")
def _agree() -> Check:
    rng = np.random.default_rng(4)
    book = rng.laplace(size=(512, 8)) * (rng.random((512, 8)) < 0.75)
    x = rng.laplace(size=(400, 8))
    i1, d1 = nearest_codeword(x, book, backend="numpy")
    i2, d2 = nearest_codeword(x, book, backend="numba")
    mism = int(np.count_nonzero(i1 != i2) + np.count_nonzero(d1 != d2))
    return Check(measured=mism, tolerance=0)

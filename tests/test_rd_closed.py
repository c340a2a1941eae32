"""Closed-form R(D) (docs/theory.md §1): monotone, convex, inverse pairs, units, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratedist.errors import InvalidArgumentError, RatedistError
from ratedist.rd import (
    distortion_bernoulli,
    distortion_gaussian,
    distortion_laplace,
    rate_bernoulli,
    rate_gaussian,
    rate_laplace,
)

EPS10 = 10 * np.finfo(float).eps  # identities between closed forms


@settings(max_examples=40, deadline=None)
@given(lam=st.floats(0.1, 10.0), var=st.floats(0.1, 10.0), p=st.floats(0.05, 0.5))
def test_nonincreasing_convex(lam, var, p):
    """R(D) is non-increasing and convex (docs/theory.md §1 check (a))."""
    for r, dmax in ((lambda d: rate_laplace(d, lam), 1 / lam), (lambda d: rate_gaussian(d, var), var),
                    (lambda d: rate_bernoulli(d, p), p)):
        d = np.linspace(dmax * 0.02, dmax * 1.5 if dmax < 0.5 else dmax * 0.99, 400)
        if dmax == p:
            d = np.linspace(p * 0.02, min(0.5, 1.5 * p), 400)
        v = r(d)
        assert np.all(np.diff(v) <= EPS10 * (1 + np.abs(v[:-1])))
        assert np.all(np.diff(v, 2) >= -1e-9)


@settings(max_examples=40, deadline=None)
@given(lam=st.floats(0.1, 10.0), frac=st.floats(0.01, 0.99))
def test_inverse_pairs(lam, frac):
    """D(R(D)) = D below D_max, in nats and in bits (docs/theory.md §1)."""
    d = frac / lam
    for units in ("nats", "bits"):
        assert math.isclose(distortion_laplace(rate_laplace(d, lam, units=units), lam, units=units), d, rel_tol=1e-12)
        assert math.isclose(distortion_gaussian(rate_gaussian(d, 1 / lam, units=units), 1 / lam, units=units), d,
                            rel_tol=1e-12)
    pb = 0.4
    db = frac * pb
    assert math.isclose(distortion_bernoulli(rate_bernoulli(db, pb), pb), db, rel_tol=1e-7)


@settings(max_examples=40, deadline=None)
@given(d=st.floats(0.01, 2.0))
def test_bits_are_nats_over_ln2(d):
    """bits = nats / ln 2 (units convention)."""
    for f in (rate_laplace, rate_gaussian):
        assert math.isclose(f(d, units="bits"), f(d) / math.log(2), rel_tol=1e-14, abs_tol=1e-300)


@pytest.mark.parametrize("call, name", [
    (lambda: rate_laplace(0.0), "distortion"),
    (lambda: rate_laplace(-1.0), "distortion"),
    (lambda: rate_laplace(float("nan")), "distortion"),
    (lambda: rate_laplace(0.5, -1.0), "lam"),
    (lambda: rate_gaussian(0.5, 0.0), "variance"),
    (lambda: rate_laplace(0.5, units="bytes"), "units"),
])
def test_bad_inputs(call, name):
    """Bad input raises a RatedistError that is a ValueError naming the argument (issue 2)."""
    with pytest.raises(InvalidArgumentError) as info:
        call()
    assert isinstance(info.value, RatedistError) and isinstance(info.value, ValueError)
    assert f"`{name}`" in str(info.value)

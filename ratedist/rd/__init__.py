"""Rate-distortion theory: closed forms, test channels, Shannon lower bound, Blahut–Arimoto."""

from .channel import (
    LaplaceFit,
    LaplaceReproductionLaw,
    differential_entropy_laplace,
    fit_laplace,
    laplace_reproduction_law,
    sample_laplace_test_channel,
    shannon_lower_bound,
)
from .closed import (
    binary_entropy,
    distortion_bernoulli,
    distortion_gaussian,
    distortion_laplace,
    rate_bernoulli,
    rate_gaussian,
    rate_laplace,
)

__all__ = [
    "LaplaceFit",
    "LaplaceReproductionLaw",
    "binary_entropy",
    "differential_entropy_laplace",
    "distortion_bernoulli",
    "distortion_gaussian",
    "distortion_laplace",
    "fit_laplace",
    "laplace_reproduction_law",
    "rate_bernoulli",
    "rate_gaussian",
    "rate_laplace",
    "sample_laplace_test_channel",
    "shannon_lower_bound",
]

"""Rate-distortion theory: closed forms, test channels, Shannon lower bound, Blahut–Arimoto."""

from .blahut_arimoto import (
    BAResult,
    blahut_arimoto,
    blahut_arimoto_grid,
    rate_at_distortion,
    rate_at_distortion_grid,
)
from .channel import (
    LaplaceFit,
    LaplaceReproductionLaw,
    differential_entropy_laplace,
    fit_laplace,
    laplace_reproduction_law,
    sample_laplace_test_channel,
    shannon_lower_bound,
)
from .discretize import (
    Discretization,
    discretize_empirical,
    discretize_gaussian,
    discretize_laplace,
    uniform_grid,
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
    "BAResult",
    "Discretization",
    "blahut_arimoto",
    "blahut_arimoto_grid",
    "discretize_empirical",
    "discretize_gaussian",
    "discretize_laplace",
    "rate_at_distortion",
    "rate_at_distortion_grid",
    "uniform_grid",
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
    "ModelRD",
    "model_rate_distortion",
    "model_bound_at",
    "pooled_rate_distortion",
]

from .model import ModelRD, model_bound_at, model_rate_distortion, pooled_rate_distortion  # noqa: E402

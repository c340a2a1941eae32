"""Rate-distortion theory: closed forms, test channels, Shannon lower bound, Blahut–Arimoto."""

from .._lazy import lazy_exports

_EXPORTS = {
    'BAResult': '.blahut_arimoto',
    'blahut_arimoto': '.blahut_arimoto',
    'blahut_arimoto_grid': '.blahut_arimoto',
    'rate_at_distortion': '.blahut_arimoto',
    'rate_at_distortion_grid': '.blahut_arimoto',
    'LaplaceFit': '.channel',
    'LaplaceReproductionLaw': '.channel',
    'differential_entropy_laplace': '.channel',
    'fit_laplace': '.channel',
    'laplace_reproduction_law': '.channel',
    'sample_laplace_test_channel': '.channel',
    'shannon_lower_bound': '.channel',
    'Discretization': '.discretize',
    'discretize_empirical': '.discretize',
    'discretize_gaussian': '.discretize',
    'discretize_laplace': '.discretize',
    'uniform_grid': '.discretize',
    'binary_entropy': '.closed',
    'distortion_bernoulli': '.closed',
    'distortion_gaussian': '.closed',
    'distortion_laplace': '.closed',
    'rate_bernoulli': '.closed',
    'rate_gaussian': '.closed',
    'rate_laplace': '.closed',
    'ModelRD': '.model',
    'model_bound_at': '.model',
    'model_rate_distortion': '.model',
    'pooled_rate_distortion': '.model',
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

# `blahut_arimoto` names both a submodule and its function: bind the function now, so that a later
# first import of the submodule (which sets the package attribute to the module) cannot shadow it.
from .blahut_arimoto import blahut_arimoto  # noqa: E402

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


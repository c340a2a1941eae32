"""ratedist: the information theory of neural-network compression.

Rate-distortion functions and Blahut–Arimoto (:mod:`ratedist.rd`), output-
perturbation bounds, successive-refinement codebooks, the SuRP codec, FedPM and
its baselines, pruning baselines, sparse training methods (:mod:`ratedist.sparse`),
and the claims ledger behind ``ratedist verify``.
Everything is computed in nats; information-valued functions take ``units="bits"``.
"""

from . import errors
from .errors import (
    BackendUnavailableError,
    ConvergenceWarning,
    CorruptStreamError,
    InvalidArgumentError,
    InvalidShapeError,
    RatedistError,
)
from ._lazy import lazy_exports

# Everything else is imported on first use (PEP 562), so that `ratedist --help` starts fast.
_EXPORTS = {
    'load_weights': '.io',
    'save_weights': '.io',
    'open_weights': '.io',
    'WeightsSource': '.io',
    'codable_weights': '.io',
    'measured_perturbation': '.bounds',
    'perturbation_bounds': '.bounds',
    'make_refinement_code': '.refinement',
    'measure_refinement': '.refinement',
    'SurpCheckpoint': '.surp',
    'SurpEncoding': '.surp',
    'SurpReport': '.surp',
    'BAResult': '.rd',
    'blahut_arimoto': '.rd',
    'blahut_arimoto_grid': '.rd',
    'discretize_empirical': '.rd',
    'discretize_gaussian': '.rd',
    'discretize_laplace': '.rd',
    'rate_at_distortion': '.rd',
    'rate_at_distortion_grid': '.rd',
    'binary_entropy': '.rd',
    'distortion_bernoulli': '.rd',
    'distortion_gaussian': '.rd',
    'distortion_laplace': '.rd',
    'fit_laplace': '.rd',
    'laplace_reproduction_law': '.rd',
    'rate_bernoulli': '.rd',
    'rate_gaussian': '.rd',
    'rate_laplace': '.rd',
    'sample_laplace_test_channel': '.rd',
    'shannon_lower_bound': '.rd',
    'ModelRD': '.rd',
    'model_bound_at': '.rd',
    'model_rate_distortion': '.rd',
    'pooled_rate_distortion': '.rd',
}
_SUBMODULES = ('bounds', 'refinement', 'pruning', 'sparse', 'dwnp', 'compressors', 'fedpm', 'surp', 'quant',)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, _SUBMODULES)

__version__ = "0.1.0"

__all__ = [
    "errors",
    "pruning",
    "sparse",
    "dwnp",
    "compressors",
    "fedpm",
    "surp",
    "quant",
    "SurpCheckpoint",
    "SurpEncoding",
    "SurpReport",
    "BackendUnavailableError",
    "ConvergenceWarning",
    "CorruptStreamError",
    "InvalidArgumentError",
    "InvalidShapeError",
    "RatedistError",
    "load_weights",
    "save_weights",
    "open_weights",
    "WeightsSource",
    "codable_weights",
    "bounds",
    "refinement",
    "measured_perturbation",
    "perturbation_bounds",
    "make_refinement_code",
    "measure_refinement",
    "BAResult",
    "blahut_arimoto",
    "blahut_arimoto_grid",
    "discretize_empirical",
    "discretize_gaussian",
    "discretize_laplace",
    "rate_at_distortion",
    "rate_at_distortion_grid",
    "binary_entropy",
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
    "model_bound_at",
    "model_rate_distortion",
    "pooled_rate_distortion",
]

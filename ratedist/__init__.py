"""ratedist: the information theory of neural-network compression.

Rate-distortion functions and Blahut–Arimoto (:mod:`ratedist.rd`), output-
perturbation bounds, successive-refinement codebooks, the SuRP codec, FedPM and
its baselines, pruning baselines, and the claims ledger behind ``ratedist verify``.
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
from .io import WeightsSource, load_weights, open_weights, save_weights
from . import bounds, refinement
from .bounds import measured_perturbation, perturbation_bounds
from .refinement import make_refinement_code, measure_refinement
from . import pruning
from . import compressors, fedpm
from . import surp
from . import quant
from .surp import SurpCheckpoint, SurpEncoding, SurpReport
from .rd import (
    BAResult,
    blahut_arimoto,
    blahut_arimoto_grid,
    discretize_empirical,
    discretize_gaussian,
    discretize_laplace,
    rate_at_distortion,
    rate_at_distortion_grid,
    binary_entropy,
    distortion_bernoulli,
    distortion_gaussian,
    distortion_laplace,
    fit_laplace,
    laplace_reproduction_law,
    rate_bernoulli,
    rate_gaussian,
    rate_laplace,
    sample_laplace_test_channel,
    shannon_lower_bound,
    ModelRD,
    model_bound_at,
    model_rate_distortion,
    pooled_rate_distortion,
)

__version__ = "0.1.0"

__all__ = [
    "errors",
    "pruning",
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

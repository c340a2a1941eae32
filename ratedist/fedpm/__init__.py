"""FedPM: Bernoulli masks, the mean estimator, Beta aggregation, measured bit rates, privacy.

Isik, Pase, Gündüz, Weissman, Zorzi, *Sparse random networks for
communication-efficient federated learning*, ICLR 2023 (docs/theory.md §5).

Examples
--------
>>> import numpy as np
>>> theta = np.full((10, 1000), 0.3)
>>> masks = sample_masks(theta, seed=0)
>>> theta_hat = mean_estimate(masks)
>>> estimator_error(theta) <= error_bound(1000, 10)
True
"""

from .aggregation import REFERENCE_HIGH, REFERENCE_LOW, BetaAggregator, ResetPolicy, logit_safe
from .bitrate import (
    P_MIN,
    MaskCode,
    bitrate_paper,
    bitrate_per_coordinate,
    bpp_paper_formula,
    decode_mask_paper,
    decode_mask_per_coordinate,
)
from .estimator import error_bound, estimator_error, mean_estimate
from .masks import mask_counts, sample_masks
from .privacy import clip_for_ldp, ldp_epsilon
from .seeds import STREAM_LOCAL, STREAM_UPLINK, client_seed

__all__ = [
    "BetaAggregator",
    "ResetPolicy",
    "client_seed",
    "STREAM_LOCAL",
    "STREAM_UPLINK",
    "logit_safe",
    "REFERENCE_LOW",
    "REFERENCE_HIGH",
    "MaskCode",
    "bitrate_paper",
    "bitrate_per_coordinate",
    "bpp_paper_formula",
    "decode_mask_paper",
    "decode_mask_per_coordinate",
    "P_MIN",
    "mean_estimate",
    "estimator_error",
    "error_bound",
    "sample_masks",
    "mask_counts",
    "ldp_epsilon",
    "clip_for_ldp",
]

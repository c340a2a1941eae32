"""What defines a sequential SuRP run, shared by the encoder, the stream writer and reader and the
slow reference: its parameters (all stored in the stream header), its trace, and its limits."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .._validation import check_int, check_positive
from ..errors import InvalidArgumentError

__all__ = ["SequentialParams", "SequentialTrace", "sequential_params", "max_iterations_for", "MAX_RETRIES",
           "stride_tables"]

MAX_RETRIES = 1_000_000


@dataclass(frozen=True)
class SequentialParams:
    """The numbers that define a sequential SuRP run (all stored in the stream header)."""

    n: int
    n_active: int
    sf: float
    decay: float
    alpha: float
    alpha_eff0: float
    lam_inv0: float
    s0: float
    refresh_every: int
    refresh_factor: float
    seed: int

    def to_header(self) -> dict:
        return {"n_active": self.n_active, "sf": self.sf, "decay": self.decay, "alpha": self.alpha,
                "alpha_eff0": self.alpha_eff0, "lam_inv0": self.lam_inv0, "s0": self.s0,
                "refresh_every": self.refresh_every, "refresh_factor": self.refresh_factor}


@dataclass
class SequentialTrace:
    """Everything a sequential run produced: per iteration j_t, m_t, |E_t|, τ_t, new?; refresh events."""

    j: np.ndarray
    m: np.ndarray
    esize: np.ndarray
    tau: np.ndarray
    new: np.ndarray
    ev_t: np.ndarray
    ev_c: np.ndarray
    checkpoints: list  # (iteration, nnz, S) per reached target
    status: str
    residual: np.ndarray | None = None
    ahat: np.ndarray | None = None
    final: tuple = ()
    snapshots: list = field(default_factory=list)


def sequential_params(a: np.ndarray, *, alpha=None, refresh_every=20, refresh_factor=0.9, seed=0) -> SequentialParams:
    """Derive sf, decay, α_eff, lam_inv₀ and S₀ from the magnitudes ``a`` (docs/theory.md §4b.3)."""
    n = int(a.size)
    nn = max(n, 3)
    sf = math.log(nn / math.log(nn))
    alpha = sf if alpha is None else check_positive("alpha", alpha)
    refresh_every = check_int("refresh_every", refresh_every, minimum=1)
    refresh_factor = check_positive("refresh_factor", refresh_factor)
    if not refresh_factor < 1:
        raise InvalidArgumentError(f"`refresh_factor` must lie in (0, 1), got {refresh_factor!r}.")
    n_active = int(np.count_nonzero(a))
    s0 = float(np.sum(a))
    alpha_eff0 = alpha / sf
    lam_inv0 = alpha_eff0 * (s0 / max(n_active, 1))
    decay = (n - 1) / n
    return SequentialParams(n=n, n_active=max(n_active, 1), sf=sf, decay=decay, alpha=float(alpha),
                            alpha_eff0=alpha_eff0, lam_inv0=lam_inv0, s0=s0, refresh_every=refresh_every,
                            refresh_factor=refresh_factor, seed=int(seed))


def max_iterations_for(n: int) -> int:
    """Default (and decoder-side) cap on the number of iterations: 64 n + 2**20."""
    return 64 * int(n) + (1 << 20)


def stride_tables(perms):
    """Stride table and inverses, computed in numba (same values as ``perms.stride_arrays()``)."""
    from ..kernels import _surp_cpu as K

    a = np.empty(K.N_STRIDES, dtype=np.int64)
    inv = np.empty(K.N_STRIDES, dtype=np.int64)
    K.stride_table(np.uint64(perms.base), perms.prime, a, inv)
    return a, inv

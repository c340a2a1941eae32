"""``ratedist rd ba``: Blahut–Arimoto on a discretized Laplace or Gaussian source."""

from __future__ import annotations

from ..errors import InvalidArgumentError

__all__ = ["add_parser", "run_ba"]

MAX_ITER = 10_000_000  # each iteration is a pass over the grid (two FFT convolutions): more would run for hours


def add_parser(rsub) -> None:
    """Add the ``ba`` sub-verb to the ``rd`` sub-parsers ``rsub``."""
    from ._common import add_json_flag

    b = rsub.add_parser("ba", help="Blahut-Arimoto on a discretized source, with a certified gap")
    b.add_argument("--source", required=True, choices=["laplace", "gaussian"],
                   help="laplace (absolute error) or gaussian (squared error)")
    b.add_argument("--lam", type=float, help="Laplace rate parameter λ")
    b.add_argument("--variance", type=float, help="Gaussian variance σ²")
    g = b.add_mutually_exclusive_group(required=True)
    g.add_argument("--slope", type=float, help="slope s < 0 (units per unit distortion)")
    g.add_argument("--distortion", type=float, help="target distortion D (finds the slope)")
    b.add_argument("--grid", type=int, default=2049,
                   help="number of grid points on [-15/λ, 15/λ] or [-8σ, 8σ] (default 2049, made odd)")
    b.add_argument("--tol", type=float, default=1e-6, help="certificate gap R - R_L to reach, in --units")
    b.add_argument("--max-iter", type=int, default=100_000,
                   help=f"maximum BA iterations in all, 1..{MAX_ITER} (with --distortion: over the whole slope search)")
    b.add_argument("--units", default="nats", choices=["nats", "bits"])
    add_json_flag(b)
    b.set_defaults(func=run_ba)


def _check_grid(name, value, half, k):
    import math

    if not (math.isfinite(half) and half / k > 0 and math.isfinite(k / half)):
        raise InvalidArgumentError(f"`{name}` {value!r} is too extreme: its grid (half-width {half:.3g}, {2 * k + 1} "
                                   "points) cannot be represented in float64; rescale the source.")


def run_ba(args):
    import warnings

    from .. import rd
    from .._validation import check_int, check_positive
    from ..errors import ConvergenceWarning

    from .._validation import check_finite_scalar

    m = check_int("--grid", args.grid, minimum=3, maximum=5_000_001)
    tol = check_positive("--tol", args.tol)
    max_iter = check_int("--max-iter", args.max_iter, minimum=1, maximum=MAX_ITER)
    if args.slope is not None:
        slope = check_finite_scalar("--slope", args.slope)
        if slope >= 0:
            raise InvalidArgumentError(f"`--slope` must be < 0 (R(D) is traced by negative slopes), got {args.slope!r}.")
    else:
        target = check_positive("--distortion", args.distortion)
    k = m // 2
    if args.source == "laplace":
        if args.lam is None:
            raise InvalidArgumentError("`--lam` is required with `--source laplace`.")
        if args.variance is not None:
            raise InvalidArgumentError("`--variance` does not apply to `--source laplace`; give `--lam`.")
        lam = check_positive("--lam", args.lam)
        half = 15.0 / lam
        _check_grid("--lam", args.lam, half, k)
        grid = rd.discretize_laplace(lam, half / k, half)
        kind = "absolute"
    else:
        if args.variance is None:
            raise InvalidArgumentError("`--variance` is required with `--source gaussian`.")
        if args.lam is not None:
            raise InvalidArgumentError("`--lam` does not apply to `--source gaussian`; give `--variance`.")
        var = check_positive("--variance", args.variance)
        half = 8.0 * var ** 0.5
        _check_grid("--variance", args.variance, half, k)
        grid = rd.discretize_gaussian(var, half / k, half)
        kind = "squared"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        if args.slope is not None:
            res = rd.blahut_arimoto_grid(grid.points, grid.pmf, slope, distortion_type=kind,
                                         tol=tol, max_iter=max_iter, units=args.units)
        else:
            res = rd.rate_at_distortion_grid(grid.points, grid.pmf, target, distortion_type=kind,
                                             tol=tol, max_iter=max_iter, max_total_iter=max_iter, units=args.units)
    payload = res.to_dict()
    text = (f"{args.source} on {grid.size} points (Δ = {grid.step:.4g}): R = {res.rate:.6g} {res.units} "
            f"(certified ≥ {res.rate_lower:.6g}) at D = {res.distortion:.6g}, slope {res.slope:.6g}, "
            f"{res.iterations} iterations, converged={res.converged}")
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            text += f"\nwarning: {w.message}"
    return payload, text

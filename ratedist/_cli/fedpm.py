"""``ratedist fedpm estimate``: FedPM's mean estimator, its exact error and bound, measured bits."""

from __future__ import annotations


THETA_DISTS = ("uniform", "beta", "half")


def add_parser(sub) -> None:
    from ._common import add_json_flag

    p = sub.add_parser("fedpm", help="FedPM: mask mean estimation, error formula, measured bit rates")
    fsub = p.add_subparsers(dest="fedpm_verb", metavar="{estimate}")
    fsub.required = True
    e = fsub.add_parser("estimate", help="one round: sample masks, estimate the mean, code the masks")
    e.add_argument("--dim", type=int, required=True, help="mask entries per client d")
    e.add_argument("--clients", type=int, required=True, help="number of clients K")
    e.add_argument("--seed", type=int, default=0, help="seed, 0..2^63-1")
    e.add_argument("--theta-dist", default="uniform", choices=THETA_DISTS,
                   help="clients' θ: uniform U[0,1], beta Beta(0.5,0.5) (near 0/1), half (all ½: the bound's equality case)")
    add_json_flag(e)
    e.set_defaults(func=run_estimate)


def draw_theta(dist: str, k: int, d: int, seed: int):
    import numpy as np

    rng = np.random.default_rng([seed, 99])
    if dist == "uniform":
        return rng.random((k, d))
    if dist == "beta":
        return rng.beta(0.5, 0.5, (k, d))
    return np.full((k, d), 0.5)


def run_estimate(args):
    import numpy as np

    from .._validation import check_int
    from ..fedpm import bitrate_paper, error_bound, estimator_error, mean_estimate, sample_masks

    from ._common import check_seed

    d = check_int("--dim", args.dim, minimum=1, maximum=1 << 26)
    k = check_int("--clients", args.clients, minimum=1, maximum=10_000)
    seed = check_seed("--seed", args.seed)
    if k * d > 1 << 28:
        from ..errors import InvalidArgumentError

        raise InvalidArgumentError(f"`--dim` × `--clients` = {k * d} exceeds 2^28 (θ and the masks are held in "
                                   "memory as K×d arrays); use the library's mask_counts for larger runs.")
    theta = draw_theta(args.theta_dist, k, d, seed)
    masks = sample_masks(theta, seed=seed)
    est = mean_estimate(masks)
    codes = [bitrate_paper(masks[i]) for i in range(k)]
    payload = {
        "mse": float(np.sum((est - theta.mean(0)) ** 2)),
        "error_exact": estimator_error(theta),
        "bound": error_bound(d, k),
        "bpp_measured": float(np.mean([c.bpp for c in codes])),
        "bpp_paper": float(np.mean([c.bpp_formula for c in codes])),
        "n_bits_total": int(sum(c.n_bits for c in codes)),
        "dim": d, "clients": k, "seed": seed, "theta_dist": args.theta_dist, "units": "bits",
    }
    text = (f"FedPM, K={k}, d={d}, θ~{args.theta_dist}: ‖θ̂−θ̄‖² = {payload['mse']:.6g} "
            f"(exact expectation {payload['error_exact']:.6g}, bound d/(4K) = {payload['bound']:.6g}); "
            f"bits per entry measured {payload['bpp_measured']:.5f} vs paper formula {payload['bpp_paper']:.5f}")
    return payload, text

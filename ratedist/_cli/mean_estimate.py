"""``ratedist mean-estimate``: distributed mean estimation with one method, bits measured from bytes."""

from __future__ import annotations


METHODS = ("fedpm", "qsgd", "drive", "eden", "fedmask")


def add_parser(sub) -> None:
    from ._common import add_json_flag

    p = sub.add_parser("mean-estimate", help="mean estimation over K clients with FedPM/QSGD/DRIVE/EDEN/FedMask")
    p.add_argument("--method", required=True, choices=METHODS)
    p.add_argument("--dim", type=int, required=True, help="coordinates d per client")
    p.add_argument("--clients", type=int, required=True, help="number of clients K")
    p.add_argument("--bits", type=float, default=None,
                   help="eden: bits per coordinate b (default 1); qsgd: s = 2^B − 1 levels (default s = 1)")
    p.add_argument("--scale", default="unbiased", choices=["unbiased", "mse"], help="drive's scale")
    p.add_argument("--seed", type=int, default=0, help="seed, 0..2^63-1")
    add_json_flag(p)
    p.set_defaults(func=run)


def method_params(method: str, bits):
    from ..errors import InvalidArgumentError

    if bits is not None and method not in ("eden", "qsgd"):
        raise InvalidArgumentError(f"`--bits` applies to eden and qsgd, not {method!r}.")
    if bits is not None:
        from .._validation import check_finite_scalar

        bits = check_finite_scalar("--bits", bits)
    if method == "eden":
        from ..compressors.eden import MAX_BITS

        if bits is not None and not 0.0 < bits <= MAX_BITS:
            raise InvalidArgumentError(f"`--bits` for eden must lie in (0, {MAX_BITS}] bits per coordinate, got "
                                       f"{bits!r}.")
        return {"bits": 1.0 if bits is None else bits}
    if method == "qsgd":
        if bits is None:
            return {"s": 1}
        if not (1 <= bits <= 30 and float(bits).is_integer()):
            raise InvalidArgumentError(f"`--bits` for qsgd must be an integer in 1..30 (s = 2^B − 1 levels), got "
                                       f"{bits!r}.")
        return {"s": (1 << int(bits)) - 1}
    return {}


def run(args):
    import numpy as np

    from .._validation import check_int
    from ..compressors import estimate_mean, get_compressor
    from ..errors import InvalidArgumentError

    from ._common import check_seed

    d = check_int("--dim", args.dim, minimum=1, maximum=1 << 24)
    k = check_int("--clients", args.clients, minimum=1, maximum=10_000)
    seed = check_seed("--seed", args.seed)
    if k * d > 1 << 26:
        raise InvalidArgumentError(f"`--dim` × `--clients` = {k * d} exceeds 2^26 (the K×d client vectors are held "
                                   "in memory); use the library for larger runs.")
    params = method_params(args.method, args.bits)
    if args.method == "drive":
        params["scale"] = args.scale
    rng = np.random.default_rng([seed, 7])
    unit = args.method in ("fedpm", "fedmask")
    xs = rng.random((k, d)) if unit else rng.standard_normal((k, d))
    r = estimate_mean(get_compressor(args.method, **params), xs, seed=seed)
    payload = {"method": args.method, "nmse": r.nmse, "bpp": r.bpp, "bias": r.bias, "n_bits": r.n_bits,
               "params": params, "dim": d, "clients": k, "seed": seed,
               "source": "uniform[0,1] probabilities" if unit else "standard Gaussian", "units": "bits"}
    text = (f"{args.method} {params}: NMSE {r.nmse:.5g}, bias along the mean {r.bias:+.3g}, "
            f"{r.bpp:.5f} bits per coordinate measured ({r.n_bits} bits for K={k}, d={d})")
    return payload, text

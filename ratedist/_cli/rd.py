"""``ratedist rd closed|ba``: rate-distortion functions from the command line."""

from __future__ import annotations

from ..errors import InvalidArgumentError


def add_parser(sub) -> None:
    from ._common import add_json_flag

    p = sub.add_parser("rd", help="rate-distortion functions (closed forms, Blahut-Arimoto)")
    rsub = p.add_subparsers(dest="rd_verb", metavar="{closed,ba}")
    rsub.required = True

    c = rsub.add_parser("closed", help="closed-form R(D) or D(R)")
    c.add_argument("--source", required=True, choices=["laplace", "gaussian", "bernoulli"])
    c.add_argument("--lam", type=float, help="Laplace rate parameter λ")
    c.add_argument("--variance", type=float, help="Gaussian variance σ²")
    c.add_argument("--p", type=float, help="Bernoulli parameter p")
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("--distortion", type=float, help="distortion D (gives R(D))")
    g.add_argument("--rate", type=float, help="rate R in --units (gives D(R))")
    c.add_argument("--units", default="nats", choices=["nats", "bits"])
    add_json_flag(c)
    c.set_defaults(func=run_closed)

    from . import rd_ba

    rd_ba.add_parser(rsub)


def _param(args):
    from .._validation import check_open_unit, check_positive

    need = {"laplace": "lam", "gaussian": "variance", "bernoulli": "p"}[args.source]
    value = getattr(args, need)
    if value is None:
        raise InvalidArgumentError(f"`--{need}` is required with `--source {args.source}`.")
    for other in ("lam", "variance", "p"):
        if other != need and getattr(args, other) is not None:
            raise InvalidArgumentError(f"`--{other}` does not apply to `--source {args.source}`; give `--{need}`.")
    if need == "p":
        return check_open_unit("--p", value)
    return check_positive(f"--{need}", value)


def run_closed(args):
    from .. import rd

    from .._validation import check_nonnegative, check_positive

    value = _param(args)
    if args.distortion is not None:
        check = check_nonnegative if args.source == "bernoulli" else check_positive
        args.distortion = check("--distortion", args.distortion)
    else:
        args.rate = check_nonnegative("--rate", args.rate)
    fns = {
        "laplace": (rd.rate_laplace, rd.distortion_laplace),
        "gaussian": (rd.rate_gaussian, rd.distortion_gaussian),
        "bernoulli": (rd.rate_bernoulli, rd.distortion_bernoulli),
    }[args.source]
    if args.distortion is not None:
        rate, distortion = fns[0](args.distortion, value, units=args.units), args.distortion
    else:
        rate, distortion = args.rate, fns[1](args.rate, value, units=args.units)
    payload = {"source": args.source, "rate": rate, "distortion": distortion, "units": args.units}
    return payload, f"{args.source}: R = {rate:.6g} {args.units} at D = {distortion:.6g}"

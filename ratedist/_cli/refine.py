"""``ratedist refine``: measure successive-refinement random codebooks against R(D) (docs/theory.md §3)."""

from __future__ import annotations

__all__ = ["add_parser", "run"]

# n·R ≤ 24·8 index bits in all; each stage's codebook (2^(n·R/L) codewords) is also capped by the library.
MAX_RATE = 8.0
# The source blocks, their reconstructions and indices are held in memory (about 8·(2n + L) bytes per block).
MAX_BLOCKS = 10_000_000


def add_parser(sub) -> None:
    from ._common import add_json_flag

    p = sub.add_parser(
        "refine",
        help="successive-refinement random codebooks on a Laplacian source vs R(D)",
        description="Code i.i.d. Laplace blocks with L stages of random codebooks at a total rate R "
                    "(split evenly, in bits/symbol) and compare with one stage at the same rate.",
    )
    p.add_argument("--block", type=int, required=True, help="block length n (1..24)")
    p.add_argument("--stages", type=int, required=True, help="number of stages L (1..64)")
    p.add_argument("--rate", type=float, required=True,
                   help=f"total rate R in bits per symbol, 0..{MAX_RATE:g} (a stage's codebook has 2^(n·R/L) entries)")
    p.add_argument("--blocks", type=int, default=2000, help=f"number of source blocks, 1..{MAX_BLOCKS}")
    p.add_argument("--seed", type=int, default=0, help="seed, 0..2^63-1")
    p.add_argument("--lam", type=float, default=1.0, help="Laplace rate parameter λ > 0 of the source")
    p.add_argument("--backend", default="auto", choices=["auto", "numpy", "numba", "cuda"])
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args):
    from ..refinement import measure_refinement, split_rate

    from .._validation import check_int, check_nonnegative, check_positive
    from ..errors import InvalidArgumentError
    from ._common import check_seed

    block = check_int("--block", args.block, minimum=1, maximum=24)
    stages = check_int("--stages", args.stages, minimum=1, maximum=64)
    rate = check_nonnegative("--rate", args.rate)
    if rate > MAX_RATE:
        raise InvalidArgumentError(f"`--rate` must be at most {MAX_RATE:g} bits per symbol (random codebooks have "
                                   f"2^(n·R/L) entries), got {args.rate!r}.")
    blocks = check_int("--blocks", args.blocks, minimum=1, maximum=MAX_BLOCKS)
    seed = check_seed("--seed", args.seed)
    lam = check_positive("--lam", args.lam)
    rates = split_rate(block, rate, stages)
    rep = measure_refinement(block, rates, blocks=blocks, lam=lam, seed=seed, backend=args.backend)
    one = rep.single_stage
    payload = {
        "stages": [{"rate": s.rate, "cumulative_rate": s.cumulative_rate, "measured_rate": s.measured_rate,
                    "distortion": s.distortion, "rd_distortion": s.rd_distortion} for s in rep.stages],
        "single_stage": {"rate": one.rate, "distortion": None if one.skipped else one.distortion,
                         "rd_distortion": one.rd_distortion, "evaluations": one.evaluations,
                         **({"skipped": one.skipped} if one.skipped else {})},
        "evaluations": rep.evaluations,
        "block": rep.block, "blocks": rep.n_blocks, "seed": rep.seed, "stream_bytes": rep.stream_bytes,
        "units": "bits",
    }
    lines = [f"n = {rep.block}, {rep.n_blocks} blocks, Laplace(λ={rep.lam:g}), seed {rep.seed}",
             "stage  rate  cum.rate  measured  distortion  D(R)"]
    for t, s in enumerate(rep.stages, 1):
        lines.append(f"{t:>5}  {s.rate:.3f}  {s.cumulative_rate:.3f}     {s.measured_rate:.3f}     "
                     f"{s.distortion:.4f}     {s.rd_distortion:.4f}")
    lines.append(f"evaluations per block: {rep.evaluations} ({rep.stages and len(rep.stages)} stages) vs "
                 f"{one.evaluations} (one stage)")
    lines.append(f"one stage at {one.rate:.3f} bits: " + (f"distortion {one.distortion:.4f}" if not one.skipped
                                                            else f"skipped: {one.skipped}"))
    return payload, "\n".join(lines)

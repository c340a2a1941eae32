"""``ratedist repro surp|fedpm|sparse|dwnp [--quick] [--seeds N] --out DIR``: reproduce a published table.

Loads ``paper_repro/<name>_table.py`` and runs it: the table is computed on scikit-learn's
digits with PyTorch on the CPU (the ``torch`` extra), written to ``DIR`` as ``<name>.json``,
``<name>.md``, ``<name>.png``/``.pdf`` and ``<name>.manifest.json``, and printed beside the
published numbers of ``paper_repro/expected/<name>.json``.
"""

from __future__ import annotations

from ..errors import BackendUnavailableError, InvalidArgumentError

__all__ = ["add_parser", "run", "TABLES"]

TABLES = ("surp", "fedpm", "sparse", "dwnp")
MAX_SEEDS = 100  # each seed trains every network of the table again (minutes each) and keeps its results


def add_parser(sub) -> None:
    from ._common import add_json_flag

    p = sub.add_parser("repro", help="reproduce a published table in miniature on real data (surp, fedpm, sparse, dwnp)",
                       description=__doc__.splitlines()[0])
    p.add_argument("table", choices=TABLES, help="which table: surp (SuRP vs pruning), fedpm (FedPM vs baselines), sparse (sparse training methods) or dwnp (device-wise channel pruning)")
    p.add_argument("--quick", action="store_true", help="smoke-test configuration (1 seed, few rounds; < 1 min)")
    p.add_argument("--seeds", type=int, default=None,
                   help=f"number of seeds 0..N-1, 1..{MAX_SEEDS} (default: 3 full, 1 quick)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--engine", choices=("inprocess", "flower"), default="inprocess",
                   help="fedpm only: run the federated loop in this process or on Flower's simulation engine")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args):
    from ..scripts import load_script, repo_root

    if args.table not in TABLES:
        raise InvalidArgumentError(f"`table` must be one of {', '.join(TABLES)}; got {args.table!r}.")
    from .._validation import check_int
    from ._common import check_output_dir

    seeds = None if args.seeds is None else check_int("--seeds", args.seeds, minimum=1, maximum=MAX_SEEDS)
    out = check_output_dir(args.out)
    path = repo_root() / "paper_repro" / f"{args.table}_table.py"
    if not path.exists():
        raise InvalidArgumentError(
            f"`table` {args.table!r}: {path} is missing; reinstall ratedist (the wheel carries "
            "paper_repro/ inside the package)."
        )
    try:
        import torch  # noqa: F401
    except ImportError:
        raise BackendUnavailableError(
            "`ratedist repro` trains networks with PyTorch: install the `torch` extra (pip install 'ratedist[torch]')."
        ) from None
    engine = getattr(args, "engine", "inprocess")
    if engine != "inprocess" and args.table != "fedpm":
        raise InvalidArgumentError(f"`--engine` {engine!r} applies to the fedpm table only; drop it for {args.table!r}.")
    mod = load_script(path)
    extra = {"engine": engine} if args.table == "fedpm" else {}
    return mod.run(quick=args.quick, seeds=seeds, out=str(out), **extra)

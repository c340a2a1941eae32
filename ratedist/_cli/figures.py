"""``ratedist figures [--quick] --out DIR``: run every script in ``figures/``."""

from __future__ import annotations

from ..errors import InvalidArgumentError


def add_parser(sub) -> None:
    from ._common import add_json_flag

    p = sub.add_parser("figures", help="regenerate every figure in figures/")
    p.add_argument("--quick", action="store_true", help="small, fast configurations")
    p.add_argument("--out", default="figures/out", help="output folder (default figures/out)")
    p.add_argument("--only", default=None, help="run only scripts whose name contains this text")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args):
    from ..scripts import figure_scripts, load_script

    from ._common import check_output_dir

    out = check_output_dir(args.out)
    scripts = [s for s in figure_scripts() if not args.only or args.only in s.stem]
    if not scripts:
        raise InvalidArgumentError(f"no figure script matches `--only` {args.only!r}.")
    done = []
    for path in scripts:
        mod = load_script(path)
        argv = ["--out", str(out)] + (["--quick"] if args.quick else [])
        done.append(mod.main(argv))
    lines = [f"{d['name']:<22} {d['seconds']:6.1f} s  {d['files'][1]}" for d in done]
    return {"out": args.out, "figures": done}, "\n".join(lines)

"""``ratedist verify``: run the claims ledger; exit 0 only when every claim passes."""

from __future__ import annotations


def add_parser(sub) -> None:
    from ._common import add_json_flag

    p = sub.add_parser("verify", help="check the theory's claims numerically (the claims ledger)")
    p.add_argument("--select", default=None, help="run only claims whose id contains this text")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args):
    from ..verify import run_claims

    results = run_claims(args.select)
    passed = all(r.passed for r in results) and bool(results)
    payload = {
        "passed": passed,
        "claims": [
            {k: v for k, v in r.to_dict().items() if k in ("id", "statement", "source", "passed", "measured", "tolerance", "detail")}
            for r in results
        ],
        "_exit_code": 0 if passed else 1,
    }
    width = max((len(r.id) for r in results), default=10)
    lines = [f"{'claim':<{width}}  ok    measured     tolerance"]
    for r in results:
        lines.append(f"{r.id:<{width}}  {'PASS' if r.passed else 'FAIL'}  {r.measured:<11.4g}  {r.tolerance:.3g}")
        if not r.passed and r.detail:
            lines.append("    " + r.detail.splitlines()[0])
    lines.append(f"{sum(r.passed for r in results)}/{len(results)} claims pass")
    return payload, "\n".join(lines)

"""``make demo``: the main job on the embedded default, with a short summary.

Each step is a function returning a one-paragraph summary; later parts of
ratedist add steps to ``STEPS``.
"""

from __future__ import annotations

import sys
import time

__all__ = ["main", "STEPS"]


def step_verify() -> tuple[bool, str]:
    from .verify import run_claims

    results = run_claims()
    failed = [r.id for r in results if not r.passed]
    ok = not failed
    text = f"ratedist verify: {len(results) - len(failed)}/{len(results)} claims of the theory pass"
    if failed:
        text += " (FAILED: " + ", ".join(failed) + ")"
    return ok, text


def step_figures(out: str = "figures/out") -> tuple[bool, str]:
    from .cli import main as cli_main

    code = cli_main(["figures", "--quick", "--out", out])
    return code == 0, f"figures regenerated (quick mode) in {out}/ as .png, .pdf and .json"


def step_repro() -> tuple[bool, str]:
    """Point to the table reproductions (too slow for the demo: run them with ``ratedist repro``)."""
    import json

    from .scripts import repo_root

    exp = repo_root() / "paper_repro" / "expected"
    try:
        n = {name: json.loads((exp / f"{name}.json").read_text(encoding="utf-8")) for name in ("surp", "fedpm")}
    except (OSError, ValueError) as exc:
        return False, f"published tables unreadable in {exp}: {exc}"
    return True, ("published tables (SuRP vs pruning: " + ", ".join(n["surp"]["tables"]) + "; FedPM vs DRIVE/EDEN/"
                  "QSGD/FedMask) are in paper_repro/expected/; reproduce them in miniature on digits with "
                  "`ratedist repro surp --quick --out out/repro` (and `fedpm`; about a minute each, drop "
                  "--quick for the full tables)")


def step_surp() -> tuple[bool, str]:
    return _surp_demo()


def _surp_demo() -> tuple[bool, str]:
    """``make demo`` step: encode the embedded default model at two sparsities, decode both prefixes,
    check them against the encoder bit for bit, print the report table; returns (ok, summary)."""
    import numpy as np

    from .data import default_model, digits_split, mlp_accuracy
    from .surp import decode, encode, format_report

    w = default_model()
    enc = encode(w, [0.9, 0.7], seed=0, keep_reconstructions=True)
    print(format_report(enc.report))
    _, X_test, _, y_test = digits_split()
    ok = True
    accs = []
    for k, cp in enumerate(enc.report.checkpoints):
        dec = decode(enc.stream[:cp.n_bytes], checkpoint=k)
        same = all(dec[name].tobytes() == enc.reconstructions[k][name].tobytes() for name in w)
        shrink = all(np.all(np.abs(dec[n_]) <= np.abs(w[n_])) for n_ in w)
        ok &= same and shrink
        accs.append(mlp_accuracy(dec, X_test, y_test))
        print(f"checkpoint {k}: first {cp.n_bytes} bytes decode bit-exactly: {same}; |ŵ| ≤ |w|: {shrink}; "
              f"test accuracy {accs[-1]:.3f}")
    base = mlp_accuracy(w, X_test, y_test)
    c0, c1 = enc.report.checkpoints
    text = (f"SuRP: default model ({enc.report.n_params} weights) in one {len(enc.stream)}-byte stream; "
            f"{c0.sparsity:.0%} sparse prefix {c0.bpp:.3f} bits/param (acc {accs[0]:.3f}), {c1.sparsity:.0%} sparse "
            f"{c1.bpp:.3f} bits/param (acc {accs[1]:.3f}), dense acc {base:.3f}; bit-exact decode: {ok}")
    return bool(ok), text


def step_frontier(out: str = "out/frontier") -> tuple[bool, str]:
    """The embedded model's frontier: its rate–distortion bound and every coder, with test accuracy."""
    from pathlib import Path

    from ._cli.frontier import write_frontier
    from .data import default_model, digits_split, mlp_accuracy
    from .frontier import frontier

    w = default_model()
    _, X_test, _, y_test = digits_split()
    # the fixed-rate trellis is left out to keep the demo short (`ratedist frontier` runs it)
    res = frontier(w, methods=("surp", "surp_parallel", "magnitude", "lamp", "scalar", "tcq"), rates=(1.0, 2.0),
                   sparsities=(0.9, 0.7), value_bits=(4,), evaluate=lambda dec: mlp_accuracy(dec, X_test, y_test))
    paths = write_frontier(res, Path(out))
    from .rd.model import model_bound_at

    print(f"{'method':<14} {'bpp':>7} {'d(u,û)':>10} {'bound':>7} {'acc':>6}")
    for p in sorted(res.points, key=lambda p: (p.method, p.bpp)):
        lo, _hi = model_bound_at(res.bound, p.distortion)
        print(f"{p.method:<14} {p.bpp:7.3f} {p.distortion:10.3e} {lo:7.3f} {p.accuracy:6.3f}")
    best = {}
    for p in res.points:
        if p.bpp <= 2.0 and (p.method not in best or p.distortion < best[p.method].distortion):
            best[p.method] = p
    line = ", ".join(f"{m} d={q.distortion:.2e} (acc {q.accuracy:.3f})" for m, q in sorted(best.items()))
    ok = not res.errors and all(p.n_bits > 0 for p in res.points)
    return ok, (f"frontier of the default model (accuracy {res.reference_accuracy:.3f}): best point at <= 2 bits "
                f"per parameter per coder: {line}; written to {paths[0]} and {paths[1]}")


STEPS = [step_verify, step_surp, step_frontier, step_figures, step_repro]


def main(argv=None) -> int:
    t0 = time.perf_counter()
    summary = []
    ok_all = True
    for step in STEPS:
        print(f"== {step.__name__.removeprefix('step_')}", flush=True)
        ok, text = step()
        ok_all &= ok
        summary.append(("ok  " if ok else "FAIL") + "  " + text)
    print("\n=== ratedist demo summary ===")
    print("\n".join(summary))
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())

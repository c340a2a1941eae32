"""Coders at the limit on i.i.d. sources, and their speed.

Rows (the near-limit coding issue's anchors):

* i.i.d. Laplace(1) under absolute error at 0.5, 1, 2 bits per sample and Gaussian(0, 1) under squared
  error at 1 and 2 bits, 10⁶ samples, every coder of ``ratedist.quant``: the rate overhead at equal
  distortion, ``R_measured / R(D_measured) − 1``, with R_measured = 8·len(stream)/n (header, tables and
  CRCs included) and R(D) the closed form (log2(1/(λD)), ½·log2(σ²/D)).  The ratio column is
  R_measured / R(D); the target is on the best coder.
* speed: entropy-coded trellis (8 states) encode and decode in weights/s, bitshift trellis decode, and
  its encode per L, against the targets; the ratio is the measured speed over the target.
"""

from __future__ import annotations

import math
import time

import numpy as np

N = 1_000_000
CODERS = {"scalar": {}, "tcq8": {"states": 8}, "tcq256": {"states": 256}, "trellis12": {"L": 12},
          "trellis14": {"L": 14}}
ANCHORS = [("laplace", "l1", 0.5, 0.12), ("laplace", "l1", 1.0, 0.10), ("laplace", "l1", 2.0, 0.10),
           ("gaussian", "mse", 1.0, 0.08), ("gaussian", "mse", 2.0, 0.08)]


def _source(kind, n):
    rng = np.random.default_rng(2026)
    return rng.laplace(size=n) if kind == "laplace" else rng.normal(size=n)


def _rd(kind, d):
    return math.log2(1 / d) if kind == "laplace" else 0.5 * math.log2(1 / d)


def _method(name):
    return name.rstrip("0123456789")


def anchors(n=N, coders=CODERS):
    from ratedist import quant

    rows, table = [], []
    for kind, metric, rate, target in ANCHORS:
        x = {"x": _source(kind, n)}
        best = None
        for name, opts in coders.items():
            t0 = time.perf_counter()
            try:
                enc = quant.encode(x, method=_method(name), rate=rate, metric=metric, normalize=None, **opts)
            except Exception as exc:  # noqa: BLE001 - a coder that is missing or fails is reported, not fatal
                table.append((kind, rate, name, None, None, f"failed: {exc}"))
                continue
            dt = time.perf_counter() - t0
            r = enc.report
            rd = _rd(kind, r.distortion)
            ov = r.bpp / rd - 1
            table.append((kind, rate, name, r.bpp, ov, f"D={r.distortion:.5g} {dt:.1f}s"))
            if best is None or ov < best[1]:
                best = (name, ov, r.bpp, rd)
        if best:
            rows.append({"name": f"{kind}/{metric} {rate:g} bit: best coder ({best[0]})",
                         "ratio": best[2] / best[3], "target": f"overhead <= {100 * target:.0f} %",
                         "passed": best[1] <= target, "detail": f"overhead {100 * best[1]:+.1f} %"})
    print("   coder overhead at equal distortion (R_measured / R(D) - 1):")
    for kind, rate, name, bpp, ov, note in table:
        if ov is None:
            print(f"     {kind:<8} {rate:>4g} bit  {name:<8} {note}")
        else:
            print(f"     {kind:<8} {rate:>4g} bit  {name:<8} {bpp:7.4f} bpp  {100 * ov:+6.1f} %  {note}")
    return rows


def speeds(n=N):
    from ratedist.quant import get_coder

    rows = []
    u = np.random.default_rng(5).laplace(size=n)
    u = u / np.linalg.norm(u)
    tcq = get_coder("tcq", states=8)
    step = float(np.sqrt(np.mean(u * u))) * 0.5
    cand = [c for c in tcq.candidates(u, "l1")]
    opts = min(cand, key=lambda c: abs(c.get("step", step) - step))
    tcq.encode_tensor(u[:5000], "l1", **opts)  # compile
    t0 = time.perf_counter()
    code = tcq.encode_tensor(u, "l1", **opts)
    t_enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    tcq.decode_tensor(code.payload, code.params, n, "l1")
    t_dec = time.perf_counter() - t0
    rows.append({"name": "tcq 8 states encode (weights/s)", "ratio": n / t_enc / 2e6, "target": ">= 2 M/s",
                 "passed": n / t_enc >= 2e6, "detail": f"{n / t_enc / 1e6:.2f} M/s at {8 * len(code.payload) / n:.2f} bpp"})
    rows.append({"name": "tcq 8 states decode (weights/s)", "ratio": n / t_dec / 20e6, "target": ">= 20 M/s",
                 "passed": n / t_dec >= 20e6, "detail": f"{n / t_dec / 1e6:.1f} M/s"})
    for L in (8, 12, 16):
        tr = get_coder("trellis", L=L)
        cands = tr.candidates(u, "l1")
        c1 = min(cands, key=lambda c: abs(c["k"] / c["V"] - 2.0))
        m = n if L <= 12 else n // 8
        tr.encode_tensor(u[:4096], "l1", **c1)  # compile
        t0 = time.perf_counter()
        code = tr.encode_tensor(u[:m], "l1", **c1)
        t_enc = time.perf_counter() - t0
        t0 = time.perf_counter()
        tr.decode_tensor(code.payload, code.params, m, "l1")
        t_dec = time.perf_counter() - t0
        rows.append({"name": f"trellis L={L} encode (weights/s)", "ratio": m / t_enc, "target": "stated",
                     "passed": True, "detail": f"{m / t_enc / 1e6:.3f} M/s ({m} weights, {c1['k']}/{c1['V']} bit)"})
        if L == 12:
            rows.append({"name": "trellis L=12 decode (weights/s)", "ratio": m / t_dec / 50e6, "target": ">= 50 M/s",
                         "passed": m / t_dec >= 50e6, "detail": f"{m / t_dec / 1e6:.1f} M/s"})
    return rows


def main(quick: bool = False, only: str | None = None) -> list[dict]:
    n = 100_000 if quick else N
    rows = []
    if only in (None, "anchors"):
        rows += anchors(n)
    if only in (None, "speeds"):
        rows += speeds(n)
    return rows


if __name__ == "__main__":
    import sys

    for row in main(only=sys.argv[1] if len(sys.argv) > 1 else None):
        print(row)

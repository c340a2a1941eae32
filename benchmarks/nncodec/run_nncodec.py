"""Code a model with NNCodec (ISO/IEC 15938-17 NNC) at a list of QPs: real bitstreams, decoded back.

Run with the NNCodec environment's interpreter (``benchmarks/nncodec/setup_env.sh`` builds it)::

    benchmarks/nncodec/.venv/bin/python benchmarks/nncodec/run_nncodec.py WEIGHTS.npz \\
        --qps -64 -56 -48 --out DIR

``WEIGHTS.npz`` holds float32 arrays (tensor name → array). For each QP the whole model is coded
by ``nncodec.nnc.compress`` (uniform reconstruction grid, dependent quantization — NNCodec's
default ``use_dq=True`` — and DeepCABAC), the bitstream is written to ``DIR/qp_<QP>.nnc`` and
decoded from that file by ``nncodec.nnc.decompress``; the decoded weights go to
``DIR/qp_<QP>.npz`` and a summary to ``DIR/nncodec_run.json`` (sizes in bytes of the files
NNCodec wrote, the per-tensor QPs and steps, NNCodec's version and every option passed).

Per-tensor QPs: equal steps in the normalized domain
----------------------------------------------------
NNCodec's step for a QP ``q`` at density ``d`` (``k = 2**d`` QPs per octave) is
``Δ(q) = (k + (q mod k)) · 2**(⌊q/k⌋ − d) = (1 + (q mod k)/k) · 2**⌊q/k⌋``, the reconstruction
grid ``Δ·ℤ`` (with dependent quantization each of the two quantizers uses every other point, so
their own spacing is ``2Δ``). Here a run's QP ``q`` names the step *in the normalized domain*
``u_t = w_t/‖w_t‖₂``: ``Δ_u = Δ(q)``. Each tensor ``t`` (biases included) gets its own QP
``q_t`` whose step is the one of NNCodec's grid of steps nearest (in ratio) to ``Δ_u·‖w_t‖₂``,
passed through ``compress(qp_per_tensor=...)`` and signalled in the bitstream. The density is
raised from NNCodec's default 2 to 5 (``--qp-density``, a 3-bit header field, 0…7), so the steps
``Δ(q_t)/‖w_t‖₂`` agree with ``Δ_u`` to within 1.6 % (the JSON lists each ratio); with density 2
they would differ by up to 12 %.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata as _md
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

# Every option given to nncodec.nnc.compress besides the parameters, the QPs and the path.
# These are the library's defaults except row_skipping (nncodec.nn.encode's default) and
# qp_density (see the module docstring); nonweight_qp is moot since every tensor has its QP.
OPTIONS = {
    "use_dq": True,  # dependent (trellis-coded) quantization
    "codebook_mode": 0,  # uniform reconstruction grid
    "scan_order": 0,
    "lambda_scale": 0.0,  # 0: the trellis minimises the squared error only (NNCodec's default; --lambda-scale)
    "param_opt": True,
    "cabac_unary_length_minus1": 10,
    "opt_qp": False,
    "row_skipping": True,
    "tca": False,
}


def step_of_qp(qp: int, qp_density: int) -> float:
    """NNCodec's quantization step for QP ``qp`` (the mapping of its C++ ``quantLayer``)."""
    k = 1 << qp_density
    return float((k + (qp & (k - 1))) * 2.0 ** ((qp >> qp_density) - qp_density))


def qp_for_step(target: float, qp_density: int) -> int:
    """The QP whose step is nearest to ``target`` in ratio (|log Δ(q) − log target| smallest)."""
    k = 1 << qp_density
    e = math.floor(math.log2(target))
    base = e * k + math.floor((target / 2.0 ** e - 1.0) * k)  # Δ(base) ≤ target < Δ(base + 1)
    cands = [base - 1, base, base + 1, base + 2]
    return min(cands, key=lambda q: (abs(math.log(step_of_qp(q, qp_density) / target)), q))


def per_tensor_qps(weights: dict, qp: int, qp_density: int):
    """``{name: q_t}`` with Δ(q_t) ≈ Δ(qp)·‖w_t‖₂, and the norms."""
    du = step_of_qp(qp, qp_density)
    qps, norms = {}, {}
    for name, w in weights.items():
        nrm = float(np.linalg.norm(w.astype(np.float64).ravel()))
        if not nrm > 0:
            raise SystemExit(f"tensor {name!r} is all zeros: its normalized domain is undefined")
        norms[name] = nrm
        qps[name] = qp_for_step(du * nrm, qp_density)
    return qps, norms


def code_one(nnc, weights: dict, qp: int, qp_density: int, out: Path, options: dict) -> dict:
    qps, norms = per_tensor_qps(weights, qp, qp_density)
    bs_path = out / f"qp_{qp}.nnc"
    if bs_path.exists():
        bs_path.unlink()
    t0 = time.perf_counter()
    nnc.compress(
        dict(weights), bitstream_path=str(bs_path), qp=int(qp), qp_density=qp_density,
        qp_per_tensor={k: int(v) for k, v in qps.items()}, verbose=False, return_bitstream=False, **options,
    )
    t_enc = time.perf_counter() - t0
    n_bytes = os.path.getsize(bs_path)
    t0 = time.perf_counter()
    dec = nnc.decompress(str(bs_path))
    t_dec = time.perf_counter() - t0
    if list(dec) != list(weights) or any(dec[k].shape != weights[k].shape for k in weights):
        raise SystemExit(f"qp {qp}: decoded tensors {[(k, v.shape) for k, v in dec.items()]} differ from the input's")
    # The encoder's own reconstruction (same quantizer, no bitstream): the decoder must reproduce it.
    rec = nnc.compress(
        dict(weights), bitstream_path=None, qp=int(qp), qp_density=qp_density,
        qp_per_tensor={k: int(v) for k, v in qps.items()}, verbose=False, quantize_only=True, **options,
    )
    matches = all(np.array_equal(np.asarray(rec[k], np.float32), np.asarray(dec[k], np.float32)) for k in weights)
    dec_path = out / f"qp_{qp}.npz"
    np.savez(dec_path, **{k: np.asarray(v, dtype=np.float32) for k, v in dec.items()})
    du = step_of_qp(qp, qp_density)
    return {
        "qp": int(qp),
        "step_normalized": du,
        "bytes": int(n_bytes),
        "bitstream": bs_path.name,
        "decoded": dec_path.name,
        "decoded_matches_encoder": bool(matches),
        "encode_seconds": t_enc,
        "decode_seconds": t_dec,
        "tensors": {
            k: {
                "qp": int(qps[k]),
                "step": step_of_qp(qps[k], qp_density),
                "norm": norms[k],
                "step_ratio": step_of_qp(qps[k], qp_density) / (du * norms[k]),
            }
            for k in weights
        },
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights", help=".npz of float32 arrays (tensor name -> array)")
    ap.add_argument("--qps", type=int, nargs="+", required=True, help="normalized-domain QPs (see the docstring)")
    ap.add_argument("--out", required=True, help="folder for the bitstreams, decoded .npz files and the JSON")
    ap.add_argument("--qp-density", type=int, default=5, help="NNCodec's qp_density, 0..7 (default 5)")
    ap.add_argument("--lambda-scale", type=float, default=0.0,
                    help="NNCodec's lambda_scale: > 0 adds the CABAC rate to the trellis cost (default 0, NNCodec's)")
    args = ap.parse_args(argv)
    if not args.lambda_scale >= 0:
        raise SystemExit(f"--lambda-scale must be >= 0, got {args.lambda_scale}")
    options = {**OPTIONS, "lambda_scale": args.lambda_scale}
    if not 0 <= args.qp_density <= 7:
        raise SystemExit(f"--qp-density must be in 0..7 (a 3-bit field), got {args.qp_density}")

    from nncodec import nnc  # noqa: PLC0415  (only in NNCodec's environment)

    with np.load(args.weights) as z:
        weights = {k: np.ascontiguousarray(z[k], dtype=np.float32) for k in z.files}
    if not weights:
        raise SystemExit(f"{args.weights} holds no arrays")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    points = [code_one(nnc, weights, q, args.qp_density, out, options) for q in args.qps]
    import torch  # noqa: PLC0415

    summary = {
        "nncodec_version": _md.version("nncodec"),
        "api": "nncodec.nnc.compress / nncodec.nnc.decompress",
        "options": {**options, "qp_density": args.qp_density, "qp_per_tensor": "step proportional to ||w_t||_2"},
        "environment": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "torchvision": "stub (benchmarks/nncodec/stub)",
        },
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
        "weights": os.path.abspath(args.weights),
        "n_params": int(sum(w.size for w in weights.values())),
        "tensors": {k: list(w.shape) for k, w in weights.items()},
        "points": points,
    }
    (out / "nncodec_run.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({"json": str(out / "nncodec_run.json"), "points": len(points)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""NNCodec (ISO/IEC 15938-17 NNC, DeepCABAC + dependent quantization) as a measured reference.

Importable from ratedist's own environment; it never imports NNCodec. :func:`run_reference`
writes the weights to an .npz, runs ``run_nncodec.py`` with NNCodec's private interpreter
(``benchmarks/nncodec/.venv``, built by ``setup_env.sh``) in a subprocess, then measures each
operating point here: the rate from the size of the bitstream NNCodec wrote (and decoded back),
the distortion in the normalized domain from the weights NNCodec's decoder returned.

Where that environment cannot be built, :func:`recorded_reference` returns the points measured
on the two shipped models (``digits_mlp``, ``digits_cnn``) and stored in ``recorded.json``;
:func:`recorded_meta` says with which NNCodec version, options and date. Regenerate it with::

    .venv/bin/python benchmarks/nncodec/reference.py --record

Per-tensor QPs (see ``run_nncodec.py``): a QP ``q`` names the step ``Δ_u`` of the normalized
domain ``u_t = w_t/‖w_t‖₂``; tensor ``t`` is coded with the QP whose NNCodec step is nearest
to ``Δ_u·‖w_t‖₂`` (at ``qp_density`` 5 the steps agree to within 1.6 %).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ratedist._validation import check_int, check_nonnegative, check_weights
from ratedist.errors import BackendUnavailableError, InvalidArgumentError, RatedistError

__all__ = [
    "DEFAULT_QPS",
    "QP_DENSITY",
    "nncodec_python",
    "normalized_distortion",
    "run_reference",
    "recorded_reference",
    "recorded_meta",
]

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "run_nncodec.py"
RECORDED = HERE / "recorded.json"
QP_DENSITY = 5  # 32 QPs per octave of step
# Normalized steps 2^-5.5 … 2^-12 in half-octave strides (14 points): 0.4 … 5.2 bits per parameter
# on the MLP, 0.6 … 4.6 on the CNN.
DEFAULT_QPS = tuple(range(-176, -385, -16))
TIMEOUT_S = 1800


def nncodec_python() -> Path:
    """The interpreter of NNCodec's environment, ``benchmarks/nncodec/.venv/bin/python``.

    Raises
    ------
    BackendUnavailableError
        If the environment has not been built (or NNCodec is missing from it).
    """
    py = HERE / ".venv" / "bin" / "python"
    if not py.exists():
        raise BackendUnavailableError(
            f"NNCodec's environment is missing ({py} not found); build it with "
            "`benchmarks/nncodec/setup_env.sh`, or use `recorded_reference(model_name)` for the recorded points."
        )
    probe = subprocess.run(
        [str(py), "-c", "import nncodec.nnc"], capture_output=True, text=True, env=_clean_env(), timeout=300,
    )
    if probe.returncode != 0:
        raise BackendUnavailableError(
            f"NNCodec cannot be imported in {py.parent.parent} ({probe.stderr.strip().splitlines()[-1:]}); rerun "
            "`benchmarks/nncodec/setup_env.sh`, or use `recorded_reference(model_name)` for the recorded points."
        )
    return py


def _clean_env() -> dict:
    """The environment for NNCodec's interpreter, without this interpreter's venv and paths."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def normalized_distortion(weights: Mapping[str, np.ndarray], decoded: Mapping[str, np.ndarray]) -> tuple[float, float]:
    """Mean absolute and mean squared error in the normalized domain, both divided by the ORIGINAL norms.

    Parameters
    ----------
    weights, decoded : Mapping[str, array]
        The original tensors ``w_t`` and their reconstructions ``ŵ_t`` (same names and shapes).

    Returns
    -------
    l1, mse : float
        ``(1/n) Σ_t Σ_i |u_ti − û_ti|`` and ``(1/n) Σ_t Σ_i (u_ti − û_ti)²`` with
        ``u_t = w_t/‖w_t‖₂``, ``û_t = ŵ_t/‖w_t‖₂`` and ``n`` the number of parameters
        (dimensionless; the mse is per parameter).
    """
    n = 0
    l1 = 0.0
    sq = 0.0
    for name, w in weights.items():
        w = np.asarray(w, dtype=np.float64)
        wh = np.asarray(decoded[name], dtype=np.float64)
        if wh.shape != w.shape:
            raise InvalidArgumentError(f"decoded tensor {name!r} has shape {wh.shape}, the original {w.shape}.")
        nrm = float(np.linalg.norm(w.ravel()))
        e = (w - wh).ravel() / nrm
        l1 += float(np.sum(np.abs(e)))
        sq += float(np.dot(e, e))
        n += w.size
    return l1 / n, sq / n


def _checked(weights) -> dict[str, np.ndarray]:
    ws = check_weights("weights", weights, allow_empty_tensors=False)
    out = {}
    for name, w in ws.items():
        w32 = np.ascontiguousarray(w, dtype=np.float32)
        if not np.any(w32):
            raise InvalidArgumentError(
                f"tensor {name!r} of `weights` is all zeros: its normalized domain w/‖w‖₂ is undefined; drop it."
            )
        out[name] = w32
    return out


def run_reference(
    weights: Mapping[str, np.ndarray],
    qps: Sequence[int] = DEFAULT_QPS,
    evaluate: Callable[[dict], float] | None = None,
    *,
    qp_density: int = QP_DENSITY,
    lambda_scale: float = 0.0,
    workdir: str | os.PathLike | None = None,
) -> list[dict]:
    """Code ``weights`` with NNCodec at each normalized-domain QP and measure every point.

    Parameters
    ----------
    weights : Mapping[str, array]
        Tensors (name → array; cast to float32, NNCodec's input type). None may be all zeros.
    qps : sequence of int
        Normalized-domain QPs: step ``Δ_u = (1 + (q mod 32)/32)·2^⌊q/32⌋`` at density 5
        (smaller QP, finer step, more bits).
    evaluate : callable, optional
        ``evaluate(decoded_weights) -> float`` (e.g. a test accuracy), recorded per point.
    qp_density : int
        NNCodec's ``qp_density`` (0…7); 5 by default (see ``run_nncodec.py``).
    lambda_scale : float
        NNCodec's ``lambda_scale`` (≥ 0): 0, its default, lets the dependent-quantization trellis
        minimise the squared error alone; a positive value adds λ·(CABAC rate estimate).
    workdir : path, optional
        Keep the bitstreams, decoded .npz files and NNCodec's JSON there (a temporary folder
        otherwise).

    Returns
    -------
    list of dict
        One per QP, in the order given: ``qp``, ``step_normalized``, ``bytes`` (size of the
        bitstream file NNCodec wrote), ``n_params``, ``bpp`` (``8·bytes/n_params``, bits per
        parameter), ``l1`` and ``mse`` (:func:`normalized_distortion`), ``accuracy`` (None without
        ``evaluate``), ``tensor_qps`` (name → QP), ``decoded`` (name → float32 array),
        ``decoded_matches_encoder`` (the decoder reproduced the encoder's reconstruction),
        ``nncodec_version`` and ``options``.

    Raises
    ------
    BackendUnavailableError
        If NNCodec's environment is missing or broken (use :func:`recorded_reference`).
    RatedistError
        If the NNCodec run fails (the message carries its stderr).
    """
    ws = _checked(weights)
    qp_density = check_int("qp_density", qp_density, minimum=0, maximum=7)
    lambda_scale = check_nonnegative("lambda_scale", lambda_scale)
    qps = [check_int("qps", q, minimum=-4096, maximum=4095) for q in qps]
    if not qps:
        raise InvalidArgumentError("`qps` is empty; pass at least one QP (e.g. DEFAULT_QPS).")
    py = nncodec_python()
    with tempfile.TemporaryDirectory(prefix="nncodec_") as tmp:
        out = Path(workdir) if workdir is not None else Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        npz = out / "weights.npz"
        np.savez(npz, **ws)
        cmd = [str(py), str(RUNNER), str(npz), "--out", str(out), "--qp-density", str(qp_density),
               "--lambda-scale", repr(float(lambda_scale)), "--qps", *map(str, qps)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_clean_env(), timeout=TIMEOUT_S)
        if proc.returncode != 0:
            raise RatedistError(
                f"the NNCodec run failed (exit {proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-4000:]}"
            )
        run = json.loads((out / "nncodec_run.json").read_text())
        n = int(sum(w.size for w in ws.values()))
        points = []
        for p in run["points"]:
            bs = out / p["bitstream"]
            n_bytes = bs.stat().st_size
            if n_bytes != p["bytes"]:
                raise RatedistError(f"qp {p['qp']}: {bs} has {n_bytes} bytes, the runner reported {p['bytes']}.")
            with np.load(out / p["decoded"]) as z:
                dec = {k: np.array(z[k], dtype=np.float32) for k in z.files}
            if list(dec) != list(ws):
                raise RatedistError(f"qp {p['qp']}: decoded tensors {list(dec)} differ from the input's {list(ws)}.")
            l1, mse = normalized_distortion(ws, dec)
            points.append({
                "qp": p["qp"],
                "step_normalized": p["step_normalized"],
                "bytes": n_bytes,
                "n_params": n,
                "bpp": 8.0 * n_bytes / n,
                "l1": l1,
                "mse": mse,
                "accuracy": None if evaluate is None else float(evaluate(dec)),
                "tensor_qps": {k: v["qp"] for k, v in p["tensors"].items()},
                "max_step_ratio_error": max(abs(v["step_ratio"] - 1.0) for v in p["tensors"].values()),
                "decoded": dec,
                "decoded_matches_encoder": p["decoded_matches_encoder"],
                "nncodec_version": run["nncodec_version"],
                "options": run["options"],
            })
    return points


def _recorded() -> dict:
    if not RECORDED.exists():
        raise BackendUnavailableError(f"{RECORDED} is missing; regenerate it with `reference.py --record`.")
    return json.loads(RECORDED.read_text())


def recorded_meta() -> dict:
    """What ``recorded.json`` was measured with: NNCodec's version, options, environment, date, QPs."""
    rec = _recorded()
    return {k: v for k, v in rec.items() if k != "models"}


def recorded_reference(model_name: str) -> list[dict]:
    """The NNCodec points measured on a shipped model, as :func:`run_reference` returned them (no ``decoded``).

    Parameters
    ----------
    model_name : {"digits_mlp", "digits_cnn"}
        ``ratedist.data.default_model()`` (accuracy: ``mlp_accuracy`` on ``digits_split()``'s
        test set) or ``ratedist.data.digits_cnn()`` (``cnn_accuracy``).

    Returns
    -------
    list of dict
        ``qp``, ``step_normalized``, ``bytes``, ``n_params``, ``bpp``, ``l1``, ``mse``,
        ``accuracy``, ``tensor_qps``, ``max_step_ratio_error``, ``decoded_matches_encoder``.
    """
    models = _recorded()["models"]
    if model_name not in models:
        raise InvalidArgumentError(f"`model_name` must be one of {sorted(models)}, got {model_name!r}.")
    return [dict(p) for p in models[model_name]["points"]]


def _shipped_models():
    from ratedist.data import cnn_accuracy, default_model, digits_cnn, digits_split, mlp_accuracy

    _, Xte, _, yte = digits_split()
    return {
        "digits_mlp": (default_model(), lambda w: mlp_accuracy(w, Xte, yte),
                       "ratedist.data.default_model(); accuracy: mlp_accuracy on digits_split() test set"),
        "digits_cnn": (digits_cnn(), lambda w: cnn_accuracy(w, Xte, yte),
                       "ratedist.data.digits_cnn(); accuracy: cnn_accuracy on digits_split() test set"),
    }


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Measure NNCodec on the shipped models; print (and --record) the table.")
    ap.add_argument("--record", action="store_true", help=f"write {RECORDED.name}")
    ap.add_argument("--qps", type=int, nargs="+", default=list(DEFAULT_QPS))
    args = ap.parse_args(argv)
    models = {}
    meta = None
    for name, (w, evaluate, desc) in _shipped_models().items():
        pts = run_reference(w, args.qps, evaluate)
        print(f"\n{name}: {desc}\n  baseline accuracy {evaluate(w):.4f}, {pts[0]['n_params']} parameters")
        print(f"  {'qp':>5} {'Δ_u':>10} {'bytes':>7} {'bpp':>7} {'d_L1(u,û)':>11} {'mse':>10} {'acc':>7}")
        for p in pts:
            print(f"  {p['qp']:>5} {p['step_normalized']:>10.3e} {p['bytes']:>7} {p['bpp']:>7.3f} "
                  f"{p['l1']:>11.4e} {p['mse']:>10.3e} {p['accuracy']:>7.4f}")
        meta = {"nncodec_version": pts[0]["nncodec_version"], "options": pts[0]["options"]}
        models[name] = {
            "description": desc,
            "n_params": pts[0]["n_params"],
            "baseline_accuracy": evaluate(w),
            "points": [{k: v for k, v in p.items() if k not in ("decoded", "nncodec_version", "options")} for p in pts],
        }
    if args.record:
        import datetime as dt
        import platform

        rec = {
            **meta,
            "date": dt.date.today().isoformat(),
            "qp_density": QP_DENSITY,
            "qps": args.qps,
            "per_tensor_qps": "tensor t: the QP whose NNCodec step is nearest (in ratio) to step_normalized*||w_t||_2",
            "distortion": "l1 = (1/n) sum_t sum_i |u - u_hat|, mse likewise squared; u = w/||w||_2, u_hat = w_hat/||w||_2",
            "rate": "bpp = 8 * (size of the .nnc file NNCodec wrote and decoded back) / n_params",
            "measured_on": f"{platform.system()} {platform.machine()}, CPU",
            "models": models,
        }
        RECORDED.write_text(json.dumps(rec, indent=1) + "\n")
        print(f"\nwrote {RECORDED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

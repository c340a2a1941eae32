"""Mutation fuzzer over every stream format's golden stream, with CRCs recomputed.

For each format of ``tests/golden/`` (``<name>.bin`` and its decoder in ``_streams.py``) it draws
``N`` mutations from a seed — byte flips, byte overwrites, truncations, splices of a chunk of the
stream into another place, varint insertions, and (for container streams) edits of one field of the
JSON header: a huge, negative, fractional, NaN, ±Infinity, wrong-typed or missing value — then
recomputes every CRC so that the decoder's own checks are what stands between the forged bytes and a
crash.  Each mutant is decoded under :func:`ratedist.coding.limits.limit_memory` and a wall-clock
limit, and the outcome is counted:

``decoded``          the decoder returned
``corrupt``          it raised ``CorruptStreamError`` (or ``InvalidArgumentError``)
``other``            any other exception: a bug (the first few are printed with their message)
``over_time``        it took longer than the time limit
``over_memory``      Python-visible allocations (tracemalloc) peaked above the memory budget

Run ``python benchmarks/bench_fuzz.py --n 3000`` for a campaign; ``benchmarks/run.py`` runs it
small.  The row's ratio is the number of ``other`` + ``over_time`` + ``over_memory`` outcomes
(target 0).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import signal
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "golden"
MAGIC = b"RDST"
OUTCOMES = ("decoded", "corrupt", "other", "over_time", "over_memory")
HOSTILE_VALUES = [-1, 0, 1, 2**31, 2**63, 2**64 + 5, 10**30, 0.5, -0.5, 1e308, -1e308, 1e-320, "x", None, True,
                  [], {}, [1, 2], "NaN", "Infinity", "-Infinity", "1e999"]
_RAW = {"NaN", "Infinity", "-Infinity", "1e999"}  # written as bare JSON tokens, not strings


def _load_cases():
    spec = importlib.util.spec_from_file_location("_golden_streams", GOLDEN / "_streams.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.cases()


# ----------------------------------------------------------------------------- re-sealing


def _split_container(buf: bytes):
    """(preamble fields, header bytes, [segment payloads], tail) of a container, as far as it parses."""
    if len(buf) < 12 or buf[:4] != MAGIC:
        return None
    magic, version, reserved, hdr_len = struct.unpack_from("<4sHHI", buf, 0)
    end = 12 + hdr_len
    if end + 4 > len(buf):
        return None
    segs, pos = [], end + 4
    while pos + 4 <= len(buf):
        (n,) = struct.unpack_from("<I", buf, pos)
        if pos + 8 + n > len(buf):
            break
        segs.append(bytes(buf[pos + 4:pos + 4 + n]))
        pos += 8 + n
    return (version, reserved), bytes(buf[12:end]), segs, bytes(buf[pos:])


def _pack_raw(version, reserved, hdr: bytes, segs, tail=b"") -> bytes:
    parts = [struct.pack("<4sHHI", MAGIC, version, reserved, len(hdr)), hdr, struct.pack("<I", zlib.crc32(hdr))]
    for s in segs:
        parts += [struct.pack("<I", len(s)), s, struct.pack("<I", zlib.crc32(s))]
    return b"".join(parts) + tail


def reseal(buf: bytes) -> bytes:
    """Recompute every CRC that can be located: a container's header and segment CRCs, or the
    trailing CRC32 of a compact payload."""
    parts = _split_container(buf)
    if parts is not None:
        (version, reserved), hdr, segs, tail = parts
        return _pack_raw(version, reserved, hdr, segs, tail)
    if len(buf) >= 5:
        body = buf[:-4]
        return body + struct.pack("<I", zlib.crc32(body))
    return buf


# ----------------------------------------------------------------------------- mutations


def _leaves(obj, path=()):
    """Every (path, value) of a JSON document, containers included."""
    yield path, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, path + (i,))


def _dump_with_raw(obj) -> bytes:
    """JSON text in which the strings of ``_RAW`` (marked with a prefix) become bare tokens."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    for tok in _RAW:
        text = text.replace(json.dumps("\x00raw:" + tok), tok)
    return text.encode()


def _mutate_header(buf: bytes, rng) -> bytes | None:
    parts = _split_container(buf)
    if parts is None:
        return None
    (version, reserved), hdr, segs, tail = parts
    try:
        doc = json.loads(hdr)
    except ValueError:
        return None
    leaves = [p for p, _ in _leaves(doc) if p]
    if not leaves:
        return None
    path = leaves[rng.integers(len(leaves))]
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    action = rng.integers(10)
    if action == 0 and isinstance(parent, dict):
        del parent[key]
    elif action == 1 and isinstance(parent, dict):
        parent["extra_" + str(rng.integers(100))] = 10**12
    elif action == 2 and isinstance(parent[key], (int, float)) and not isinstance(parent[key], bool):
        parent[key] = parent[key] * int(rng.choice([2, 10, 1000, 10**6, 10**12])) + int(rng.integers(-2, 3))
    else:
        v = HOSTILE_VALUES[rng.integers(len(HOSTILE_VALUES))]
        parent[key] = "\x00raw:" + v if isinstance(v, str) and v in _RAW else v
    return _pack_raw(version, reserved, _dump_with_raw(doc), segs, tail)


def mutate(buf: bytes, rng, donors) -> bytes:
    """One random mutation of ``buf`` (CRCs recomputed)."""
    b = bytearray(buf)
    kind = rng.integers(7)
    if kind == 0 and buf[:4] == MAGIC:
        out = _mutate_header(buf, rng)
        if out is not None:
            return out
    for _ in range(int(rng.integers(1, 4))):
        op = rng.integers(6)
        if not b:
            break
        i = int(rng.integers(len(b)))
        if op == 0:
            b[i] ^= 1 << int(rng.integers(8))
        elif op == 1:
            b[i] = int(rng.choice([0, 1, 0x7F, 0x80, 0xFF, int(rng.integers(256))]))
        elif op == 2:
            del b[int(rng.integers(len(b) + 1)):]
        elif op == 3:  # splice a chunk of this or another stream
            donor = donors[rng.integers(len(donors))]
            j = int(rng.integers(len(donor)))
            chunk = donor[j:j + int(rng.integers(1, 64))]
            b[i:i + int(rng.integers(0, 64))] = chunk
        elif op == 4:  # a huge varint (compact payloads declare d, seed and counts as varints)
            b[i:i + int(rng.integers(0, 4))] = bytes([0xFF] * int(rng.integers(1, 9)) + [int(rng.integers(1, 128))])
        else:
            b[i:i] = bytes(rng.integers(0, 256, int(rng.integers(1, 16))).astype(np.uint8))
    return reseal(bytes(b))


# ----------------------------------------------------------------------------- running


class _Timeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Timeout


def run_one(decode, data: bytes, *, seconds: float, budget: int) -> tuple[str, str]:
    """Decode ``data``; return (outcome, detail)."""
    from ratedist.coding.limits import limit_memory
    from ratedist.errors import CorruptStreamError, InvalidArgumentError

    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with limit_memory(budget):
            decode(data)
        outcome, detail = "decoded", ""
    except _Timeout:
        outcome, detail = "over_time", ""
    except (CorruptStreamError, InvalidArgumentError):
        outcome, detail = "corrupt", ""
    except Exception as exc:  # noqa: BLE001 - counting what escapes is the point
        outcome, detail = "other", f"{type(exc).__name__}: {str(exc)[:160]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    elapsed = time.perf_counter() - t0
    if outcome != "other":
        if elapsed > seconds:
            outcome = "over_time"
        elif peak > budget:
            outcome, detail = "over_memory", f"peak {peak} bytes"
    return outcome, detail


def campaign(n: int, seed: int = 0, *, seconds: float = 5.0, budget: int = 256 * 2**20, only=None, verbose=True):
    """Counts of outcomes per format: ``{format: {outcome: count}}`` and the first 'other' examples."""
    cases = _load_cases()
    streams = {name: (GOLDEN / f"{name}.bin").read_bytes() for name in cases}
    donors = list(streams.values())
    table, examples = {}, []
    for name, (_, decode) in sorted(cases.items()):
        if only and only not in name:
            continue
        decode(streams[name])  # compile what the decoder needs once, outside the time limit
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        counts = dict.fromkeys(OUTCOMES, 0)
        for i in range(n):
            data = mutate(streams[name], rng, donors)
            outcome, detail = run_one(decode, data, seconds=seconds, budget=budget)
            counts[outcome] += 1
            if outcome in ("other", "over_time", "over_memory") and len(examples) < 20:
                examples.append((name, i, outcome, detail))
        table[name] = counts
        if verbose:
            print(f"{name:<24}" + "".join(f"{counts[o]:>12}" for o in OUTCOMES), flush=True)
    return table, examples


def main(quick: bool = False, n: int | None = None, seed: int = 0) -> list[dict]:
    """Rows for ``benchmarks/run.py``: one per format, ratio = bad outcomes (target 0)."""
    n = n if n is not None else (30 if quick else 200)
    print(f"{'format':<24}" + "".join(f"{o:>12}" for o in OUTCOMES))
    table, examples = campaign(n, seed)
    for ex in examples:
        print("  example:", *ex)
    rows = []
    for name, c in table.items():
        bad = c["other"] + c["over_time"] + c["over_memory"]
        rows.append({"name": f"fuzz {name} ({n} mutations)", "ratio": float(bad), "target": "0 bad outcomes",
                     "passed": bad == 0, "detail": ", ".join(f"{k} {v}" for k, v in c.items())})
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="mutations per format")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=None, help="only formats whose name contains this")
    ap.add_argument("--seconds", type=float, default=5.0, help="time limit per decode")
    ap.add_argument("--budget-mib", type=int, default=256, help="memory budget per decode")
    args = ap.parse_args()
    print(f"{'format':<24}" + "".join(f"{o:>12}" for o in OUTCOMES))
    tbl, exs = campaign(args.n, args.seed, seconds=args.seconds, budget=args.budget_mib * 2**20, only=args.only)
    for ex in exs:
        print("  example:", *ex)
    total = {o: sum(c[o] for c in tbl.values()) for o in OUTCOMES}
    print(f"{'total':<24}" + "".join(f"{total[o]:>12}" for o in OUTCOMES))

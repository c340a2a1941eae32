"""Benchmark: command-line start-up (issue 17 target: `ratedist --help` and `ratedist rd closed ...`
return in <= 0.3 s).

Each command runs in a fresh interpreter, several times; the row reports the median wall time and,
as the ratio, that time against a bare `python -c "import numpy"` measured in the same run (the floor
any verb that computes with NumPy pays). The answer is checked too: `rd closed` must print R = 1 bit.

Run: ``python benchmarks/bench_startup.py`` (or ``python benchmarks/run.py --only startup``).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_SECONDS = 0.3
CLI = [sys.executable, "-m", "ratedist.cli"]


def _median_wall(argv: list[str], repeats: int) -> tuple[float, str]:
    times, out = [], ""
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=Path.home())
        times.append(time.perf_counter() - t0)
        out = proc.stdout
        if proc.returncode != 0:
            raise RuntimeError(f"{argv} failed: {proc.stderr[-500:]}")
    return statistics.median(times), out


def main(quick: bool = False) -> list[dict]:
    repeats = 3 if quick else 7
    floor, _ = _median_wall([sys.executable, "-c", "import numpy"], repeats)
    rows = []
    for label, argv, check in (
        ("ratedist --help", CLI + ["--help"], lambda out: "usage: ratedist" in out),
        ("ratedist rd closed (Laplace, D = 1/(2λ))",
         CLI + ["rd", "closed", "--source", "laplace", "--lam", "1", "--distortion", "0.5", "--units", "bits"],
         lambda out: "R = 1 bits" in out),
    ):
        t, out = _median_wall(argv, repeats)
        rows.append({"name": f"start-up: {label}", "ratio": t / floor, "target": f"<= {TARGET_SECONDS} s",
                     "passed": t <= TARGET_SECONDS and check(out),
                     "detail": f"median {t:.3f} s over {repeats} runs; `import numpy` alone {floor:.3f} s; "
                               f"output {'correct' if check(out) else 'WRONG'}"})
    return rows


if __name__ == "__main__":
    for row in main(quick="--quick" in sys.argv):
        print(row)

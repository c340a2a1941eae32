"""Run every ``benchmarks/bench_*.py`` and print each benchmark's ratio against its reference.

Each benchmark module defines ``main(quick: bool = False) -> list[dict]`` whose
rows have ``name``, ``ratio`` (speed-up or cost ratio against a reference
measured in the same run), ``target`` (the issue's requirement, as text),
``passed`` (bool) and ``detail`` (the accuracy reached, sizes, seconds).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (not the issue's numbers)")
    parser.add_argument("--only", default=None, help="run only benchmarks whose file name contains this")
    args = parser.parse_args(argv)
    rows = []
    for path in sorted(Path(__file__).parent.glob("bench_*.py")):
        if args.only and args.only not in path.stem:
            continue
        t0 = time.perf_counter()
        print(f"== {path.stem}", flush=True)
        for row in _load(path).main(quick=args.quick):
            rows.append(row)
            flag = "ok  " if row["passed"] else "MISS"
            print(f"{flag} {row['name']:<48} ratio {row['ratio']:>10.3g}   target {row['target']}   {row.get('detail', '')}", flush=True)
        print(f"   ({time.perf_counter() - t0:.1f} s)")
    missed = [r["name"] for r in rows if not r["passed"]]
    print(f"\n{len(rows) - len(missed)}/{len(rows)} benchmark targets met" + (f"; missed: {', '.join(missed)}" if missed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

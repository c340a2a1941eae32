"""Rewrite the golden streams and their manifest after a deliberate format change.

Usage: ``python tests/golden/regenerate.py [NAME ...]`` (all formats when no name is given).
Only run it after bumping the changed format's revision; the diff of ``manifest.json`` then shows
exactly which formats changed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(names: list[str]) -> None:
    sys.path.insert(0, str(HERE))
    from _streams import cases, digest, sha256

    manifest_path = HERE / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    for name, (encode, decode) in cases().items():
        if names and name not in names:
            continue
        stream = encode()
        (HERE / f"{name}.bin").write_bytes(stream)
        manifest[name] = {"bytes": len(stream), "stream_sha256": sha256(stream), "decoded_sha256": digest(decode(stream))}
        print(f"{name}: {len(stream)} bytes")
    manifest_path.write_text(json.dumps(dict(sorted(manifest.items())), indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])

"""The wheel is the product: what the verbs read must travel inside it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (whl,) = out.glob("ratedist-*.whl")
    return zipfile.ZipFile(whl)


def test_wheel_carries_scripts_and_published_numbers(wheel):
    """Every figure script, every table script and every published-numbers file of the checkout is in
    the wheel under ratedist/_scripts/, where `ratedist.scripts.repo_root` finds it after install."""
    names = set(wheel.namelist())
    wanted = [p.relative_to(ROOT) for folder in ("figures", "paper_repro", "docs")
              for p in (ROOT / folder).rglob("*") if p.is_file() and p.suffix in (".py", ".json", ".md")
              and "__pycache__" not in p.parts and "out" not in p.parts]
    assert wanted, "no scripts found in the checkout"
    missing = [str(p) for p in wanted if f"ratedist/_scripts/{p.as_posix()}" not in names]
    assert not missing, f"not in the wheel: {missing}"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_repo_root_in_a_checkout_is_the_checkout():
    """From a source checkout the scripts are read where developers edit them."""
    from ratedist.scripts import figure_scripts, repo_root

    assert repo_root() == ROOT
    assert {p.name for p in figure_scripts()} == {p.name for p in (ROOT / "figures").glob("[!_]*.py")}

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
    wanted = [p.relative_to(ROOT) for folder in ("figures", "paper_repro", "analysis", "docs")
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


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh virtualenv holding the wheel (not the checkout); the dependencies come from the
    test environment's site-packages through a .pth line, so nothing is downloaded."""
    import site
    import sysconfig

    venv = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    purelib = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                  check=True, capture_output=True, text=True).stdout.strip())
    deps = [p for p in [sysconfig.get_path("purelib"), *site.getsitepackages()] if Path(p).is_dir()]
    # a plain path line in a .pth file is appended to sys.path; the .pth files inside it (the
    # checkout's editable install among them) are not processed, so only the wheel provides ratedist
    (purelib / "_ratedist_test_deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel.filename],
                   check=True, timeout=300)
    return venv


def _clean_env() -> dict:
    """The environment without PYTHONPATH (which would put a checkout before the installed wheel)."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["MPLBACKEND"] = "Agg"
    return env


def _run_verb(venv: Path, cwd: Path, *argv: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = _clean_env()
    return subprocess.run([str(venv / "bin" / "ratedist"), *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_installed_wheel_is_not_the_checkout(installed, tmp_path):
    """The test below runs the installed copy: ratedist imports from the virtualenv, not the checkout."""
    py = installed / "bin" / "python"
    where = subprocess.run([str(py), "-c", "import ratedist, ratedist.scripts as s; print(ratedist.__file__);"
                            "print(s.repo_root())"], cwd=tmp_path, capture_output=True, text=True, check=True,
                           env=_clean_env())
    first, root = where.stdout.split()
    assert str(installed) in first and str(ROOT) not in first
    assert root.endswith("ratedist/_scripts")


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["verify"], ["figures", "--quick", "--out", "out"],
                                  ["repro", "surp", "--quick", "--out", "repro"]], ids=lambda a: a[0])
def test_every_verb_runs_from_the_wheel(installed, tmp_path, argv):
    """`pip install ratedist` runs every verb: the claims ledger, the figure scripts and a table
    reproduction all find their scripts and published numbers inside the installed package."""
    proc = _run_verb(installed, tmp_path, *argv)
    assert proc.returncode == 0, (proc.stdout[-1500:], proc.stderr[-1500:])
    if argv[0] == "verify":
        assert "claims pass" in proc.stdout and "FAIL" not in proc.stdout
    elif argv[0] == "figures":
        assert len(list((tmp_path / "out").glob("*.png"))) == len(list((ROOT / "figures").glob("[!_]*.py")))
    else:
        assert (tmp_path / "repro" / "surp.json").is_file()


def test_nothing_points_outside_the_repository():
    """What users read (the package, its scripts, the docs, the README) cites the project's own
    docs/theory.md, never a design file outside the repository."""
    bad = []
    for folder in ("ratedist", "figures", "paper_repro", "analysis", "docs", "examples"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".md", ".json", ".toml") and "__pycache__" not in path.parts:
                text = path.read_text(encoding="utf-8", errors="replace")
                if "THEORY.md" in text or "../shared" in text:
                    bad.append(str(path.relative_to(ROOT)))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    if "THEORY.md" in readme or "../shared" in readme:
        bad.append("README.md")
    assert not bad, f"files citing THEORY.md or ../shared: {bad}"

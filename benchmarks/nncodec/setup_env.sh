#!/usr/bin/env bash
# Build the private environment NNCodec runs in: benchmarks/nncodec/.venv (gitignored).
#
# NNCodec (Fraunhofer HHI's ISO/IEC 15938-17 NNC codec) pins numpy<2 and builds a C++
# extension (DeepCABAC) from source, so it cannot live in ratedist's own .venv.  It
# imports torchvision only for its dataset helpers; the only torchvision wheel here is a
# CUDA build, so NNCodec is installed without its dependencies and the ones it needs are
# installed by name, with a stub `torchvision` (benchmarks/nncodec/stub/) put on the
# venv's path through a .pth file.
#
# Idempotent: rerunning it only installs what is missing.  Takes a few minutes the first
# time (the DeepCABAC extension compiles).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
py="${PYTHON:-python3.11}"

if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv"
fi
vpy="$venv/bin/python"
pip=("$vpy" -m pip install --disable-pip-version-check)

# PyTorch CPU build: an unpinned torch pulls gigabytes of CUDA packages.
if ! "$vpy" -c "import torch; assert torch.__version__.startswith('2.13.0')" 2>/dev/null; then
    "${pip[@]}" "torch==2.13.0"
fi

# NNCodec's runtime needs, minus torchvision (stubbed) and with the headless OpenCV
# (cv2 is imported by nncodec's transforms module; the GUI build needs libGL).
"${pip[@]}" "numpy<2" safetensors "Click>=7.0" "scikit-learn>=0.23.1" "tqdm>=4.32.2" \
    "h5py>=3.1.0" "pybind11>=2.6.2" "pandas>=1.0.5" opencv-python-headless "ptflops>=0.7" \
    "torchmetrics>=0.11.4" "torch==2.13.0"

if ! "$vpy" -c "import importlib.metadata as m; m.version('nncodec')" 2>/dev/null; then
    "${pip[@]}" --no-deps nncodec
fi

# The stub torchvision goes on the venv's path.
site="$("$vpy" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$here/stub" > "$site/ratedist_nncodec_stub.pth"

"$vpy" -c "import nncodec, importlib.metadata as m; print('nncodec', m.version('nncodec'), 'ready in', '$venv')"

#!/usr/bin/env bash
# The GPU check as one command on a lent GPU machine (issue 20): install multiseg on top of the torch
# that is already there, then run benchmarks/gpu_check.py with its results in OUT.
#   bash benchmarks/gpu_check.sh [OUT] [gpu_check.py options]      (OUT defaults to $OUT, else gpu_check_out)
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-gpu_check_out}}"
[ $# -gt 0 ] && shift
python3 -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'GPU:', torch.cuda.is_available())"
# Never a second torch: no dependencies and no build isolation (the GPU machine has no network); if
# even that fails, run from the source tree.
if ! python3 -m pip install -q --no-deps --no-build-isolation -e . ; then
    echo "gpu_check: pip install failed; running from the source tree" >&2
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
python3 - <<'PY'
import importlib.util
need = ["numpy", "cv2", "PIL", "yaml", "tqdm", "matplotlib", "tensorboard", "onnx", "onnxscript", "onnxruntime"]
missing = [m for m in need if importlib.util.find_spec(m) is None]
print("gpu_check: missing packages:", ", ".join(missing) if missing else "none")
PY
PYTHONUNBUFFERED=1 exec python3 benchmarks/gpu_check.py --out "$out" "$@"

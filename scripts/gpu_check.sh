#!/usr/bin/env bash
# One command for a GPU (issue #21): scripts/gpu_check.py's steps, about 5 minutes on one H100/H200.
#
#   scripts/gpu_check.sh             # on the GPU machine: reports/gpu.md, bench_bf16_cuda.md, gpu_panx/
#   scripts/gpu_check.sh --dry-run   # the same steps on the CPU at tiny sizes, into runs/gpu_check_dry_run
#
# Options and steps: python scripts/gpu_check.py --help. This wrapper only installs seqeval from
# .gpu/wheels where the GPU machine lacks it (it has no index to install from).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false  # nlu without an install
if [ -d .gpu/wheels ] && ! "$python" -c "import seqeval" 2>/dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/gpu-check-site .gpu/wheels/*
  export PYTHONPATH="/tmp/gpu-check-site${PYTHONPATH:+:$PYTHONPATH}"
fi
exec "$python" scripts/gpu_check.py --command "scripts/gpu_check.sh${*:+ $*}" "$@"

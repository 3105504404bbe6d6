#!/usr/bin/env bash
# One command for a GPU (issue #21): about 5 minutes on one H100/H200, at most 8.
#
#   scripts/gpu_check.sh                      # on the GPU machine: writes reports/gpu.md and gpu.json
#   scripts/gpu_check.sh --dry-run --out DIR  # the same steps on the CPU at tiny sizes, in seconds (CI runs this)
#
# Steps, each leaving its JSON in the work folder that reports/gpu.md is rendered from:
#   1. the tests of the code that behaves differently on a GPU (hardware choice, the model's layouts and
#      host syncs, attention, dropout); with CUDA present, the CUDA tests in them run too;
#   2. parity with transformers on the GPU: fp32 with TF32 off (max |difference| <= 1e-5) and both sides
#      under bf16 autocast (within 5e-2 of the largest output; see scripts/gpu_check.py);
#   3. scripts/bench.py at BERT-base in bf16, model-FLOP utilisation against the GPU's bf16 dense peak;
#   4. PAN-X-style NER (tasks/panx_de.yaml: GermEval 2014 sentences mapped to PER/ORG/LOC) fine-tuned by
#      nlu and by transformers' Trainer on the same GPU, same precision (bf16 where the GPU has it).
# Options: --checkpoint DIR (default: multilingual-e5-small, else all-MiniLM-L6-v2, from $NLU_CACHE/models
# or .gpu/models), --data FILE (a CoNLL file to draw the NER splits from; default
# ../shared/data/ner-multilingual/de/dev.txt, else .gpu/ner/de/dev.txt), --out DIR (default reports).
# The GPU machine has no hub and no seqeval: copy what step 4 needs into .gpu/ (ignored by git, carried):
#   .gpu/models/all-MiniLM-L6-v2 (the model folder), .gpu/ner/de/dev.txt, .gpu/wheels/seqeval-*.tar.gz
#   (pip download --no-deps seqeval==1.2.2 -d .gpu/wheels).
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=0 out=reports checkpoint="" data="" given="$*"
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --out) out="$2"; shift ;;
    --checkpoint) checkpoint="$2"; shift ;;
    --data) data="$2"; shift ;;
    *) echo "gpu_check.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
command_line="scripts/gpu_check.sh${given:+ $given}"

python=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
if [ -d .gpu/wheels ] && ! "$python" -c "import seqeval" 2>/dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/gpu-check-site .gpu/wheels/*
  export PYTHONPATH="/tmp/gpu-check-site:$PYTHONPATH"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

if [ "$dry_run" = 1 ]; then
  device=cpu config=tiny steps=2 sentences="16 16 32" epochs=1
  tests=(tests/test_hardware.py)
  data=${data:-data/ner/wnut16/train.conll}
  checkpoint=${checkpoint:-$("$python" scripts/gpu_check.py tiny-checkpoint --out "$work/tiny-bert" --data "$data")}
else
  "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check.sh: torch sees no GPU (use --dry-run)')"
  device=cuda config=base steps=10 sentences="2000 200 1000" epochs=3
  tests=(tests/test_hardware.py tests/test_model.py tests/test_attention.py)
  cache=${NLU_CACHE:-$HOME/.cache/nlu}
  for name in multilingual-e5-small all-MiniLM-L6-v2; do
    for root in "$cache/models" .gpu/models; do
      if [ -z "$checkpoint" ] && [ -f "$root/$name/config.json" ]; then checkpoint="$root/$name"; fi
    done
  done
  for file in ../shared/data/ner-multilingual/de/dev.txt .gpu/ner/de/dev.txt; do
    if [ -z "$data" ] && [ -f "$file" ]; then data="$file"; fi
  done
fi

echo "== 1. tests: ${tests[*]}"
status=0
"$python" -m pytest -q -x -p no:cacheprovider "${tests[@]}" || status=$?
printf '{"command": "python -m pytest -q -x %s", "status": %d}\n' "${tests[*]}" "$status" >"$work/tests.json"

echo "== 2. parity on $device"
"$python" scripts/gpu_check.py parity --device "$device" --out "$work" || status=1

echo "== 3. bench: $config, bf16, $device"
"$python" scripts/bench.py --device "$device" --precision bf16 --configs "$config" --sections pretraining \
  --steps "$steps" --warmup 2 --no-memory --out "$work" >"$work/bench.log" || status=1

echo "== 4. NER fine-tuning: nlu vs Trainer ($checkpoint, $data)"
if [ -n "$checkpoint" ] && [ -n "$data" ]; then
  # shellcheck disable=SC2086
  "$python" scripts/gpu_check.py ner --device "$device" --checkpoint "$checkpoint" --data "$data" \
    --sentences $sentences --epochs "$epochs" --out "$work" >"$work/ner.log" || status=1
else
  echo "skipped: no checkpoint or NER data found (see the options above)"
fi

report_flags=(--work "$work" --out "$out" --command "$command_line")
[ "$dry_run" = 1 ] && report_flags+=(--dry-run)
"$python" scripts/gpu_check.py report "${report_flags[@]}"
exit "$status"

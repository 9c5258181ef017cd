#!/usr/bin/env bash
# Re-makes models/default (issue 8) from the BF16 training output: ModelOpt NVFP4 of every
# linear but the excluded ones, input_scale calibrated on training text
# (tools/default_model/calibration_text.txt, made by calibration_text.py; never held-out
# text), tokenizer and generation config copied by quantize. Then checks it: held-out
# perplexity and a greedy sample, both quoted in docs/DEFAULT_MODEL.md.
# Usage: tools/ship_default_model.sh [BF16_MODEL_DIR]   (default /work/default-model-artifacts/model)
set -euo pipefail
cd "$(dirname "$0")/.."
source_dir="${1:-/work/default-model-artifacts/model}"
fp4serve=build/bin/fp4serve
[ -x "$fp4serve" ] || scripts/build
staging="$(mktemp -d)/default"
"$fp4serve" quantize "$source_dir" "$staging" --to nvfp4 --nvfp4-scope linears \
    --calibrate-tokens tools/default_model/calibration_text.txt --calibrate-window 512 --show 5
rm -rf models/default
mv "$staging" models/default
du -sh models/default
"$fp4serve" bench perplexity models/default --tokens tools/default_model/heldout_tokens.u16 --window 512
"$fp4serve" generate models/default --prompt "The history of" --max-tokens 48 --temperature 0

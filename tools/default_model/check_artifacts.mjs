// Checks the default model's files against two tokenizer implementations that
// share no code path with the Python run that wrote them:
//   tokenizers (npm, HF's Rust core through napi-rs)  and
//   @huggingface/tokenizers (npm, pure JavaScript).
// Both must load tokenizer.json, map every DeepSeek-V4 special token to its
// single id, tokenize a rendered chat turn as the chat format expects, decode
// without loss, and reproduce heldout_tokens.u16 exactly from the held-out
// documents (BOS + document + EOS each). Exits non-zero on the first miss.
//
// Usage: node check_artifacts.mjs ARTIFACTS_DIR PREPARED_INPUTS_DIR
//   (with both packages resolvable, e.g. NODE_PATH=/some/node_modules)
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";

const require = createRequire(import.meta.url);
const [artifacts, inputs] = process.argv.slice(2);
if (!artifacts || !inputs) {
  console.error("usage: node check_artifacts.mjs ARTIFACTS_DIR PREPARED_INPUTS_DIR");
  process.exit(2);
}

let failures = 0;
let passes = 0;
function check(condition, what) {
  if (condition) {
    passes += 1;
  } else {
    failures += 1;
    console.error(`FAIL: ${what}`);
  }
}
function sameIds(a, b) {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

const modelDir = path.join(artifacts, "model");
const tokenizerPath = path.join(modelDir, "tokenizer.json");
const tokenizerJson = JSON.parse(fs.readFileSync(tokenizerPath, "utf8"));
const tokenizerConfig = JSON.parse(fs.readFileSync(path.join(modelDir, "tokenizer_config.json"), "utf8"));
const config = JSON.parse(fs.readFileSync(path.join(modelDir, "config.json"), "utf8"));
const spec = JSON.parse(fs.readFileSync(path.join(inputs, "tokenizer_spec.json"), "utf8"));
const documents = zlib.gunzipSync(fs.readFileSync(path.join(inputs, "corpus.jsonl.gz")))
  .toString("utf8").split("\n").filter((l) => l).map((l) => JSON.parse(l));
const heldoutBytes = fs.readFileSync(path.join(artifacts, "heldout", "heldout_tokens.u16"));
const heldout = Array.from(new Uint16Array(heldoutBytes.buffer, heldoutBytes.byteOffset, heldoutBytes.length / 2));
const testTexts = documents.filter((d) => d.split === "test").map((d) => d.text);

// The file's own layout: DeepSeek's sections verbatim, specials as added tokens.
for (const section of ["normalizer", "pre_tokenizer", "post_processor", "decoder"]) {
  check(JSON.stringify(tokenizerJson[section]) === JSON.stringify(spec[section]), `${section} is DeepSeek's`);
}
spec.special_tokens.forEach((token, id) => {
  const added = tokenizerJson.added_tokens.find((t) => t.content === token);
  check(added && added.id === id && added.special && !added.normalized, `added token ${token} = id ${id}`);
});
check(Object.keys(tokenizerJson.model.vocab).length === config.vocab_size, "config vocab_size = BPE vocabulary size");
check(config.bos_token_id === 0 && config.eos_token_id === 1, "config BOS 0 / EOS 1");
check(tokenizerConfig.add_bos_token === true && tokenizerConfig.bos_token === spec.special_tokens[0], "tokenizer_config: BOS on plain prompts, as in training");

const chat = `${spec.special_tokens[0]}<｜User｜>Hello there.<｜Assistant｜></think>Hi.${spec.special_tokens[1]}`;

async function checkImplementation(name, encode, decode) {
  spec.special_tokens.forEach((token, id) => {
    const ids = encode(`x${token}y`);
    check(ids.filter((i) => i === id).length === 1 && ids.length === 3, `${name}: ${token} is one token (${ids})`);
  });
  const chatIds = encode(chat);
  check(chatIds[0] === 0 && chatIds[1] === 3 && chatIds.includes(4) && chatIds.includes(6) &&
        chatIds[chatIds.length - 1] === 1, `${name}: chat turn tokenizes with the special ids (${chatIds})`);
  const stream = [];
  for (const text of testTexts) {
    const ids = encode(text);
    check((await decode(ids)) === text, `${name}: decode(encode(text)) == text`);
    stream.push(0, ...ids, 1);
  }
  check(sameIds(stream, heldout), `${name}: heldout_tokens.u16 reproduced (${stream.length} vs ${heldout.length})`);
}

const rust = require("tokenizers");
const rustTokenizer = rust.Tokenizer.fromFile(tokenizerPath);
check(rustTokenizer.getVocabSize(true) === config.vocab_size, "Rust: vocab size = config.vocab_size");
const rustEncodings = new Map();
for (const text of [...testTexts, chat, ...spec.special_tokens.map((t) => `x${t}y`)]) {
  rustEncodings.set(text, (await rustTokenizer.encode(text, null, { addSpecialTokens: false })).getIds());
}
await checkImplementation("Rust", (t) => rustEncodings.get(t), (ids) => rustTokenizer.decode(ids, false));

const js = require("@huggingface/tokenizers");
const jsTokenizer = new js.Tokenizer(tokenizerJson, tokenizerConfig);
await checkImplementation("JS", (t) => jsTokenizer.encode(t, { add_special_tokens: false }).ids,
  async (ids) => jsTokenizer.decode(ids, { skip_special_tokens: false }));

console.log(`${passes} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);

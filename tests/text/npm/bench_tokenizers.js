// Tokenizer throughput, fp4serve beside Hugging Face `tokenizers` (native), in
// one run on one machine, on the same tokenizer.json and corpus.
// Usage: node bench_tokenizers.js FP4SERVE_BINARY TOKENIZER_JSON CORPUS [THREADS]
//   CORPUS: .jsonl (one JSON string per line) or a text file (one string per line).
"use strict";
const fs = require("fs");
const os = require("os");
const { execFileSync } = require("child_process");

function readCorpus(path) {
  const lines = fs.readFileSync(path, "utf8").split("\n");
  if (path.endsWith(".jsonl")) return lines.filter((l) => l.length).map((l) => JSON.parse(l));
  if (lines[lines.length - 1] === "") lines.pop();
  return lines.map((l) => l + "\n");
}

// Runs in a child process so that RAYON_NUM_THREADS takes effect before the native pool starts.
async function measureTokenizers(tokenizerPath, corpusPath, repeat) {
  const { Tokenizer } = require("tokenizers");
  const corpus = readCorpus(corpusPath);
  const bytes = corpus.reduce((n, s) => n + Buffer.byteLength(s), 0);
  let best = Infinity;
  let tokens = 0;
  for (let pass = 0; pass < repeat; pass++) {
    const tokenizer = Tokenizer.fromFile(tokenizerPath); // cold cache each pass, like fp4serve's bench
    const start = process.hrtime.bigint();
    const encodings = await tokenizer.encodeBatch(corpus, { addSpecialTokens: false });
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    tokens = encodings.reduce((n, e) => n + e.getIds().length, 0);
    best = Math.min(best, seconds);
  }
  return { threads: process.env.RAYON_NUM_THREADS || "all", bytes, tokens, mb_s: bytes / best / 1e6, tokens_s: tokens / best };
}

async function main() {
  if (process.argv[2] === "--child") {
    const result = await measureTokenizers(process.argv[3], process.argv[4], 3);
    process.stdout.write(JSON.stringify(result));
    return;
  }
  const [binary, tokenizerPath, corpusPath] = process.argv.slice(2, 5);
  if (!corpusPath) throw new Error("usage: node bench_tokenizers.js FP4SERVE_BINARY TOKENIZER_JSON CORPUS [THREADS]");
  const threads = Number(process.argv[5] || os.cpus().length);
  const child = (env) =>
    JSON.parse(execFileSync(process.execPath, [__filename, "--child", tokenizerPath, corpusPath], { env: { ...process.env, ...env } }).toString());
  const hfSingle = child({ RAYON_NUM_THREADS: "1" });
  const hfParallel = child({ RAYON_NUM_THREADS: String(threads) });
  const ours = JSON.parse(
    execFileSync(binary, ["bench", "tokenizer", "--tokenizer", tokenizerPath, "--corpus", corpusPath, "--threads", String(threads)]).toString());
  if (ours.tokens !== hfSingle.tokens) console.log(`WARNING: token counts differ: fp4serve ${ours.tokens}, tokenizers ${hfSingle.tokens}`);
  const row = (name, t, mb, tok) => console.log(`| ${name} | ${t} | ${mb.toFixed(1)} | ${(tok / 1e6).toFixed(2)} |`);
  console.log(`corpus ${corpusPath}: ${ours.strings} strings, ${ours.bytes} bytes, ${ours.tokens} tokens; ${os.cpus()[0].model}`);
  console.log("| implementation | threads | MB/s | Mtokens/s |\n|---|---|---|---|");
  row("tokenizers 0.23.2 (encodeBatch)", 1, hfSingle.mb_s, hfSingle.tokens_s);
  row("fp4serve", 1, ours.single_thread_mb_s, ours.single_thread_tokens_s);
  row("tokenizers 0.23.2 (encodeBatch)", threads, hfParallel.mb_s, hfParallel.tokens_s);
  row("fp4serve", threads, ours.parallel_mb_s, ours.parallel_tokens_s);
  console.log(`fp4serve tokenizer.json load: ${ours.load_s.toFixed(2)} s`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

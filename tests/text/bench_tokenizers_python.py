"""Tokenizer throughput, fp4serve beside Hugging Face `tokenizers` (Python
binding of the same Rust library), for machines that have Python but no node.
Usage: python3 bench_tokenizers_python.py FP4SERVE_BINARY TOKENIZER_JSON CORPUS [THREADS]
CORPUS: .jsonl (one JSON string per line) or a text file (one string per line)."""
import json
import os
import subprocess
import sys
import time


def read_corpus(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if path.endswith(".jsonl"):
        return [json.loads(line) for line in lines if line]
    if lines and lines[-1] == "":
        lines.pop()
    return [line + "\n" for line in lines]


def child(tokenizer_path, corpus_path):
    import tokenizers

    corpus = read_corpus(corpus_path)
    size = sum(len(s.encode("utf-8")) for s in corpus)
    best, tokens = float("inf"), 0
    for _ in range(3):
        tokenizer = tokenizers.Tokenizer.from_file(tokenizer_path)  # cold cache each pass
        start = time.perf_counter()
        encodings = tokenizer.encode_batch(corpus, add_special_tokens=False)
        best = min(best, time.perf_counter() - start)
        tokens = sum(len(e.ids) for e in encodings)
    print(json.dumps({"version": tokenizers.__version__, "bytes": size, "tokens": tokens,
                      "mb_s": size / best / 1e6, "tokens_s": tokens / best}))


def main():
    if sys.argv[1] == "--child":
        return child(sys.argv[2], sys.argv[3])
    binary, tokenizer_path, corpus_path = sys.argv[1:4]
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else os.cpu_count()

    def run_hf(n):
        env = dict(os.environ, RAYON_NUM_THREADS=str(n))
        out = subprocess.run([sys.executable, __file__, "--child", tokenizer_path, corpus_path],
                             env=env, check=True, capture_output=True, text=True).stdout
        return json.loads(out)

    hf1, hfn = run_hf(1), run_hf(threads)
    ours = json.loads(subprocess.run([binary, "bench", "tokenizer", "--tokenizer", tokenizer_path, "--corpus",
                                      corpus_path, "--threads", str(threads)],
                                     check=True, capture_output=True, text=True).stdout)
    if ours["tokens"] != hf1["tokens"]:
        print(f"WARNING: token counts differ: fp4serve {ours['tokens']}, tokenizers {hf1['tokens']}")
    print(f"corpus {corpus_path}: {ours['strings']} strings, {ours['bytes']} bytes, {ours['tokens']} tokens")
    print("| implementation | threads | MB/s | Mtokens/s |\n|---|---|---|---|")
    name = f"tokenizers {hf1['version']} (Python, encode_batch)"
    for label, n, mb, tok in [(name, 1, hf1["mb_s"], hf1["tokens_s"]),
                              ("fp4serve", 1, ours["single_thread_mb_s"], ours["single_thread_tokens_s"]),
                              (name, threads, hfn["mb_s"], hfn["tokens_s"]),
                              ("fp4serve", threads, ours["parallel_mb_s"], ours["parallel_tokens_s"])]:
        print(f"| {label} | {n} | {mb:.1f} | {tok / 1e6:.2f} |")
    print(f"fp4serve tokenizer.json load: {ours['load_s']:.2f} s")


if __name__ == "__main__":
    main()

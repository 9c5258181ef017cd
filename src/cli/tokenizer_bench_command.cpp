// `fp4serve bench tokenizer`: encode throughput on a corpus, one thread and
// several. tests/text/npm/bench_tokenizers.js runs it beside Hugging Face
// `tokenizers` on the same tokenizer.json and corpus.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/error.h"
#include "cli/command.h"
#include "text/tokenizer.h"

namespace fp4serve::cli {
namespace {

// A .jsonl corpus holds one JSON string per line; any other file is split into lines.
std::vector<std::string> read_corpus(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path);
  std::vector<std::string> strings;
  const bool jsonl = path.size() > 6 && path.compare(path.size() - 6, 6, ".jsonl") == 0;
  for (std::string line; std::getline(in, line);) {
    if (jsonl) {
      strings.push_back(nlohmann::json::parse(line).get<std::string>());
    } else {
      strings.push_back(line + "\n");
    }
  }
  return strings;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

const RegisterBenchmark benchmark{Command{
    "tokenizer", "Tokenizer encode throughput (MB/s, tokens/s) on a corpus",
    [](CLI::App& sub) -> std::function<int()> {
      auto tokenizer_path = std::make_shared<std::string>();
      auto corpus_path = std::make_shared<std::string>();
      auto threads = std::make_shared<unsigned>(std::max(1u, std::thread::hardware_concurrency()));
      auto repeat = std::make_shared<int>(3);
      sub.add_option("--tokenizer", *tokenizer_path, "tokenizer.json")->required();
      sub.add_option("--corpus", *corpus_path, ".jsonl (one JSON string per line) or a text file (one string per line)")
          ->required();
      sub.add_option("--threads", *threads, "Threads for the parallel run");
      sub.add_option("--repeat", *repeat, "Timed passes (the best is reported)");
      return [=] {
        auto start = std::chrono::steady_clock::now();
        const auto tokenizer = text::Tokenizer::from_file(*tokenizer_path);
        const double load_s = seconds_since(start);
        const auto corpus = read_corpus(*corpus_path);
        size_t bytes = 0;
        for (const auto& s : corpus) bytes += s.size();

        // Each pass starts cold, as if on a fresh server: the word cache is part of the cost.
        size_t tokens = 0;
        double single_s = 1e30, parallel_s = 1e30;
        for (int pass = 0; pass < *repeat; ++pass) {
          const auto fresh = text::Tokenizer::from_file(*tokenizer_path);
          start = std::chrono::steady_clock::now();
          tokens = 0;
          for (const auto& s : corpus) tokens += fresh.encode(s).size();
          single_s = std::min(single_s, seconds_since(start));
        }
        for (int pass = 0; pass < *repeat; ++pass) {
          const auto fresh = text::Tokenizer::from_file(*tokenizer_path);
          start = std::chrono::steady_clock::now();
          std::vector<std::thread> workers;
          for (unsigned t = 0; t < *threads; ++t) {
            workers.emplace_back([&, t] {
              for (size_t i = t; i < corpus.size(); i += *threads) fresh.encode(corpus[i]);
            });
          }
          for (auto& w : workers) w.join();
          parallel_s = std::min(parallel_s, seconds_since(start));
        }
        const nlohmann::json report = {{"implementation", "fp4serve"},
                                       {"strings", corpus.size()},
                                       {"bytes", bytes},
                                       {"tokens", tokens},
                                       {"load_s", load_s},
                                       {"threads", *threads},
                                       {"single_thread_mb_s", bytes / single_s / 1e6},
                                       {"single_thread_tokens_s", tokens / single_s},
                                       {"parallel_mb_s", bytes / parallel_s / 1e6},
                                       {"parallel_tokens_s", tokens / parallel_s}};
        std::printf("%s\n", report.dump().c_str());
        return 0;
      };
    }}};

}  // namespace
}  // namespace fp4serve::cli

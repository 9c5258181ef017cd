// `fp4serve bench NAME`: groups the registered benchmarks under one subcommand.
#include <algorithm>
#include <memory>

#include "cli/command.h"

namespace fp4serve::cli {

std::vector<Command>& benchmark_registry() {
  static std::vector<Command> benchmarks;
  return benchmarks;
}

namespace {

const RegisterCommand bench{Command{
    "bench", "Benchmarks (io, decode, kernels, serve), each beside its physical reference",
    [](CLI::App& sub) -> std::function<int()> {
      sub.require_subcommand(1);
      auto chosen = std::make_shared<std::function<int()>>();
      auto& benchmarks = benchmark_registry();
      std::sort(benchmarks.begin(), benchmarks.end(), [](auto& a, auto& b) { return a.name < b.name; });
      for (auto& b : benchmarks) {
        CLI::App* leaf = sub.add_subcommand(b.name, b.help);
        auto run = std::make_shared<std::function<int()>>(b.setup(*leaf));
        leaf->callback([chosen, run] { *chosen = *run; });
      }
      return [chosen] { return (*chosen)(); };
    }}};

}  // namespace
}  // namespace fp4serve::cli

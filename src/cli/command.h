// Subcommands register themselves with the CLI at static-initialization time,
// so adding one is adding one file: no central list to edit.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace fp4serve::cli {

struct Command {
  std::string name;
  std::string help;
  // Adds the subcommand's options to `sub` and returns the action to run when it is chosen.
  std::function<std::function<int()>(CLI::App& sub)> setup;
};

std::vector<Command>& command_registry();

// `fp4serve bench NAME ...`: each benchmark (io, decode, kernels, serve) registers here.
std::vector<Command>& benchmark_registry();

struct RegisterCommand {
  explicit RegisterCommand(Command command) { command_registry().push_back(std::move(command)); }
};

struct RegisterBenchmark {
  explicit RegisterBenchmark(Command command) { benchmark_registry().push_back(std::move(command)); }
};

}  // namespace fp4serve::cli

// fp4serve entry point: builds the CLI from the registered subcommands.
#include <algorithm>
#include <cstdio>
#include <memory>

#include "base/error.h"
#include "base/version.h"
#include "cli/command.h"

namespace fp4serve::cli {

std::vector<Command>& command_registry() {
  static std::vector<Command> commands;
  return commands;
}

}  // namespace fp4serve::cli

int main(int argc, char** argv) {
  using namespace fp4serve;
  CLI::App app{"fp4serve: DeepSeek-V4 inference server (FP4/FP8 checkpoints as shipped, CPU and Hopper)"};
  app.require_subcommand(0, 1);
  bool show_version = false;
  app.add_flag("--version", show_version, "Print version, git commit and compiled-in CUDA target");

  auto& commands = cli::command_registry();
  std::sort(commands.begin(), commands.end(), [](auto& a, auto& b) { return a.name < b.name; });
  std::function<int()> action;
  for (auto& command : commands) {
    CLI::App* sub = app.add_subcommand(command.name, command.help);
    auto run = std::make_shared<std::function<int()>>(command.setup(*sub));
    sub->callback([&action, run] { action = *run; });
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (show_version) {
    std::printf("%s\n", version_string().c_str());
    return 0;
  }
  if (!action) {
    std::printf("%s", app.help().c_str());
    return 0;
  }
  try {
    return action();
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "internal error: %s\n", e.what());
    return 2;
  }
}

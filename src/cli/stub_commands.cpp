// Subcommands whose issue has not landed yet. Each prints that it is not yet
// available and exits non-zero; the line goes when the real command lands.
#include <cstdio>

#include "cli/command.h"

namespace fp4serve::cli {
namespace {

Command stub(const char* name, const char* help, const char* issue) {
  return Command{name, help, [name, issue](CLI::App& sub) -> std::function<int()> {
                   sub.allow_extras();
                   return [name, issue] {
                     std::fprintf(stderr, "fp4serve %s: not yet available (%s)\n", name, issue);
                     return 3;
                   };
                 }};
}

const RegisterCommand stubs[] = {
    RegisterCommand(stub("serve", "OpenAI-compatible HTTP server", "issue 6")),
};

}  // namespace
}  // namespace fp4serve::cli

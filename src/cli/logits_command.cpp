// `fp4serve logits MODEL_DIR --tokens 1,2,3 --out FILE.safetensors [--decode] [--act-quant off|fp8|auto]
// [--device cpu|cuda|auto]`:
// the F32 logits [S, V] of every position, from one prefill or (--decode) fed one
// token at a time. The parity fixtures' consumers compare against this file.
#include <cstdio>
#include <cstring>
#include <memory>

#include "base/error.h"
#include "cli/command.h"
#include "cli/engine_flags.h"
#include "io/safetensors.h"
#include "runtime/engine.h"
#include "runtime/token_list.h"

namespace fp4serve::cli {
namespace {

struct LogitsArgs {
  std::string model_dir, tokens, out;
  EngineFlags engine;
  bool decode = false;
};

int run_logits(const LogitsArgs& a) {
  const std::vector<int32_t> tokens = parse_token_list(a.tokens);
  EngineOptions options;
  a.engine.apply(options);
  options.reserve_tokens = static_cast<int64_t>(tokens.size());
  auto engine = Engine::open(a.model_dir, options);
  constexpr SequenceId kSequence = 0;
  engine->create_sequence(kSequence);
  std::vector<float> logits;
  const size_t step = a.decode ? 1 : tokens.size();
  for (size_t at = 0; at < tokens.size(); at += step) {
    const StepItem item{kSequence, static_cast<int64_t>(at),
                        std::span<const int32_t>(tokens.data() + at, std::min(step, tokens.size() - at)), LogitsMode::kAll};
    engine->step(std::span<const StepItem>(&item, 1), logits);
  }
  const int64_t V = engine->config().vocab_size, S = static_cast<int64_t>(tokens.size());
  TensorView t = make_owned_tensor(DType::F32, {S, V}, "logits");
  std::memcpy(mutable_data(t), logits.data(), logits.size() * sizeof(float));
  write_safetensors(a.out, {NamedTensor{"logits", t}});
  std::fprintf(stderr, "wrote logits [%lld, %lld] to %s\n", static_cast<long long>(S), static_cast<long long>(V), a.out.c_str());
  return 0;
}

const RegisterCommand logits_command{Command{
    "logits", "Write per-position logits to safetensors", [](CLI::App& sub) -> std::function<int()> {
      auto a = std::make_shared<LogitsArgs>();
      sub.add_option("model_dir", a->model_dir, "Checkpoint directory")->required();
      sub.add_option("--tokens", a->tokens, "Comma-separated token ids")->required();
      sub.add_option("--out", a->out, "Output .safetensors file (tensor 'logits', F32 [S, V])")->required();
      sub.add_flag("--decode", a->decode, "Feed the tokens one at a time instead of one prefill");
      a->engine.add_to(sub);
      return [a] { return run_logits(*a); };
    }}};

}  // namespace
}  // namespace fp4serve::cli

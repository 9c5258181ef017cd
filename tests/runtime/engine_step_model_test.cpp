// The real model behind the scheduler's interface (runtime::EngineStepModel),
// on the default model of the repository. The reference for every logit is
// runtime::Engine driven directly, one sequence at a time with its whole prompt
// in one step: batching sequences together and chunking prompts must not change
// a single bit.
#include "runtime/engine_step_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "base/error.h"

#ifdef __SANITIZE_ADDRESS__
// AddressSanitizer's allocator replaces malloc's; its runtime exports this count
// (GCC ships no header declaring it).
extern "C" size_t __sanitizer_get_current_allocated_bytes();
#else
#include <malloc.h>
#endif

namespace fp4serve::runtime {
namespace {

const std::string kModelDir = FP4SERVE_SOURCE_DIR "/models/default";

// Bytes the process has allocated on the heap right now, as the allocator counts them.
size_t heap_in_use() {
#ifdef __SANITIZE_ADDRESS__
  return __sanitizer_get_current_allocated_bytes();
#else
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
#endif
}

std::unique_ptr<EngineStepModel> open_default(int64_t max_context) {
  EngineModelOptions o;
  o.max_context = max_context;
  o.show_progress = false;
  return EngineStepModel::open(kModelDir, o);
}

std::vector<int32_t> random_tokens(std::mt19937& rng, size_t n, int vocab) {
  std::vector<int32_t> t(n);
  for (auto& x : t) x = 2 + static_cast<int32_t>(rng() % static_cast<unsigned>(vocab - 2));
  return t;
}

int32_t argmax(std::span<const float> row) {
  return static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
}

// Reference: one sequence alone on a separate Engine, whole prompt in one
// step, then `decode` greedy tokens one step each. Returns the logits of the
// prompt's end and of every decode step, concatenated.
std::vector<float> engine_alone(const std::vector<int32_t>& prompt, int decode, int64_t reserve) {
  EngineOptions o;
  o.reserve_tokens = reserve;
  o.show_progress = false;
  auto engine = Engine::open(kModelDir, o);
  const size_t V = static_cast<size_t>(engine->config().vocab_size);
  constexpr SequenceId kSequence = 0;
  engine->create_sequence(kSequence);
  std::vector<float> all, logits;
  StepItem r{kSequence, 0, prompt, LogitsMode::kLast};
  engine->step(std::span<const StepItem>(&r, 1), logits);
  all.insert(all.end(), logits.begin(), logits.end());
  for (int i = 0; i < decode; ++i) {
    const int32_t next = argmax(std::span<const float>(logits.data(), V));
    logits.clear();
    r = StepItem{kSequence, engine->position(kSequence), std::span<const int32_t>(&next, 1), LogitsMode::kLast};
    engine->step(std::span<const StepItem>(&r, 1), logits);
    all.insert(all.end(), logits.begin(), logits.end());
  }
  return all;
}

TEST(EngineStepModel, BatchedChunkedStepsEqualEachSequenceAlone) {
  constexpr int kSequences = 6, kDecode = 12;
  auto model = open_default(512);
  const int vocab = model->vocab_size();
  ASSERT_EQ(vocab, 8192);
  std::mt19937 rng(11);
  std::vector<std::vector<int32_t>> prompts;
  for (int s = 0; s < kSequences; ++s) prompts.push_back(random_tokens(rng, 1 + (s * 37) % 90, vocab));

  // Prompts go in chunks of 1..23 tokens; a sequence starts decoding as soon as
  // its prompt is in, alongside the other sequences' chunks.
  struct Live {
    std::vector<int32_t> fed;  // tokens given to the model so far
    size_t prefilled = 0;
    std::vector<float> logits;  // the rows that were wanted, in order
  };
  std::vector<Live> live(kSequences);
  for (int s = 0; s < kSequences; ++s) model->create_sequence(100 + s);
  std::vector<float> logits;
  for (int round = 0;; ++round) {
    std::vector<StepItem> work;
    std::vector<int> owner;
    std::vector<int32_t> decode_tokens(kSequences);
    for (int s = 0; s < kSequences; ++s) {
      Live& l = live[s];
      const auto& p = prompts[s];
      StepItem w;
      w.sequence = 100 + s;
      w.position = static_cast<int64_t>(l.fed.size());
      if (l.prefilled < p.size()) {
        const size_t chunk = std::min(p.size() - l.prefilled, 1 + (static_cast<size_t>(round) * 7 + s * 5) % 23);
        w.tokens = std::span<const int32_t>(p.data() + l.prefilled, chunk);
        w.logits = l.prefilled + chunk == p.size() ? LogitsMode::kLast : LogitsMode::kNone;
      } else if (static_cast<int>(l.logits.size() / vocab) <= kDecode) {
        decode_tokens[s] = argmax(std::span<const float>(l.logits.data() + l.logits.size() - vocab, vocab));
        w.tokens = std::span<const int32_t>(&decode_tokens[s], 1);
      } else {
        continue;
      }
      work.push_back(w);
      owner.push_back(s);
    }
    if (work.empty()) break;
    logits.assign(work.size() * vocab, NAN);
    model->step(work, logits);
    for (size_t i = 0; i < work.size(); ++i) {
      Live& l = live[owner[i]];
      l.fed.insert(l.fed.end(), work[i].tokens.begin(), work[i].tokens.end());
      if (l.prefilled < prompts[owner[i]].size()) l.prefilled += work[i].tokens.size();
      if (work[i].logits != LogitsMode::kNone) l.logits.insert(l.logits.end(), logits.begin() + i * vocab, logits.begin() + (i + 1) * vocab);
    }
  }
  for (int s = 0; s < kSequences; ++s) {
    const std::vector<float> reference = engine_alone(prompts[s], kDecode, 512);
    ASSERT_EQ(live[s].logits.size(), reference.size()) << "sequence " << s;
    EXPECT_TRUE(live[s].logits == reference) << "sequence " << s << " (prompt of " << prompts[s].size()
                                             << " tokens): batched logits differ from the sequence alone";
    model->free_sequence(100 + s);
  }
}

TEST(EngineStepModel, UnwantedLogitsLeaveTheirRowsUntouched) {
  auto model = open_default(64);
  const int vocab = model->vocab_size();
  model->create_sequence(1);
  model->create_sequence(2);
  const std::vector<int32_t> a{5, 6, 7}, b{8, 9};
  const StepItem work[] = {{1, 0, a, LogitsMode::kNone}, {2, 0, b, LogitsMode::kLast}};
  std::vector<float> logits(2 * vocab, 12345.0f);
  model->step(work, logits);
  for (int v = 0; v < vocab; ++v) ASSERT_EQ(logits[v], 12345.0f) << "row of an item without logits, token " << v;
  EXPECT_EQ(std::vector<float>(logits.begin() + vocab, logits.end()), engine_alone(b, 0, 64));
}

TEST(EngineStepModel, RejectsBrokenContractsNamingTheCulprit) {
  auto model = open_default(16);
  EXPECT_EQ(model->max_context(), 16);
  model->create_sequence(3);
  std::vector<float> logits(2 * model->vocab_size());
  auto step_error = [&](std::vector<StepItem> work) {
    try {
      model->step(work, logits);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::vector<int32_t> one{5}, oov{8192}, negative{-1}, seventeen(17, 4);
  EXPECT_NE(step_error({{9, 0, one}}).find("unknown sequence 9"), std::string::npos);
  EXPECT_NE(step_error({{3, 2, one}}).find("at position 0, work says 2"), std::string::npos);
  EXPECT_NE(step_error({{3, 0, oov}}).find("token 8192 outside the vocabulary of 8192"), std::string::npos);
  EXPECT_NE(step_error({{3, 0, negative}}).find("token -1"), std::string::npos);
  EXPECT_NE(step_error({{3, 0, seventeen}}).find("would reach 17 tokens, the context is 16"), std::string::npos);
  EXPECT_NE(step_error({{3, 0, {}}}).find("empty work"), std::string::npos);
  EXPECT_NE(step_error({{3, 0, one}, {3, 0, one}}).find("appears twice"), std::string::npos);
  // None of the refused steps moved the sequence.
  EXPECT_EQ(step_error({{3, 0, one}}), "no error");
  EXPECT_THROW(model->create_sequence(3), Error);
  EXPECT_THROW(model->free_sequence(4), Error);
  std::vector<float> small(10);
  const StepItem w{3, 1, one};
  EXPECT_THROW(model->step(std::span<const StepItem>(&w, 1), small), Error);
}

TEST(EngineStepModel, StateBytesAreWhatTheHeapHoldsAndFreeReturnsThemAtOnce) {
  auto model = open_default(4096);
  EXPECT_EQ(model->sequence_state_bytes(), 0u);
  const size_t per_sequence = model->engine().sequence_state_bytes();
  constexpr int kCount = 8;
  const size_t before = heap_in_use();
  for (int i = 0; i < kCount; ++i) model->create_sequence(10 + i);
  const size_t during = heap_in_use();
  EXPECT_EQ(model->sequence_state_bytes(), kCount * per_sequence);
  // The allocator's count includes its chunk headers and the map's nodes: allow 1%.
  const double measured = static_cast<double>(during - before) / kCount;
  EXPECT_GE(measured, static_cast<double>(per_sequence)) << "the formula counts more than was allocated";
  EXPECT_LE(measured, static_cast<double>(per_sequence) * 1.01) << "the state holds more than the formula counts";
  for (int i = 0; i < kCount; ++i) model->free_sequence(10 + i);
  EXPECT_EQ(model->sequence_state_bytes(), 0u);
  EXPECT_LE(heap_in_use(), before + per_sequence / 100) << "freed state was not returned";
}

// The fit check runs before anything is placed: weights as the backend stores them +
// state for every requested sequence + the step workspace, against the device's share.
TEST(EngineStepModel, AModelThatDoesNotFitIsRefusedWithTheNumbers) {
  EngineModelOptions o;
  o.max_context = 4096;
  o.max_sequences = int64_t{1} << 30;  // a billion sequences' state fits nowhere
  o.show_progress = false;
  try {
    EngineStepModel::open(kModelDir, o);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("does not fit on cpu"), std::string::npos) << what;
    EXPECT_NE(what.find("1073741824 sequence(s) of 4096 positions"), std::string::npos) << what;
    EXPECT_NE(what.find("is available"), std::string::npos) << what;
  }
  o.max_sequences = 2;
  o.memory_utilization = 1.5;
  EXPECT_THROW(EngineStepModel::open(kModelDir, o), Error);
}

TEST(EngineStepModel, ContextComesFromTheFlagAndTheConfig) {
  ModelConfig c;
  c.max_position_embeddings = 1 << 20;
  EXPECT_EQ(resolve_max_context(c, 0), kDefaultMaxContext);
  EXPECT_EQ(resolve_max_context(c, 300), 300);
  c.max_position_embeddings = 512;
  EXPECT_EQ(resolve_max_context(c, 0), 512);
  try {
    resolve_max_context(c, 513);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--max-model-len 513 is longer than the model's max_position_embeddings 512"),
              std::string::npos)
        << e.what();
  }
}

TEST(EngineStepModel, BadCheckpointsAreErrorsNamingTheFile) {
  namespace fs = std::filesystem;
  EXPECT_THROW(EngineStepModel::open("/nonexistent/model", {}), Error);
  const fs::path dir = fs::path(::testing::TempDir()) / "truncated_default_model";
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(fs::path(kModelDir) / "config.json", dir / "config.json");
  {
    std::ifstream in(fs::path(kModelDir) / "model.safetensors", std::ios::binary);
    std::string head(100000, '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    std::ofstream(dir / "model.safetensors", std::ios::binary) << head;
  }
  try {
    EngineStepModel::open(dir.string(), {.show_progress = false});
    ADD_FAILURE() << "a truncated checkpoint loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors"), std::string::npos) << e.what();
  }
  fs::remove(dir / "config.json");
  try {
    EngineStepModel::open(dir.string(), {.show_progress = false});
    ADD_FAILURE() << "a directory without config.json loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace fp4serve::runtime

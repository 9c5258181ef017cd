// Speculative decoding end to end on the CPU: the scheduler over EngineStepModel with a DSpark
// or classic MTP draft (make-test-model checkpoints of every layout), against the same model
// without speculation. Greedy output must be token-for-token the same across batch sizes and
// prompt chunking; sampled output must follow the target's distribution (chi-square).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>

#include "base/error.h"
#include "checkpoint/test_model.h"
#include "runtime/engine_step_model.h"
#include "runtime/scheduler.h"
#include "runtime/speculative_config.h"

namespace fp4serve::runtime {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A tiny test model of `layout` with `draft`, written once per test binary.
std::string test_model_dir(OutputLayout layout, DraftKind draft) {
  const std::string name = std::string("spec_") + std::string(output_layout_name(layout)) + (draft == DraftKind::kDSpark ? "_dspark" : "_mtp");
  const fs::path dir = fs::path(::testing::TempDir()) / name;
  if (!fs::exists(dir / "config.json")) {
    TestModelOptions o;
    o.layout = layout;
    o.seed = 16;
    o.preset = "tiny";
    o.draft = draft;
    write_test_model(dir.string(), o);
  }
  return dir.string();
}

std::unique_ptr<EngineStepModel> open_model(const std::string& dir, const std::string& spec_json) {
  EngineModelOptions o;
  o.device = DeviceChoice::kCpu;
  o.max_context = 256;
  o.max_sequences = 8;
  o.show_progress = false;
  o.speculative = parse_speculative_config(spec_json);
  return EngineStepModel::open(dir, o);
}

std::vector<int32_t> collect(GenerationStream& stream) {
  std::vector<int32_t> tokens;
  const auto end = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < end) {
    auto u = stream.wait(100ms);
    for (auto& t : u.tokens) tokens.push_back(t.token);
    if (u.finish) {
      EXPECT_TRUE(u.finish->error.empty()) << u.finish->error;
      return tokens;
    }
  }
  ADD_FAILURE() << "stream did not finish";
  return tokens;
}

std::vector<GenerationRequest> greedy_requests(int count, int64_t max_new_tokens) {
  std::vector<GenerationRequest> out;
  for (int i = 0; i < count; ++i) {
    GenerationRequest r;
    for (int j = 0; j < 9 + 5 * i; ++j) r.prompt.push_back(3 + (37 * j + 11 * i) % 400);
    r.sampling.temperature = 0.0;
    r.max_new_tokens = max_new_tokens;
    out.push_back(r);
  }
  return out;
}

// Every request's tokens, the requests submitted at once to a scheduler of the given shape.
std::vector<std::vector<int32_t>> generate(StepModel& model, const std::vector<GenerationRequest>& requests, int max_num_seqs,
                                           int64_t max_batched_tokens, SchedulerMetrics& metrics) {
  SchedulerConfig config;
  config.max_num_seqs = max_num_seqs;
  config.max_batched_tokens = max_batched_tokens;
  Scheduler scheduler(model, config, metrics);
  std::vector<std::shared_ptr<GenerationStream>> streams;
  for (const auto& r : requests) {
    auto s = scheduler.submit({r});
    streams.push_back(s.at(0));
  }
  std::vector<std::vector<int32_t>> out;
  for (auto& s : streams) out.push_back(collect(*s));
  return out;
}

struct Case {
  OutputLayout layout;
  DraftKind draft;
};

class GreedySpeculation : public ::testing::TestWithParam<Case> {};

TEST_P(GreedySpeculation, EqualsGreedyWithoutSpeculationAcrossBatchesAndChunks) {
  const Case c = GetParam();
  const std::string dir = test_model_dir(c.layout, c.draft);
  const std::string spec = c.draft == DraftKind::kDSpark ? R"({"method": "dspark", "num_speculative_tokens": 5})"
                                                         : R"({"method": "mtp", "num_speculative_tokens": 1})";
  const std::vector<GenerationRequest> requests = greedy_requests(3, 12);
  auto plain_model = open_model(dir, "");
  SchedulerMetrics plain_metrics;
  // The reference: one sequence at a time, whole prompts.
  std::vector<std::vector<int32_t>> reference;
  for (const auto& r : requests) reference.push_back(generate(*plain_model, {r}, 1, 512, plain_metrics).at(0));

  auto spec_model = open_model(dir, spec);
  ASSERT_NE(spec_model->draft_source(), nullptr);
  // Batch sizes 1 and 3, whole prompts and chunks of 7 tokens (chunks mixed with verification items).
  for (const auto& [seqs, budget] : std::vector<std::pair<int, int64_t>>{{1, 512}, {3, 512}, {3, 7}}) {
    SchedulerMetrics metrics;
    const auto got = generate(*spec_model, requests, seqs, budget, metrics);
    for (size_t i = 0; i < requests.size(); ++i)
      EXPECT_EQ(got[i], reference[i]) << "request " << i << ", max_num_seqs " << seqs << ", budget " << budget;
    const auto counters = metrics.counters();
    EXPECT_GT(counters.spec_drafts, 0u) << "no draft was verified";
    EXPECT_LE(counters.spec_accepted_tokens, counters.spec_draft_tokens);
  }
}

// The model's own draft, steered: each drafted position's logits are replaced by ones whose
// argmax is choose(request, k). The real draft still runs (its state and the rollback are what
// is tested); steering keeps sampling lossless because verification uses what the steered draw
// used.
class SteeredDrafts : public DraftSource {
 public:
  using Choose = std::function<int32_t(const DraftRequest&, int64_t)>;
  SteeredDrafts(DraftSource& inner, Choose choose, int vocab) : inner_(inner), choose_(std::move(choose)), vocab_(vocab) {}
  void propose(std::span<const DraftRequest> requests, DraftDrawer& drawer, std::vector<std::vector<int32_t>>& drafts) override {
    struct Steer : DraftDrawer {
      Steer(SteeredDrafts& o, std::span<const DraftRequest> r, DraftDrawer& d) : owner(o), requests(r), inner(d) {}
      int32_t draw(size_t request, int64_t k, std::span<const float>) override {
        std::vector<float> logits(static_cast<size_t>(owner.vocab_), 0.0f);
        logits[static_cast<size_t>(owner.choose_(requests[request], k))] = 50.0f;
        return inner.draw(request, k, logits);
      }
      SteeredDrafts& owner;
      std::span<const DraftRequest> requests;
      DraftDrawer& inner;
    } steer(*this, requests, drawer);
    inner_.propose(requests, steer, drafts);
  }
  void finish_verification(std::span<const VerifiedItem> items) override { inner_.finish_verification(items); }
  int64_t max_draft_tokens() const override { return inner_.max_draft_tokens(); }

 private:
  DraftSource& inner_;
  Choose choose_;
  int vocab_;
};

class SteeredModel : public StepModel {
 public:
  SteeredModel(EngineStepModel& inner, SteeredDrafts& drafts) : inner_(inner), drafts_(drafts) {}
  int vocab_size() const override { return inner_.vocab_size(); }
  int64_t max_context() const override { return inner_.max_context(); }
  void create_sequence(SequenceId id) override { inner_.create_sequence(id); }
  void free_sequence(SequenceId id) override { inner_.free_sequence(id); }
  void step(std::span<const StepItem> work, std::span<float> logits) override { inner_.step(work, logits); }
  size_t sequence_state_bytes() const override { return inner_.sequence_state_bytes(); }
  DraftSource* draft_source() override { return &drafts_; }

 private:
  EngineStepModel& inner_;
  SteeredDrafts& drafts_;
};

TEST_P(GreedySpeculation, AcceptedDraftsKeepTheOutputExact) {
  const Case c = GetParam();
  const std::string dir = test_model_dir(c.layout, c.draft);
  const std::string spec = c.draft == DraftKind::kDSpark ? R"({"method": "dspark", "num_speculative_tokens": 5})"
                                                         : R"({"method": "mtp", "num_speculative_tokens": 1})";
  const std::vector<GenerationRequest> requests = greedy_requests(3, 14);
  auto plain_model = open_model(dir, "");
  SchedulerMetrics plain_metrics;
  std::vector<std::vector<int32_t>> reference, full;
  for (const auto& r : requests) {
    reference.push_back(generate(*plain_model, {r}, 1, 512, plain_metrics).at(0));
    full.push_back(r.prompt);
    full.back().insert(full.back().end(), reference.back().begin(), reference.back().end());
  }
  auto spec_model = open_model(dir, spec);
  // The reference's next token, except at every third position a wrong one.
  const int vocab = spec_model->vocab_size();
  auto choose = [&](const DraftRequest& r, int64_t k) {
    const std::vector<int32_t>& sequence = full.at(static_cast<size_t>(r.sequence - 1));  // ids count from 1 in submission order
    const size_t at = static_cast<size_t>(r.position + 1 + k);
    const int32_t want = at < sequence.size() ? sequence[at] : 0;
    return (r.position + k) % 3 == 2 ? (want + 1) % vocab : want;
  };
  SteeredDrafts drafts(*spec_model->draft_source(), choose, vocab);
  SteeredModel steered(*spec_model, drafts);
  for (const auto& [seqs, budget] : std::vector<std::pair<int, int64_t>>{{1, 512}, {3, 512}, {3, 7}}) {
    SchedulerMetrics metrics;
    const auto got = generate(steered, requests, seqs, budget, metrics);
    for (size_t i = 0; i < requests.size(); ++i)
      EXPECT_EQ(got[i], reference[i]) << "request " << i << ", max_num_seqs " << seqs << ", budget " << budget;
    const auto counters = metrics.counters();
    EXPECT_GT(counters.spec_accepted_tokens, counters.spec_drafts / 3) << "the steered drafts were mostly rejected";
    EXPECT_LT(counters.spec_accepted_tokens, counters.spec_draft_tokens) << "no draft was rejected";
  }
}

TEST(ConfidenceTrimming, VerifiesShorterPrefixesAndKeepsGreedyTokens) {
  const std::string dir = test_model_dir(OutputLayout::kBF16, DraftKind::kDSpark);
  const std::vector<GenerationRequest> requests = greedy_requests(3, 12);
  auto plain_model = open_model(dir, "");
  SchedulerMetrics plain_metrics;
  const auto reference = generate(*plain_model, requests, 3, 512, plain_metrics);
  uint64_t drafted[2] = {0, 0};
  for (int trimmed = 0; trimmed < 2; ++trimmed) {
    auto model = open_model(dir, trimmed ? R"({"method": "dspark", "num_speculative_tokens": 5, "confidence_threshold": 0.5})"
                                         : R"({"method": "dspark", "num_speculative_tokens": 5})");
    SchedulerMetrics metrics;
    EXPECT_EQ(generate(*model, requests, 3, 512, metrics), reference) << (trimmed ? "trimmed" : "full");
    drafted[trimmed] = metrics.counters().spec_draft_tokens;
  }
  EXPECT_LT(drafted[1], drafted[0]) << "the threshold trimmed nothing";
}

INSTANTIATE_TEST_SUITE_P(Layouts, GreedySpeculation,
                         ::testing::Values(Case{OutputLayout::kNative, DraftKind::kDSpark}, Case{OutputLayout::kNvfp4, DraftKind::kDSpark},
                                           Case{OutputLayout::kTransformersSaved, DraftKind::kDSpark},
                                           Case{OutputLayout::kBF16, DraftKind::kDSpark}, Case{OutputLayout::kNative, DraftKind::kMtp},
                                           Case{OutputLayout::kNvfp4, DraftKind::kMtp},
                                           Case{OutputLayout::kTransformersSaved, DraftKind::kMtp},
                                           Case{OutputLayout::kBF16, DraftKind::kMtp}),
                         [](const auto& info) {
                           std::string n = std::string(output_layout_name(info.param.layout)) +
                                           (info.param.draft == DraftKind::kDSpark ? "_dspark" : "_mtp");
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

TEST(SpeculativeConfig, RefusedOnAModelSplitOverRanksNamingBothFlags) {
  const SpeculativeConfig mtp = parse_speculative_config(R"({"method": "mtp", "num_speculative_tokens": 1})");
  EXPECT_NO_THROW(check_speculation_alone(mtp, 1, false));
  EXPECT_NO_THROW(check_speculation_alone(SpeculativeConfig{}, 4, true));  // no speculation asked
  try {
    check_speculation_alone(mtp, 2, false);
    ADD_FAILURE() << "speculation over 2 ranks was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--speculative-config with --tensor-parallel-size 2"), std::string::npos) << e.what();
  }
  try {
    check_speculation_alone(mtp, 1, true);
    ADD_FAILURE() << "speculation under expert parallelism was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--enable-expert-parallel"), std::string::npos) << e.what();
  }
}

TEST(SpeculativeConfig, ParsesVllmSpellingAndRefusesWhatCannotRun) {
  const SpeculativeConfig s = parse_speculative_config(R"({"method": "dspark", "num_speculative_tokens": 3, "confidence_threshold": 0.2})");
  EXPECT_EQ(s.method, SpeculativeMethod::kDSpark);
  EXPECT_EQ(s.num_speculative_tokens, 3);
  EXPECT_DOUBLE_EQ(s.confidence_threshold, 0.2);
  EXPECT_FALSE(parse_speculative_config("").enabled());
  auto message = [](const std::string& json) {
    try {
      parse_speculative_config(json);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("{method: dspark}").find("not valid JSON"), std::string::npos);
  EXPECT_NE(message(R"({"method": "eagle", "num_speculative_tokens": 1})").find("unknown method \"eagle\""), std::string::npos);
  EXPECT_NE(message(R"({"method": "mtp"})").find("num_speculative_tokens"), std::string::npos);
  EXPECT_NE(message(R"({"method": "mtp", "num_speculative_tokens": 0})").find(">= 1"), std::string::npos);
  EXPECT_NE(message(R"({"method": "mtp", "num_speculative_tokens": 1, "k": 2})").find("unknown key \"k\""), std::string::npos);

  // Against the checkpoint: the draft must be there and big enough.
  const std::string mtp_dir = test_model_dir(OutputLayout::kBF16, DraftKind::kMtp);
  try {
    open_model(mtp_dir, R"({"method": "dspark", "num_speculative_tokens": 5})");
    ADD_FAILURE() << "a model without a DSpark draft was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("classic MTP head"), std::string::npos) << e.what();
  }
  const std::string dspark_dir = test_model_dir(OutputLayout::kBF16, DraftKind::kDSpark);
  try {
    open_model(dspark_dir, R"({"method": "dspark", "num_speculative_tokens": 6})");
    ADD_FAILURE() << "more tokens than the block were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dspark_block_size 5"), std::string::npos) << e.what();
  }
  EXPECT_THROW(open_model(dspark_dir, R"({"method": "mtp", "num_speculative_tokens": 1})"), Error);
  // models/default carries no draft (num_nextn_predict_layers 0).
  try {
    open_model(FP4SERVE_SOURCE_DIR "/models/default", R"({"method": "mtp", "num_speculative_tokens": 1})");
    ADD_FAILURE() << "models/default has no draft";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no MTP head"), std::string::npos) << e.what();
  }
}

// The upper alpha quantile of chi-square with `df` degrees of freedom (Wilson-Hilferty).
double chi_square_quantile(int df, double z_alpha) {
  const double a = 2.0 / (9.0 * df);
  return df * std::pow(1.0 - a + z_alpha * std::sqrt(a), 3.0);
}

// Sampled generation with a DSpark draft: the joint distribution of the first two generated
// tokens (the second is the first speculative one) must be the target's, p(t1) p(t2 | t1),
// computed from the model without speculation. top_k 4 keeps the cells few; 1600 requests;
// chi-square at significance 0.001 (z = 3.0902). Seeds are fixed, so the test is deterministic.
class SpeculativeSampling : public ::testing::TestWithParam<bool> {};

TEST_P(SpeculativeSampling, FollowsTheTargetDistribution) {
  const bool steered = GetParam();
  const std::string dir = test_model_dir(OutputLayout::kBF16, DraftKind::kDSpark);
  auto plain = open_model(dir, "");
  const std::vector<int32_t> prompt = {5, 77, 190, 4, 61, 300, 12};
  SamplingParams params;
  params.temperature = 1.0;
  params.top_k = 4;
  const size_t V = static_cast<size_t>(plain->vocab_size());
  // p(t1) and p(t2 | t1) from the plain model.
  auto distribution_after = [&](const std::vector<int32_t>& tokens) {
    plain->create_sequence(1);
    std::vector<float> logits(V);
    const StepItem item{1, 0, tokens, LogitsMode::kLast};
    plain->step(std::span<const StepItem>(&item, 1), logits);
    plain->free_sequence(1);
    SequenceSampler sampler(params, prompt);
    std::vector<int32_t> generated(tokens.begin() + static_cast<std::ptrdiff_t>(prompt.size()), tokens.end());
    return sampler.distribution(logits, generated);
  };
  std::map<std::pair<int32_t, int32_t>, double> expected;
  for (const TokenProbability& a : distribution_after(prompt)) {
    std::vector<int32_t> t = prompt;
    t.push_back(a.token);
    for (const TokenProbability& b : distribution_after(t)) expected[{a.token, b.token}] = a.probability * b.probability;
  }

  auto spec = open_model(dir, R"({"method": "dspark", "num_speculative_tokens": 5})");
  constexpr int kSamples = 1600;
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < kSamples; ++i) {
    GenerationRequest r;
    r.prompt = prompt;
    r.sampling = params;
    r.sampling.seed = 1000 + static_cast<uint64_t>(i);
    r.max_new_tokens = 3;  // the third token lets the second come from a verified draft
    requests.push_back(r);
  }
  // Steered: the first draft is the target's most likely token after the anchor (accepted
  // often), the others token 0.
  std::map<int32_t, int32_t> likeliest;
  std::map<int32_t, double> best;
  for (const auto& [cell, p] : expected)
    if (p > best[cell.first]) best[cell.first] = p, likeliest[cell.first] = cell.second;
  SteeredDrafts steering(*spec->draft_source(), [&](const DraftRequest& r, int64_t k) { return k == 0 ? likeliest[r.anchor] : 0; },
                         spec->vocab_size());
  SteeredModel steered_model(*spec, steering);
  StepModel& model = steered ? static_cast<StepModel&>(steered_model) : *spec;

  SchedulerMetrics metrics;
  SchedulerConfig config;
  config.max_num_seqs = 64;
  config.max_waiting = kSamples;
  config.max_batched_tokens = 2048;
  std::map<std::pair<int32_t, int32_t>, int> observed;
  {
    Scheduler scheduler(model, config, metrics);
    auto streams = scheduler.submit(requests);
    for (auto& s : streams) {
      const std::vector<int32_t> t = collect(*s);
      ASSERT_GE(t.size(), 2u);
      ++observed[{t[0], t[1]}];
    }
  }
  EXPECT_GT(metrics.counters().spec_draft_tokens, 0u);
  if (steered) EXPECT_GT(metrics.counters().spec_accepted_tokens, static_cast<uint64_t>(kSamples / 4));
  // Cells expected below 5 are pooled into one.
  double chi2 = 0, pooled_expected = 0, pooled_observed = 0;
  int cells = 0;
  for (const auto& [cell, p] : expected) {
    const double e = p * kSamples;
    const double o = observed.count(cell) ? observed[cell] : 0;
    if (e < 5) {
      pooled_expected += e;
      pooled_observed += o;
      continue;
    }
    chi2 += (o - e) * (o - e) / e;
    ++cells;
  }
  if (pooled_expected > 0) {
    chi2 += (pooled_observed - pooled_expected) * (pooled_observed - pooled_expected) / pooled_expected;
    ++cells;
  }
  int total = 0;
  for (const auto& [cell, n] : observed) {
    total += n;
    EXPECT_TRUE(expected.count(cell)) << "token pair (" << cell.first << ", " << cell.second << ") the target never gives";
  }
  ASSERT_EQ(total, kSamples);
  ASSERT_GE(cells, 3);
  EXPECT_LT(chi2, chi_square_quantile(cells - 1, 3.0902)) << cells << " cells";
}

INSTANTIATE_TEST_SUITE_P(Drafts, SpeculativeSampling, ::testing::Values(false, true),
                         [](const auto& info) { return std::string(info.param ? "steered" : "own"); });

}  // namespace
}  // namespace fp4serve::runtime

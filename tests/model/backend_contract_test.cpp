// The model over the Backend interface, seen through a recording backend that forwards
// every call to the CPU backend: what a GPU backend relies on. A decode step copies
// nothing back but its logits, allocates nothing once warm, and every weight an op
// names was placed first (a GPU backend looks its copy up by address); the logits are
// the plain CPU backend's, bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "backend/backend.h"
#include "cpu_model.h"
#include "model/model.h"
#include "model_test_checkpoints.h"

namespace fp4serve {
namespace {

class RecordingBackend final : public Backend {
 public:
  RecordingBackend() : inner_(make_backend(DeviceKind::kCpu)) {}

  std::vector<size_t> host_copies;  // bytes of each copy_to_host
  int64_t allocations = 0;
  std::set<const LinearWeight*> placed;
  std::vector<std::string> unplaced;  // weights an op named before they were placed

  DeviceKind kind() const override { return inner_->kind(); }
  std::string description() const override { return "recording " + inner_->description(); }
  MemoryInfo memory_info() const override { return inner_->memory_info(); }
  DeviceBuffer allocate(size_t bytes) override {
    ++allocations;
    return inner_->allocate(bytes);
  }
  uint64_t placement_bytes(const LinearWeight& w) const override { return inner_->placement_bytes(w); }
  uint64_t placement_bytes(const TensorView& t) const override { return inner_->placement_bytes(t); }
  void place(const LinearWeight& w) override {
    placed.insert(&w);
    inner_->place(w);
  }
  const void* place(const TensorView& t) override { return inner_->place(t); }
  const float* place(std::span<const float> v) override { return inner_->place(v); }
  const int32_t* place(std::span<const int32_t> v) override { return inner_->place(v); }
  void set_placement_progress(PlacementProgress p) override { inner_->set_placement_progress(std::move(p)); }
  void copy_to_device(void* dst, const void* src, size_t bytes) override { inner_->copy_to_device(dst, src, bytes); }
  void copy_to_host(void* dst, const void* src, size_t bytes) override {
    host_copies.push_back(bytes);
    inner_->copy_to_host(dst, src, bytes);
  }
  void copy_on_device(void* dst, const void* src, size_t bytes) override { inner_->copy_on_device(dst, src, bytes); }
  void fill(float* dst, int64_t count, float value) override { inner_->fill(dst, count, value); }
  void synchronize() override { inner_->synchronize(); }
  void embed(const EmbedParams& p) override { inner_->embed(p); }
  void hc_pre(const HcPreParams& p) override {
    check(p.site.fn);
    inner_->hc_pre(p);
  }
  void hc_post(const HcPostParams& p) override { inner_->hc_post(p); }
  void hc_head(const HcHeadParams& p) override {
    check(p.site.fn);
    inner_->hc_head(p);
  }
  void rms_norm(const RmsNormParams& p) override { inner_->rms_norm(p); }
  void add_to_streams(const AddToStreamsParams& p) override { inner_->add_to_streams(p); }
  void linear(std::span<const LinearJob> jobs) override {
    for (const LinearJob& j : jobs) check(j.weight);
    inner_->linear(jobs);
  }
  void attention_heads(const AttentionHeadsParams& p) override { inner_->attention_heads(p); }
  void attention_sequences(const AttentionSequencesParams& p, const StepRows& rows) override {
    inner_->attention_sequences(p, rows);
  }
  void moe(const MoeParams& p) override {
    check(p.gate);
    for (const ExpertLinears& e : p.routed) check(e.w1), check(e.w2), check(e.w3);
    check(p.shared.w1), check(p.shared.w2), check(p.shared.w3);
    inner_->moe(p);
  }
  void mean_streams(const MeanStreamsParams& p) override { inner_->mean_streams(p); }
  void block_attention(const BlockAttentionParams& p, const StepRows& rows) override { inner_->block_attention(p, rows); }
  void set_activation_observer(ActivationObserver* o) override { inner_->set_activation_observer(o); }

 private:
  void check(const LinearWeight* w) {
    if (!placed.count(w)) unplaced.push_back(w ? w->name : "(null)");
  }
  std::unique_ptr<Backend> inner_;
};

TEST(BackendContract, DecodeCopiesBackOnlyLogitsAndEveryWeightIsPlaced) {
  const ModelConfig config = testing::tiny_config({0, 4, 8, 4}, 2, 1);
  const Checkpoint ckpt = testing::random_checkpoint(config, OutputLayout::kNative, 3);
  RecordingBackend backend;
  Model model(backend, ckpt.config, ckpt.linears, ckpt.tensors, ModelOptions{ActQuantMode::kAuto, 64});
  testing::CpuModel plain(ckpt, ModelOptions{ActQuantMode::kAuto, 64});
  const int64_t V = config.vocab_size;
  for (Model* m : {&model, &plain.model}) m->create_sequence(1);

  const std::vector<int32_t> prompt = {5, 17, 99, 3, 250, 8, 1};
  std::vector<float> logits, plain_logits;
  const StepItem first{1, 0, prompt, LogitsMode::kLast};
  model.forward(std::span<const StepItem>(&first, 1), logits);
  plain.model.forward(std::span<const StepItem>(&first, 1), plain_logits);
  int32_t token = 7;
  for (int step = 0; step < 20; ++step) {
    const StepItem one{1, model.position(1), std::span<const int32_t>(&token, 1), LogitsMode::kLast};
    backend.host_copies.clear();
    const int64_t allocations = backend.allocations;
    model.forward(std::span<const StepItem>(&one, 1), logits);
    plain.model.forward(std::span<const StepItem>(&one, 1), plain_logits);
    ASSERT_EQ(backend.host_copies, std::vector<size_t>{static_cast<size_t>(V) * sizeof(float)}) << "step " << step;
    if (step >= 2) {
      EXPECT_EQ(backend.allocations, allocations) << "a warm decode step allocated on the device, step " << step;
    }
    token = static_cast<int32_t>((token * 31 + 11) % V);
  }
  // A prompt chunk without logits copies nothing back at all.
  model.create_sequence(2);
  backend.host_copies.clear();
  const StepItem chunk{2, 0, prompt, LogitsMode::kNone};
  const size_t before = logits.size();
  model.forward(std::span<const StepItem>(&chunk, 1), logits);
  EXPECT_TRUE(backend.host_copies.empty());
  EXPECT_EQ(logits.size(), before);

  EXPECT_TRUE(backend.unplaced.empty()) << "first unplaced weight: " << backend.unplaced.front();
  EXPECT_EQ(logits.size(), plain_logits.size());
  EXPECT_TRUE(std::equal(plain_logits.begin(), plain_logits.end(), logits.begin()))
      << "the recording backend changed the logits";
}

TEST(BackendContract, StateSlotsAreLaidOutOnceAndAccountedExactly) {
  const ModelConfig config = testing::tiny_config({0, 4, 8, 4}, 2, 1);
  const StateLayout layout = state_layout(config, 64);
  ASSERT_EQ(layout.layers.size(), 5u);  // 4 layers + 1 MTP block
  const int64_t W = config.sliding_window, hd = config.head_dim, ihd = config.index_head_dim;
  // Hand-computed: the window ring everywhere; ratio 4 (two overlapping series): kv and score
  // [8, 2*dim] each for the main and the indexer compressor, 64/4+1 entries of each; ratio 8:
  // kv and score [8, dim], 64/8+1 entries.
  const int64_t csa = W * hd + 2 * (8 * 2 * hd) + 17 * hd + 2 * (8 * 2 * ihd) + 17 * ihd;
  const int64_t hca = W * hd + 2 * (8 * hd) + 9 * hd;
  EXPECT_EQ(layout.slot_floats, W * hd + csa + hca + csa + W * hd);
  EXPECT_EQ(layout.layers[1].compressor.capacity, 17);
  EXPECT_EQ(layout.layers[2].compressor.capacity, 9);
  EXPECT_EQ(layout.layers[3].index_compressor.capacity, 17);
  EXPECT_EQ(layout.layers[0].compressor.capacity, 0);

  const auto backend = make_backend(DeviceKind::kCpu);
  StatePool pool(*backend, layout.slot_floats, layout.initial_values);
  {
    StateSlot a = pool.acquire(), b = pool.acquire();
    EXPECT_EQ(pool.live_bytes(), 2 * layout.slot_bytes());
    // A fresh slot: scores at -inf (an empty window weighs nothing), everything else 0.
    const CompressorStateLayout& c = layout.layers[2].compressor;
    EXPECT_EQ(a.data()[c.score], -INFINITY);
    EXPECT_EQ(a.data()[c.kv], 0.0f);
    EXPECT_EQ(a.data()[layout.layers[2].window], 0.0f);
    StateSlot moved = std::move(a);
    EXPECT_EQ(pool.live_bytes(), 2 * layout.slot_bytes());
  }
  EXPECT_EQ(pool.live_bytes(), 0u);
}

}  // namespace
}  // namespace fp4serve

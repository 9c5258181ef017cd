// Decode allocates nothing once warmed up (issue 4): every scratch buffer is sized by
// the model's context up front or by the first steps, the pool's threads use stack
// buffers, and the CPU backend's device buffers are host allocations counted here too. Counted by replacing the global operator new (every form) in this
// test binary: every std::vector and std::string allocation goes through it, on all
// threads.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "backend/cpu/parallel.h"
#include "cpu_model.h"
#include "model/model.h"
#include "model_test_checkpoints.h"

namespace {

std::atomic<bool> counting{false};
std::atomic<int64_t> allocations{0};

void* counted_alloc(std::size_t size) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}

void* counted_aligned_alloc(std::size_t size, std::align_val_t align) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  const std::size_t a = static_cast<std::size_t>(align);
  if (void* p = std::aligned_alloc(a, (size + a - 1) / a * a)) return p;
  throw std::bad_alloc();
}

}  // namespace

void* operator new(std::size_t size) { return counted_alloc(size); }
void* operator new[](std::size_t size) { return counted_alloc(size); }
void* operator new(std::size_t size, std::align_val_t align) { return counted_aligned_alloc(size, align); }
void* operator new[](std::size_t size, std::align_val_t align) { return counted_aligned_alloc(size, align); }
// The nothrow forms too: every form must come from this file, or a block allocated by
// the runtime's operator new would reach free() here (ASan reports the mismatch).
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(size);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t& tag) noexcept { return operator new(size, tag); }
void* operator new(std::size_t size, std::align_val_t align, const std::nothrow_t&) noexcept {
  try {
    return counted_aligned_alloc(size, align);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, std::align_val_t align, const std::nothrow_t& tag) noexcept {
  return operator new(size, align, tag);
}
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace fp4serve {
namespace {


// Decodes `steps` tokens after a prompt and two warm-up steps; returns the operator new
// calls made during those steps.
int64_t allocations_while_decoding(Model& model, int64_t steps) {
  static SequenceId next_id = 1;
  const SequenceId seq = next_id++;
  model.create_sequence(seq);
  std::vector<float> logits;
  const std::vector<int32_t> prompt = {5, 17, 99, 3, 250};
  const StepItem in{seq, 0, prompt, LogitsMode::kLast};
  model.forward(std::span<const StepItem>(&in, 1), logits);
  int32_t token = 7;
  auto step = [&] {
    logits.clear();
    const StepItem one{seq, model.position(seq), std::span<const int32_t>(&token, 1), LogitsMode::kLast};
    model.forward(std::span<const StepItem>(&one, 1), logits);
    token = static_cast<int32_t>((token * 31 + 11) % model.config().vocab_size);
  };
  step();
  step();
  allocations.store(0);
  counting.store(true);
  for (int64_t i = 0; i < steps; ++i) step();
  counting.store(false);
  model.free_sequence(seq);
  return allocations.load();
}

class DecodeAllocation : public ::testing::TestWithParam<OutputLayout> {};

// 50 steps from position 7: the window (8) wraps many times, the compressors (ratios 4
// and 8) emit entries and the indexer's top-3 prunes, so every growing buffer grows.
TEST_P(DecodeAllocation, NoAllocationAfterWarmUp) {
  const ModelConfig config = testing::tiny_config({0, 4, 8, 4}, 2, 0);
  const Checkpoint ckpt = testing::random_checkpoint(config, GetParam(), 7);
  testing::CpuModel m(ckpt, ModelOptions{ActQuantMode::kAuto, 64});
  Model& model = m.model;
  // The counter itself: one vector allocation is seen.
  counting.store(true);
  allocations.store(0);
  { std::vector<int> probe(3); }
  counting.store(false);
  ASSERT_EQ(allocations.load(), 1);

  EXPECT_EQ(allocations_while_decoding(model, 50), 0);
  // Every loop on the pool (its threads' first tasks included).
  const int64_t saved = cpu::parallel_min_cost();
  cpu::set_parallel_min_cost(0);
  EXPECT_EQ(allocations_while_decoding(model, 50), 0);
  cpu::set_parallel_min_cost(saved);
}

INSTANTIATE_TEST_SUITE_P(Encodings, DecodeAllocation,
                         ::testing::Values(OutputLayout::kBF16, OutputLayout::kNative, OutputLayout::kNvfp4));

}  // namespace
}  // namespace fp4serve

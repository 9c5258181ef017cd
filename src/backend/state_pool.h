// Per-sequence state on a backend: one fixed-size slot per live sequence, allocated
// from the backend when a sequence starts and returned at once when it ends, with
// exact byte accounting (the cache-usage metric, and what the memory check plans
// for). The pool knows bytes and initial values only; model/state_layout.h says what
// the floats of a slot mean.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace fp4serve {

// floats [offset, offset + count) of a fresh slot hold `value` (the rest hold 0).
struct StateFill {
  int64_t offset = 0;
  int64_t count = 0;
  float value = 0.0f;
};

class StatePool;

// One sequence's slot; returns its bytes to the backend when destroyed.
class StateSlot {
 public:
  StateSlot() = default;
  StateSlot(StateSlot&& other) noexcept;
  StateSlot& operator=(StateSlot&& other) noexcept;
  ~StateSlot();

  float* data() const { return buffer_.as<float>(); }
  bool empty() const { return buffer_.data() == nullptr; }

 private:
  friend class StatePool;
  StateSlot(StatePool* pool, DeviceBuffer buffer) : pool_(pool), buffer_(std::move(buffer)) {}
  void release();
  StatePool* pool_ = nullptr;
  DeviceBuffer buffer_;
};

class StatePool {
 public:
  // The backend must outlive the pool, and the pool every slot it gave out.
  StatePool(Backend& backend, int64_t slot_floats, std::vector<StateFill> initial_values);

  // A fresh slot (zeros and the initial values). Throws Error when the backend has no room.
  StateSlot acquire();

  size_t slot_bytes() const { return static_cast<size_t>(slot_floats_) * sizeof(float); }
  int64_t live_slots() const { return live_.load(std::memory_order_relaxed); }
  size_t live_bytes() const { return static_cast<size_t>(live_slots()) * slot_bytes(); }

 private:
  friend class StateSlot;
  Backend& backend_;
  int64_t slot_floats_;
  std::vector<StateFill> initial_values_;
  std::atomic<int64_t> live_{0};  // read by the metrics thread
};

}  // namespace fp4serve

#include "backend/state_pool.h"

#include <utility>

#include "base/error.h"

namespace fp4serve {

StateSlot::StateSlot(StateSlot&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)), buffer_(std::move(other.buffer_)) {}

StateSlot& StateSlot::operator=(StateSlot&& other) noexcept {
  if (this != &other) {
    release();
    pool_ = std::exchange(other.pool_, nullptr);
    buffer_ = std::move(other.buffer_);
  }
  return *this;
}

StateSlot::~StateSlot() { release(); }

void StateSlot::release() {
  if (pool_ != nullptr) pool_->live_.fetch_sub(1, std::memory_order_relaxed);
  pool_ = nullptr;
  buffer_ = DeviceBuffer();
}

StatePool::StatePool(Backend& backend, int64_t slot_floats, std::vector<StateFill> initial_values)
    : backend_(backend), slot_floats_(slot_floats), initial_values_(std::move(initial_values)) {
  FP4SERVE_CHECK(slot_floats_ > 0, "state pool: slots of {} floats", slot_floats_);
  for (const StateFill& f : initial_values_)
    FP4SERVE_CHECK(f.offset >= 0 && f.count >= 0 && f.offset + f.count <= slot_floats_,
                   "state pool: initial values [{}, {}) outside a slot of {} floats", f.offset, f.offset + f.count, slot_floats_);
}

StateSlot StatePool::acquire() {
  DeviceBuffer buffer = backend_.allocate(slot_bytes());
  float* data = buffer.as<float>();
  backend_.fill(data, slot_floats_, 0.0f);
  for (const StateFill& f : initial_values_) backend_.fill(data + f.offset, f.count, f.value);
  live_.fetch_add(1, std::memory_order_relaxed);
  return StateSlot(this, std::move(buffer));
}

}  // namespace fp4serve

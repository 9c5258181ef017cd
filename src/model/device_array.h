// A step buffer on the backend: grown to the largest step seen and kept, so that the
// decode loop allocates nothing once warm. Contents are not kept across growth.
#pragma once

#include <cstdint>

#include "backend/backend.h"

namespace fp4serve {

template <typename T>
class DeviceArray {
 public:
  // Room for at least n elements.
  T* reserve(Backend& backend, int64_t n) {
    if (n > capacity_) {
      buffer_ = DeviceBuffer();  // the old one goes first: peak memory is the new size
      buffer_ = backend.allocate(static_cast<size_t>(n) * sizeof(T));
      capacity_ = n;
    }
    return buffer_.as<T>();
  }

 private:
  DeviceBuffer buffer_;
  int64_t capacity_ = 0;
};

}  // namespace fp4serve

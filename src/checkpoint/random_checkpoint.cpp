#include "checkpoint/random_checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include "checkpoint/model_config_json.h"
#include "checkpoint/test_model.h"
#include "formats/number_formats.h"
#include "formats/weight_quantization.h"

namespace fp4serve {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t name_hash(const std::string& name) {  // FNV-1a
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char ch : name) h = (h ^ ch) * 0x100000001B3ull;
  return h;
}

// Fills a tensor's bytes with random bytes mapped through `code` (which keeps them valid
// codes of the tensor's format), 4 KiB blocks spread over the hardware threads.
template <typename Code>
void fill_codes(TensorView& t, uint64_t seed, Code code) {
  auto* bytes = reinterpret_cast<uint8_t*>(mutable_data(t));
  const size_t n = t.nbytes, blocks = (n + 4095) / 4096;
  const size_t threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, std::max<size_t>(blocks, 1));
  auto work = [&](size_t first) {
    for (size_t b = first; b < blocks; b += threads) {
      uint64_t s = splitmix64(seed ^ (b * 0x632BE59BD9B4E019ull));
      for (size_t i = b * 4096; i < std::min(n, (b + 1) * 4096); i += 8) {
        s = splitmix64(s);
        for (size_t j = 0; j < 8 && i + j < n; ++j) bytes[i + j] = code(static_cast<uint8_t>(s >> (8 * j)));
      }
    }
  };
  std::vector<std::thread> pool;
  for (size_t i = 1; i < threads; ++i) pool.emplace_back(work, i);
  work(0);
  for (auto& th : pool) th.join();
}

// Random codes whose dequantized values have a standard deviation near 1/sqrt(in), like the masters.
LinearWeight random_codes(const ExpectedLinear& l, WeightEncoding encoding, uint64_t seed) {
  const int64_t out = l.out_features, in = l.in_features;
  // log2(sqrt(in)), rounded: the scale exponent that brings codes of magnitude ~1 to ~1/sqrt(in).
  const int shift = static_cast<int>(std::lround(0.5 * std::log2(static_cast<double>(in))));
  LinearWeight w;
  w.name = l.name;
  w.encoding = encoding;
  w.out_features = out;
  w.in_features = in;
  switch (encoding) {
    case WeightEncoding::kFP8Block:
      w.weight = make_owned_tensor(DType::F8_E4M3, {out, in}, l.name);
      fill_codes(w.weight, seed, [](uint8_t b) { return static_cast<uint8_t>(b & 0xBF); });  // |v| < 2, never NaN
      w.scale = make_owned_tensor(DType::F8_E8M0, {(out + 127) / 128, (in + 127) / 128}, l.name + ".scale");
      fill_codes(w.scale, seed + 1, [shift](uint8_t) { return static_cast<uint8_t>(127 - shift); });
      break;
    case WeightEncoding::kMXFP4:
      w.weight = make_owned_tensor(DType::I8, {out, in / 2}, l.name);
      fill_codes(w.weight, seed, [](uint8_t b) { return b; });
      w.scale = make_owned_tensor(DType::F8_E8M0, {out, in / 32}, l.name + ".scale");
      fill_codes(w.scale, seed + 1, [shift](uint8_t) { return static_cast<uint8_t>(125 - shift); });
      break;
    case WeightEncoding::kNVFP4:
      w.weight = make_owned_tensor(DType::U8, {out, in / 2}, l.name);
      fill_codes(w.weight, seed, [](uint8_t b) { return b; });
      w.scale = make_owned_tensor(DType::F8_E4M3, {out, in / 16}, l.name + ".scale");
      fill_codes(w.scale, seed + 1, [](uint8_t) { return uint8_t{0x38}; });  // E4M3 1.0
      w.global_scale = std::ldexp(1.0f, -2 - shift);
      break;
    default: {
      // BF16 with random sign and mantissa and magnitudes in [1/4, 1) / sqrt(in).
      w.encoding = WeightEncoding::kBF16;
      w.weight = make_owned_tensor(DType::BF16, {out, in}, l.name);
      fill_codes(w.weight, seed, [](uint8_t b) { return b; });
      auto* h = reinterpret_cast<uint16_t*>(mutable_data(w.weight));
      const int exponent = 125 - shift;
      for (int64_t i = 0; i < out * in; ++i)
        h[i] = static_cast<uint16_t>((h[i] & 0x807F) | ((exponent + (h[i] >> 7 & 1)) << 7));
      break;
    }
  }
  return w;
}

TensorView tensor_of(const std::vector<float>& values, DType dtype, const ExpectedTensor& t) {
  TensorView out = make_owned_tensor(dtype, t.shape, t.name);
  if (dtype == DType::F32) {
    std::memcpy(mutable_data(out), values.data(), values.size() * sizeof(float));
  } else {
    auto* bits = reinterpret_cast<uint16_t*>(mutable_data(out));
    for (size_t i = 0; i < values.size(); ++i) bits[i] = encode_bf16(values[i]);
  }
  return out;
}

}  // namespace

Checkpoint random_checkpoint(const ModelConfig& config, const RandomCheckpointOptions& options) {
  validate_model_config(config, "random checkpoint");
  Checkpoint ck;
  ck.config = config;
  ck.layout = "random " + std::string(output_layout_name(options.encodings));
  ck.naming_scheme = "deepseek-native";
  ck.quantization = "none (in memory)";
  RandomMasters masters(config, options.seed, /*with_input_amax=*/false);
  WriterOptions writer;
  writer.layout = options.encodings;
  writer.nvfp4_scope = options.nvfp4_scope;
  const ExpectedTensors expected = expected_tensors(config);
  for (const ExpectedLinear& l : expected.linears) {
    const WeightEncoding encoding = layout_encoding(writer, l);
    ck.linears[l.name] = options.values == RandomValues::kCodes
                             ? random_codes(l, encoding, splitmix64(options.seed ^ name_hash(l.name)))
                             : quantize_weight(masters.linear(l), l.out_features, l.in_features, encoding, l.name);
    ck.stored_names[l.name] = l.name;
  }
  for (const ExpectedTensor& t : expected.tensors) {
    const DType dtype = layout_tensor_dtype(options.encodings, t);
    if (t.kind == TensorKind::kIndex) {
      const std::vector<int64_t> ids = masters.index_tensor(t);
      TensorView out = make_owned_tensor(DType::I64, t.shape, t.name);
      std::memcpy(mutable_data(out), ids.data(), ids.size() * sizeof(int64_t));
      ck.tensors[t.name] = out;
    } else {
      ck.tensors[t.name] = tensor_of(masters.tensor(t), dtype, t);
    }
    ck.stored_names[t.name] = t.name;
  }
  return ck;
}

}  // namespace fp4serve

#include "parallel/shard_reader.h"

#include <fmt/format.h>

#include <cstring>

#include "base/error.h"

namespace fp4serve {
namespace {

TensorView read_owned(const ReadRuns& read, const ByteRuns& runs, DType dtype, std::vector<int64_t> shape,
                      const std::string& origin) {
  TensorView t = make_owned_tensor(dtype, std::move(shape), origin);
  if (t.nbytes != runs.bytes())
    fail("{}: a slice of {} bytes does not fill shape {} of {}", origin, runs.bytes(), shape_string(t.shape),
         dtype_name(dtype));
  read(runs, mutable_data(t));
  return t;
}

}  // namespace

ReadRuns ranged_reads(RangedReader& reader) {
  return [&reader](const ByteRuns& runs, std::byte* out) { reader.read(runs, out); };
}

void copy_runs(const ByteRuns& runs, std::byte* out) {
  const TensorView& t = *runs.tensor;
  const uint64_t last = runs.count == 0 ? 0 : runs.offset + (runs.count - 1) * runs.stride + runs.length;
  if (last > t.nbytes) fail("{}: runs end at byte {}, past its {} bytes", t.origin, last, t.nbytes);
  for (uint64_t i = 0; i < runs.count; ++i)
    std::memcpy(out + i * runs.length, t.data + runs.offset + i * runs.stride, runs.length);
}

LinearWeight read_linear_slice(const ReadRuns& reader, const LinearWeight& lw, const SliceRect& rect) {
  const std::string label = linear_weight_label(lw);
  if (rect.empty() || rect.row_end > lw.out_features || rect.col_end > lw.in_features)
    fail("{}: slice rows [{}, {}) x columns [{}, {}) is empty or outside [{}, {}]", label, rect.row_begin, rect.row_end,
         rect.col_begin, rect.col_end, lw.out_features, lw.in_features);
  int64_t row_block = 1, col_block = 1;
  switch (lw.encoding) {
    case WeightEncoding::kFP8Block: row_block = col_block = 128; break;
    case WeightEncoding::kMXFP4: col_block = 32; break;
    case WeightEncoding::kNVFP4: col_block = 16; break;
    default: break;
  }
  // Each edge must sit on a block boundary, or be the weight's own (possibly short) edge.
  auto aligned = [](int64_t at, int64_t block, int64_t extent) { return at % block == 0 || at == extent; };
  if (!aligned(rect.row_begin, row_block, lw.out_features) || !aligned(rect.row_end, row_block, lw.out_features) ||
      !aligned(rect.col_begin, col_block, lw.in_features) || !aligned(rect.col_end, col_block, lw.in_features))
    fail("{} ({}): slice rows [{}, {}) x columns [{}, {}) cuts its {}x{} scale blocks", label,
         encoding_name(lw.encoding), rect.row_begin, rect.row_end, rect.col_begin, rect.col_end, row_block, col_block);

  LinearWeight out;
  out.encoding = lw.encoding;
  out.out_features = rect.rows();
  out.in_features = rect.cols();
  out.global_scale = lw.global_scale;
  out.input_scale = lw.input_scale;
  out.name = lw.name;
  const bool packed = lw.encoding == WeightEncoding::kMXFP4 || lw.encoding == WeightEncoding::kNVFP4;
  const std::string where = fmt::format("{} rows [{}, {}) x columns [{}, {})", label, rect.row_begin, rect.row_end,
                                        rect.col_begin, rect.col_end);
  out.weight = read_owned(reader, weight_runs(lw, rect), lw.weight.dtype,
                          {rect.rows(), packed ? rect.cols() / 2 : rect.cols()}, where + " weight");
  if (lw.scale.nbytes > 0) {
    const int64_t scale_rows = (rect.rows() + row_block - 1) / row_block;
    const int64_t scale_cols = (rect.cols() + col_block - 1) / col_block;
    out.scale = read_owned(reader, scale_runs(lw, rect), lw.scale.dtype, {scale_rows, scale_cols}, where + " scale");
  }
  validate_linear_weight(out);
  return out;
}

TensorView read_tensor_slice(const ReadRuns& reader, const TensorView& t, const SliceRect& rect) {
  const std::string where = fmt::format("{} rows [{}, {}) x columns [{}, {})", t.origin, rect.row_begin, rect.row_end,
                                        rect.col_begin, rect.col_end);
  std::vector<int64_t> shape = {rect.rows()};
  if (t.shape.size() > 1) shape.push_back(rect.cols());
  return read_owned(reader, tensor_runs(t, rect), t.dtype, shape, where);
}

}  // namespace fp4serve

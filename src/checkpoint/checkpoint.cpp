// load_checkpoint: configs -> plan from headers -> parallel page-in -> value checks.
#include "checkpoint/checkpoint.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "base/error.h"
#include "checkpoint/checkpoint_plan.h"
#include "checkpoint/draft_config.h"
#include "checkpoint/linear_encoding.h"
#include "checkpoint/model_config_json.h"
#include "checkpoint/progress_bar.h"
#include "checkpoint/quant_config.h"
#include "io/safetensors.h"

namespace fp4serve {
namespace {

unsigned thread_count(const LoadOptions& options) {
  if (options.threads > 0) return options.threads;
  return std::max(8u, std::thread::hardware_concurrency());
}

// Runs tasks [0, count) on `threads` threads; rethrows the Error of the lowest
// failing task (deterministic whatever the scheduling).
void parallel_for(size_t count, unsigned threads, const std::function<void(size_t)>& task) {
  std::atomic<size_t> next{0};
  std::mutex mutex;
  size_t failed_index = count;
  std::string failed_message;
  auto worker = [&] {
    for (size_t i = next++; i < count; i = next++) {
      try {
        task(i);
      } catch (const Error& e) {
        std::lock_guard<std::mutex> lock(mutex);
        if (i < failed_index) {
          failed_index = i;
          failed_message = e.what();
        }
      }
    }
  };
  std::vector<std::thread> pool;
  const unsigned n = static_cast<unsigned>(std::min<size_t>(threads, std::max<size_t>(count, 1)));
  for (unsigned t = 0; t < n; ++t) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  if (failed_index < count) throw Error(failed_message);
}

// Faults every page of every shard in once: one byte per 4 KiB page is enough for
// the kernel to read the page, so the work is I/O, not summing bytes. Windows of
// 256 MiB (for progress) are cut into contiguous slices, one per thread, so each
// thread reads sequentially and several requests are in flight for a cold disk.
void page_in(const TensorSource& source, unsigned threads, bool show_progress) {
  uint64_t total = 0;
  for (const auto& file : source.files()) total += file->file_size();
  ProgressBar bar("loading", total, show_progress);
  constexpr size_t kWindow = size_t{256} << 20;
  constexpr size_t kPage = 4096;
  std::atomic<uint64_t> sink{0};  // keeps the reads observable
  uint64_t done = 0;
  for (const auto& file : source.files()) {
    const std::byte* base = file->mapped_data();
    const size_t size = file->file_size();
    for (size_t offset = 0; offset < size; offset += kWindow) {
      const size_t length = std::min(kWindow, size - offset);
      const size_t slice = (length + threads - 1) / threads;
      parallel_for(threads, threads, [&](size_t t) {
        uint64_t sum = 0;
        const size_t begin = offset + t * slice, end = std::min(offset + length, begin + slice);
        for (size_t i = begin; i < end; i += kPage) sum += static_cast<uint8_t>(base[i]);
        if (end > begin) sum += static_cast<uint8_t>(base[end - 1]);
        sink += sum;
      });
      done += length;
      bar.update(done);
    }
  }
  bar.finish();
}

// tid2eid rows must name distinct experts in [0, n_routed_experts).
void check_tid2eid(const TensorView& t, int64_t experts) {
  const int64_t rows = t.shape.at(0), cols = t.shape.at(1);
  std::vector<int64_t> row(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const size_t i = static_cast<size_t>(r * cols + c);
      if (t.dtype == DType::I64) {
        std::memcpy(&row[size_t(c)], t.data + i * 8, 8);
      } else {
        int32_t v;
        std::memcpy(&v, t.data + i * 4, 4);
        row[size_t(c)] = v;
      }
      if (row[size_t(c)] < 0 || row[size_t(c)] >= experts)
        fail("{}: expert id {} at [{}, {}] is outside [0, {})", t.origin, row[size_t(c)], r, c, experts);
    }
    std::sort(row.begin(), row.end());
    if (std::adjacent_find(row.begin(), row.end()) != row.end())
      fail("{}: token {} routes to the same expert twice", t.origin, r);
  }
}

void check_values(const Checkpoint& ck, unsigned threads) {
  std::vector<const LinearWeight*> scaled;
  for (const auto& [name, lw] : ck.linears)
    if (lw.scale.nbytes > 0) scaled.push_back(&lw);
  parallel_for(scaled.size(), threads, [&](size_t i) { check_scale_values(*scaled[i]); });
  for (const auto& [name, t] : ck.tensors)
    if (name.size() > 8 && name.compare(name.size() - 8, 8, ".tid2eid") == 0)
      check_tid2eid(t, ck.config.n_routed_experts);
}

}  // namespace

const LinearWeight& Checkpoint::linear(const std::string& name) const {
  auto it = linears.find(name);
  if (it == linears.end()) fail("checkpoint ({}): no linear module '{}'", layout, name);
  return it->second;
}

const TensorView& Checkpoint::tensor(const std::string& name) const {
  auto it = tensors.find(name);
  if (it == tensors.end()) fail("checkpoint ({}): no tensor '{}'", layout, name);
  return it->second;
}

Checkpoint load_checkpoint(const std::string& model_dir, const LoadOptions& options) {
  const std::filesystem::path dir(model_dir);
  if (!std::filesystem::is_directory(dir)) fail("{}: not a directory", model_dir);
  const std::string config_path = (dir / "config.json").string();
  if (!std::filesystem::exists(config_path)) fail("{}: no config.json", model_dir);
  const nlohmann::json config_json = read_json_file(config_path);
  auto source = std::make_shared<const TensorSource>(TensorSource::open(model_dir));
  // The draft kind and its stage count come from the tensor names as much as from config.json.
  ModelConfig config = parse_model_config(config_json, config_path, draft_evidence(*source));
  const QuantConfig quant = read_quant_config(model_dir, config_json);

  Checkpoint ck = plan_checkpoint(std::move(config), quant, source, model_dir);
  const unsigned threads = thread_count(options);
  if (options.page_in) page_in(*source, threads, options.show_progress);
  if (options.check_values) check_values(ck, threads);
  return ck;
}

}  // namespace fp4serve

#include "runtime/sharded_model.h"

#include <condition_variable>
#include <exception>
#include <mutex>
#include <set>
#include <thread>

#include "backend/cuda_probe.h"
#include "base/error.h"
#include "io/ranged_read.h"
#include "model/state_layout.h"
#include "parallel/communicator_collectives.h"
#include "parallel/in_process_communicator.h"
#include "parallel/rank_weights.h"
#include "runtime/memory_plan.h"

#if FP4SERVE_HAVE_NCCL
#include "parallel/nccl_communicator.h"
#endif

namespace fp4serve {

// One rank: its thread (CUDA's current device is per thread, so a rank's backend is made
// and driven on one thread) and what that thread owns, destroyed model first.
struct ShardedModel::Rank {
  Rank() : thread([this] { loop(); }) {}
  ~Rank() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stop = true;
    }
    wake.notify_all();
    thread.join();
  }

  // Starts fn on the rank's thread.
  void post(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      task = std::move(fn);
      error = nullptr;
      busy = true;
    }
    wake.notify_all();
  }

  // Waits for the posted task; returns its error, if any.
  std::exception_ptr wait() {
    std::unique_lock<std::mutex> lock(mutex);
    wake.wait(lock, [&] { return !busy; });
    return error;
  }

  void loop() {
    std::unique_lock<std::mutex> lock(mutex);
    for (;;) {
      wake.wait(lock, [&] { return stop || (busy && task); });
      if (stop) return;
      std::function<void()> fn = std::move(task);
      task = nullptr;
      lock.unlock();
      std::exception_ptr caught;
      try {
        fn();
      } catch (...) {
        caught = std::current_exception();
      }
      lock.lock();
      error = caught;
      busy = false;
      wake.notify_all();
    }
  }

  std::unique_ptr<Communicator> comm;
  RankWeights weights;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<CommunicatorCollectives> collectives;
  std::unique_ptr<Model> model;
  std::vector<float> logits;  // ranks after 0 gather the step's logits here

  std::mutex mutex;
  std::condition_variable wake;
  std::function<void()> task;
  std::exception_ptr error;
  bool busy = false, stop = false;
  std::thread thread;  // last: starts once the members above exist
};

namespace {

std::vector<int> rank_devices(const ShardedModelOptions& o) {
  const int n = o.parallel.tensor_parallel_size;
  if (o.device != DeviceKind::kCuda) return std::vector<int>(static_cast<size_t>(n), 0);
  std::vector<int> devices = o.devices;
  const int visible = cuda_device_count();
  if (devices.empty()) {
    FP4SERVE_CHECK(n <= visible, "--tensor-parallel-size {} with --device cuda needs {} GPUs; {} visible", n, n, visible);
    for (int r = 0; r < n; ++r) devices.push_back(r);
  }
  FP4SERVE_CHECK(static_cast<int>(devices.size()) == n, "sharded model: {} GPUs given for {} ranks", devices.size(), n);
  for (int d : devices) FP4SERVE_CHECK(d >= 0 && d < visible, "sharded model: GPU {} asked for, {} visible", d, visible);
  return devices;
}

// A rank's input columns of a linear whose input the numerics quantize to FP8 in 1x128
// blocks must be whole blocks, as the whole model's are (the plan cuts FP8 and MXFP4 inputs
// so; NVFP4's are quantized only under --act-quant fp8). Refused here, before anything is
// read, rather than by the first step.
void check_activation_blocks(const Checkpoint& ck, const ShardPlan& plan, ActQuantMode act_quant) {
  std::set<WeightEncoding> encodings;
  for (const auto& [name, w] : ck.linears) encodings.insert(w.encoding);
  const Numerics numerics = numerics_for(encodings, act_quant);
  for (const TensorShard& s : plan.linears) {
    if (s.kind != ShardKind::kColumns && s.kind != ShardKind::kBlock) continue;
    const LinearWeight& w = ck.linear(s.name);
    if (!numerics.quantizes_input(w.encoding) || w.in_features % 128 != 0) continue;
    for (size_t r = 0; r < s.ranks.size(); ++r) {
      const SliceRect& rect = s.ranks[r];
      if (!rect.empty() && (rect.col_begin % 128 != 0 || rect.cols() % 128 != 0))
        fail("{}: rank {} of {} would hold its input columns [{}, {}), which cut the 128-wide blocks its FP8 "
             "activations are quantized in; choose another --tensor-parallel-size, --enable-expert-parallel, or "
             "--act-quant off",
             s.name, r, s.ranks.size(), rect.col_begin, rect.col_end);
    }
  }
}

std::vector<std::unique_ptr<Communicator>> make_group(const ShardedModelOptions& o, const std::vector<int>& devices) {
  const bool distinct = std::set<int>(devices.begin(), devices.end()).size() == devices.size();
#if FP4SERVE_HAVE_NCCL
  if (o.device == DeviceKind::kCuda && distinct && devices.size() > 1) return make_nccl_group(devices, NodeLaunch{});
#else
  (void)distinct;
#endif
  return make_in_process_group(o.parallel.tensor_parallel_size);
}

}  // namespace

ShardedModel::ShardedModel(const Checkpoint& checkpoint, const ShardedModelOptions& options)
    : plan_(plan_shards(checkpoint, options.parallel)) {
  check_activation_blocks(checkpoint, plan_, options.model.act_quant);
  const int n = options.parallel.tensor_parallel_size;
  const std::vector<int> devices = rank_devices(options);
  std::vector<std::unique_ptr<Communicator>> group = make_group(options, devices);
  for (int r = 0; r < n; ++r) {
    ranks_.push_back(std::make_unique<Rank>());
    ranks_.back()->comm = std::move(group[static_cast<size_t>(r)]);
  }
  // From the shard files by range; a checkpoint made in memory (tests, bench decode) by copy.
  const bool has_files = checkpoint.source && !checkpoint.source->files().empty();
  std::unique_ptr<RangedReader> reader = has_files ? std::make_unique<RangedReader>(*checkpoint.source) : nullptr;
  const ReadRuns read = reader ? ranged_reads(*reader) : ReadRuns(copy_runs);
  const std::vector<int64_t> columns = vocab_columns(plan_);
  run_all([&](int r) {
    Rank& rank = *ranks_[static_cast<size_t>(r)];
    rank.backend = make_backend(options.device, devices[static_cast<size_t>(r)]);
    rank.weights = read_rank_weights(checkpoint, plan_, r, read);
    const StateLayout layout = state_layout(rank.weights.config, options.model.context);
    const MemoryPlan fit = plan_memory(*rank.backend, rank.weights.config, rank.weights.linears, rank.weights.tensors,
                                       layout.slot_bytes(), options.max_sequences, options.max_step_tokens,
                                       options.memory_utilization);
    check_fits(fit, fmt::format("{} (rank {} of {})", rank.backend->description(), r, n), options.max_sequences,
               options.model.context, options.memory_utilization);
    rank.collectives = std::make_unique<CommunicatorCollectives>(*rank.backend, *rank.comm, columns);
    rank.model = std::make_unique<Model>(*rank.backend, rank.weights.config, rank.weights.linears, rank.weights.tensors,
                                         options.model, rank.weights.shard(rank.collectives.get()));
  });
}

ShardedModel::~ShardedModel() {
  // Each rank's device objects go on the thread that made them.
  try {
    run_all([&](int r) {
      Rank& rank = *ranks_[static_cast<size_t>(r)];
      rank.model.reset();
      rank.collectives.reset();
      rank.backend.reset();
      rank.comm.reset();
    });
  } catch (const std::exception&) {
    // Destruction goes on; what failed to free is the device's to reclaim at exit.
  }
}

const Model& ShardedModel::rank_model(int rank) const { return *ranks_.at(static_cast<size_t>(rank))->model; }
const Backend& ShardedModel::rank_backend(int rank) const { return *ranks_.at(static_cast<size_t>(rank))->backend; }

void ShardedModel::run_all(const std::function<void(int)>& fn) {
  for (size_t r = 0; r < ranks_.size(); ++r) ranks_[r]->post([&fn, r] { fn(static_cast<int>(r)); });
  std::exception_ptr first;
  for (auto& rank : ranks_) {
    std::exception_ptr e = rank->wait();
    if (e && !first) first = e;
  }
  if (first) std::rethrow_exception(first);
}

void ShardedModel::on_every_rank(const std::function<void(int, Model&)>& fn) {
  run_all([&](int r) { fn(r, *ranks_[static_cast<size_t>(r)]->model); });
}

std::string ShardedModel::broken() const {
  std::lock_guard<std::mutex> lock(broken_mutex_);
  return broken_;
}

void ShardedModel::run_step(const std::function<void(int, Model&)>& fn) {
  const std::string why = broken();
  FP4SERVE_CHECK(why.empty(), "the model split over {} ranks runs no more steps since {}; restart fp4serve", size(), why);
  std::mutex first_mutex;
  int first = -1;  // the rank whose failure aborted the group
  std::string first_message;
  try {
    run_all([&](int r) {
      try {
        fn(r, *ranks_[static_cast<size_t>(r)]->model);
      } catch (...) {
        std::string message = "an exception that is not a std::exception";
        try {
          throw;
        } catch (const std::exception& e) {
          message = e.what();
        } catch (...) {
        }
        {
          std::lock_guard<std::mutex> lock(first_mutex);
          if (first < 0) {
            first = r;
            first_message = message;
          }
        }
        // Every rank's communicator: NCCL's are one per rank; the in-process group's abort
        // is shared and keeps the first call's rank and message.
        for (auto& rank : ranks_) rank->comm->abort(r, message);
        throw;
      }
    });
  } catch (...) {
    const std::string why = fmt::format("a step failed on rank {} of {}: {}", first, size(), first_message);
    {
      std::lock_guard<std::mutex> lock(broken_mutex_);
      broken_ = why;
    }
    fail("{} (the ranks' communicator is aborted: later steps are refused)", why);
  }
}

void ShardedModel::forward(std::span<const StepItem> items, std::vector<float>& logits) {
  ranks_.front()->model->check_step(items);  // the ranks' host states agree: one check for all
  run_step([&](int r, Model& model) {
    std::vector<float>& out = r == 0 ? logits : ranks_[static_cast<size_t>(r)]->logits;
    if (r != 0) out.clear();
    model.forward(items, out);
  });
}

}  // namespace fp4serve

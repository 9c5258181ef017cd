#include "runtime/engine_fake_model.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "base/error.h"
#include "runtime/mix64.h"

namespace fp4serve::runtime {
namespace {

constexpr uint64_t kEmptyHistoryHash = 0x6a09e667f3bcc908ull;
constexpr float kFreeTextLogitRange = 8.0f;   // hash logits lie in [0, 8)
constexpr float kExcludedTokenLogit = -50.0f;  // tokens the hash never proposes
constexpr float kScriptedTokenLogit = 100.0f;  // dominates any sampling setting

uint64_t extend_hash(uint64_t history_hash, int32_t token) {
  return mix64(history_hash ^ (static_cast<uint64_t>(static_cast<uint32_t>(token)) * 0x9e3779b97f4a7c15ull));
}

// Memory that stands in for a KV cache: mapped directly so that freeing it
// returns it to the OS at once (malloc would keep large blocks around after
// its mmap threshold adapts), which makes "memory back to baseline" testable.
class SimulatedState {
 public:
  explicit SimulatedState(size_t bytes) : bytes_(bytes) {
    if (bytes_ == 0) return;
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) fail("fake model: cannot map {} bytes of sequence state", bytes_);
    data_ = static_cast<std::byte*>(p);
  }
  ~SimulatedState() {
    if (data_) munmap(data_, bytes_);
  }
  SimulatedState(const SimulatedState&) = delete;
  SimulatedState& operator=(const SimulatedState&) = delete;
  std::byte* data() { return data_; }

 private:
  size_t bytes_;
  std::byte* data_ = nullptr;
};

}  // namespace

struct FakeStepModel::Sequence {
  explicit Sequence(size_t state_bytes) : state(state_bytes) {}
  std::vector<int32_t> history;
  uint64_t hash = kEmptyHistoryHash;
  SimulatedState state;
  // Scripted reply, decided at the first logits request (the prompt's end).
  bool prompt_seen = false;
  size_t prompt_length = 0;
  std::vector<int32_t> scripted_reply;
  bool has_script = false;
};

FakeStepModel::FakeStepModel(FakeModelOptions options) : options_(std::move(options)) {
  FP4SERVE_CHECK(options_.vocab_size > 1, "fake model: vocab_size {} must be > 1", options_.vocab_size);
  FP4SERVE_CHECK(options_.max_context > 0, "fake model: max_context {} must be > 0", options_.max_context);
  FP4SERVE_CHECK(options_.eos_token >= 0 && options_.eos_token < options_.vocab_size,
                 "fake model: eos_token {} outside the vocabulary of {}", options_.eos_token, options_.vocab_size);
  FP4SERVE_CHECK(static_cast<bool>(options_.decode) == static_cast<bool>(options_.encode),
                 "fake model: scripted replies need both decode and encode");
  is_free_text_.assign(options_.vocab_size, options_.free_text_tokens.empty());
  for (int32_t t : options_.free_text_tokens) {
    FP4SERVE_CHECK(t >= 0 && t < options_.vocab_size, "fake model: free-text token {} outside the vocabulary", t);
    is_free_text_[t] = true;
  }
  is_free_text_[options_.eos_token] = false;
}

FakeStepModel::~FakeStepModel() = default;

void FakeStepModel::create_sequence(SequenceId id) {
  std::lock_guard lock(mutex_);
  FP4SERVE_CHECK(!sequences_.count(id), "fake model: sequence {} already exists", id);
  size_t bytes = options_.state_bytes_per_token * static_cast<size_t>(options_.max_context);
  sequences_.emplace(id, std::make_unique<Sequence>(bytes));
}

void FakeStepModel::free_sequence(SequenceId id) {
  std::lock_guard lock(mutex_);
  FP4SERVE_CHECK(sequences_.erase(id) == 1, "fake model: free of unknown sequence {}", id);
}

size_t FakeStepModel::live_sequences() const {
  std::lock_guard lock(mutex_);
  return sequences_.size();
}

size_t FakeStepModel::sequence_state_bytes() const {
  std::lock_guard lock(mutex_);
  size_t tokens = 0;
  for (const auto& [id, s] : sequences_) tokens += s->history.size();
  return tokens * options_.state_bytes_per_token;
}

void FakeStepModel::step(std::span<const StepItem> work, std::span<float> logits) {
  const size_t vocab = static_cast<size_t>(options_.vocab_size);
  FP4SERVE_CHECK(logits.size() >= work.size() * vocab, "fake model: logits buffer of {} floats for {} rows of {}",
                 logits.size(), work.size(), vocab);
  std::lock_guard lock(mutex_);
  for (size_t i = 0; i < work.size(); ++i) {
    const StepItem& w = work[i];
    auto it = sequences_.find(w.sequence);
    FP4SERVE_CHECK(it != sequences_.end(), "fake model: step on unknown sequence {}", w.sequence);
    Sequence& s = *it->second;
    FP4SERVE_CHECK(w.position == static_cast<int64_t>(s.history.size()),
                   "fake model: sequence {} is at position {}, work says {}", w.sequence, s.history.size(), w.position);
    FP4SERVE_CHECK(!w.tokens.empty(), "fake model: empty work for sequence {}", w.sequence);
    FP4SERVE_CHECK(w.position + static_cast<int64_t>(w.tokens.size()) <= options_.max_context,
                   "fake model: sequence {} would reach {} tokens, context is {}", w.sequence,
                   w.position + w.tokens.size(), options_.max_context);
    for (int32_t token : w.tokens) {
      FP4SERVE_CHECK(token >= 0 && token < options_.vocab_size, "fake model: token {} outside the vocabulary of {}",
                     token, options_.vocab_size);
      size_t slot = s.history.size() * options_.state_bytes_per_token;
      if (options_.state_bytes_per_token) {
        std::memset(s.state.data() + slot, static_cast<int>(s.hash & 0xff), options_.state_bytes_per_token);
      }
      s.history.push_back(token);
      s.hash = extend_hash(s.hash, token);
    }
    if (w.logits != LogitsMode::kNone) write_logits(s, logits.subspan(i * vocab, vocab));
  }
  if (options_.step_delay.count() > 0) std::this_thread::sleep_for(options_.step_delay);
}

void FakeStepModel::write_logits(Sequence& s, std::span<float> row) const {
  if (!s.prompt_seen) {
    s.prompt_seen = true;
    s.prompt_length = s.history.size();
    if (options_.decode) {
      static const std::string kOpen = "[[fake-reply]]", kClose = "[[/fake-reply]]";
      std::string prompt = options_.decode(s.history);
      size_t open = prompt.rfind(kOpen);
      size_t close = open == std::string::npos ? open : prompt.find(kClose, open + kOpen.size());
      if (close != std::string::npos) {
        s.scripted_reply = options_.encode(prompt.substr(open + kOpen.size(), close - open - kOpen.size()));
        for (int32_t t : s.scripted_reply) {
          FP4SERVE_CHECK(t >= 0 && t < options_.vocab_size, "fake model: scripted token {} outside the vocabulary", t);
        }
        s.has_script = true;
      }
    }
  }
  for (size_t v = 0; v < row.size(); ++v) {
    if (!is_free_text_[v]) {
      row[v] = kExcludedTokenLogit;
      continue;
    }
    uint64_t h = mix64(s.hash + v * 0xd1b54a32d192ed03ull);
    row[v] = static_cast<float>(h >> 40) * (kFreeTextLogitRange / 16777216.0f);
  }
  size_t generated = s.history.size() - s.prompt_length;
  if (s.has_script && generated <= s.scripted_reply.size()) {
    int32_t next = generated < s.scripted_reply.size() ? s.scripted_reply[generated] : options_.eos_token;
    row[next] = kScriptedTokenLogit;
  }
}

}  // namespace fp4serve::runtime

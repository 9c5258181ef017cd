#include "runtime/scheduler.h"

#include <algorithm>

#include "runtime/speculative_sampling.h"

namespace fp4serve::runtime {
namespace {

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// How long the idle loop sleeps when only queued requests exist (their
// deadlines must still be noticed).
constexpr auto kWaitingPoll = std::chrono::milliseconds(20);

// Below this many logits per step, threads cost more than they save.
constexpr size_t kParallelSamplingWork = size_t{1} << 20;

// Runs fn(0..n-1), split across the hardware threads when `worth_it`.
template <typename Fn>
void parallel_for(size_t n, bool worth_it, Fn fn) {
  const size_t threads = worth_it ? std::min<size_t>(n, std::max(1u, std::thread::hardware_concurrency())) : 1;
  if (threads <= 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::vector<std::thread> pool;
  for (size_t t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (size_t i = t; i < n; i += threads) fn(i);
    });
  }
  for (auto& th : pool) th.join();
}

}  // namespace

GenerationStream::Update GenerationStream::wait(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return !pending_.empty() || (finish_ && !finish_delivered_); });
  Update update;
  update.tokens.swap(pending_);
  if (finish_ && !finish_delivered_) {
    update.finish = finish_;
    finish_delivered_ = true;
  }
  return update;
}

void GenerationStream::push(SampledToken token) {
  {
    std::lock_guard lock(mutex_);
    pending_.push_back(std::move(token));
  }
  changed_.notify_all();
}

void GenerationStream::finish(Finish finish) {
  {
    std::lock_guard lock(mutex_);
    if (!finish_) finish_ = std::move(finish);
  }
  changed_.notify_all();
}

struct Scheduler::Sequence {
  Sequence(GenerationRequest r, std::shared_ptr<GenerationStream> s)
      : request(std::move(r)), stream(std::move(s)), sampler(request.sampling, request.prompt) {}
  GenerationRequest request;
  std::shared_ptr<GenerationStream> stream;
  SequenceSampler sampler;
  SequenceId id = 0;
  bool has_state = false;
  int64_t prefilled = 0;  // prompt tokens already in the model state
  int64_t generated = 0;
  int32_t last_token = -1;  // fed to the next decode step
  std::vector<DraftedToken> drafted;   // this step's drafts (speculative decoding)
  std::vector<int32_t> verify_tokens;  // [last_token, drafts...] as the step runs them
  std::optional<Finish> finish;
  Clock::time_point arrival = Clock::now();
  Clock::time_point scheduled, first_token, last_token_time;

  bool decoding() const { return prefilled == static_cast<int64_t>(request.prompt.size()); }
};

Scheduler::Scheduler(StepModel& model, SchedulerConfig config, SchedulerMetrics& metrics)
    : model_(model), config_(config), metrics_(metrics) {
  FP4SERVE_CHECK(config_.max_num_seqs >= 1, "--max-num-seqs must be >= 1 (got {})", config_.max_num_seqs);
  FP4SERVE_CHECK(config_.max_waiting >= 0, "the waiting-queue bound must be >= 0 (got {})", config_.max_waiting);
  FP4SERVE_CHECK(config_.max_batched_tokens >= 1, "--max-num-batched-tokens must be >= 1 (got {})",
                 config_.max_batched_tokens);
  thread_ = std::thread([this] { run(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

std::vector<std::shared_ptr<GenerationStream>> Scheduler::submit(std::vector<GenerationRequest> requests) {
  for (const auto& r : requests) {
    FP4SERVE_CHECK(!r.prompt.empty(), "the prompt is empty: at least one token is needed");
    FP4SERVE_CHECK(r.max_new_tokens >= 1, "max_new_tokens must be >= 1 (got {})", r.max_new_tokens);
    check_sampling_params(r.sampling);  // before any is queued: all or none
  }
  if (requests.size() > capacity()) {
    metrics_.count_rejected();
    throw TooLargeError(fmt::format("the request needs {} sequences at once, but the server holds at most {} ({} "
                                    "running, --max-num-seqs, plus {} queued); it can never be scheduled",
                                    requests.size(), capacity(), config_.max_num_seqs, config_.max_waiting));
  }
  std::vector<std::shared_ptr<GenerationStream>> streams;
  {
    std::lock_guard lock(mutex_);
    if (draining_ || stopping_) throw DrainingError("the server is shutting down and accepts no new requests");
    // Requests admitted at the next iteration don't wait: count free batch slots as queue room.
    size_t room = static_cast<size_t>(config_.max_waiting) +
                  static_cast<size_t>(std::max(0, config_.max_num_seqs - running_count_));
    if (waiting_.size() + requests.size() > room) {
      metrics_.count_rejected();
      throw QueueFullError(fmt::format("the request queue is full ({} waiting, {} running); retry later",
                                       waiting_.size(), running_count_));
    }
    for (auto& r : requests) {
      auto stream = std::make_shared<GenerationStream>();
      streams.push_back(stream);
      waiting_.push_back(std::make_unique<Sequence>(std::move(r), stream));
      waiting_.back()->id = next_id_++;
    }
  }
  wake_.notify_all();
  return streams;
}

void Scheduler::begin_drain() {
  std::lock_guard lock(mutex_);
  draining_ = true;
}

bool Scheduler::wait_until_idle(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return idle_.wait_for(lock, timeout, [&] { return waiting_.empty() && running_count_ == 0; });
}

Scheduler::Load Scheduler::load() const {
  Load l;
  {
    std::lock_guard lock(mutex_);
    l.running = running_count_;
    l.waiting = static_cast<int>(waiting_.size());
  }
  l.state_bytes = model_.sequence_state_bytes();
  return l;
}

void Scheduler::finish_sequence(Sequence& s, Finish finish) {
  if (s.has_state) {
    s.has_state = false;
    try {
      model_.free_sequence(s.id);
    } catch (const std::exception& e) {
      if (finish.error.empty()) finish = {FinishReason::kError, -1, e.what()};
    }
  }
  Clock::time_point now = Clock::now();
  if (s.generated > 0) {
    metrics_.e2e_request_latency.observe(seconds_between(s.arrival, now));
    metrics_.request_decode_time.observe(seconds_between(s.first_token, s.last_token_time));
    metrics_.request_generation_tokens.observe(static_cast<double>(s.generated));
  }
  s.stream->finish(finish);
  s.finish = std::move(finish);
}

// Frees, at once, the state of sequences that were cancelled, timed out or finished.
void Scheduler::retire_finished() {
  Clock::time_point now = Clock::now();
  for (auto& s : running_) {
    if (s->finish) continue;
    if (s->stream->cancelled()) {
      finish_sequence(*s, {FinishReason::kCancelled, -1, {}});
    } else if (now >= s->request.deadline) {
      finish_sequence(*s, {FinishReason::kTimeout, -1, {}});
    }
  }
  std::erase_if(running_, [](const auto& s) { return s->finish.has_value(); });
}

void Scheduler::admit_waiting() {
  std::vector<std::unique_ptr<Sequence>> admitted;
  std::vector<std::unique_ptr<Sequence>> dropped;
  {
    std::lock_guard lock(mutex_);
    Clock::time_point now = Clock::now();
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      if ((*it)->stream->cancelled() || now >= (*it)->request.deadline) {
        dropped.push_back(std::move(*it));
        it = waiting_.erase(it);
      } else {
        ++it;
      }
    }
    while (!waiting_.empty() && running_.size() + admitted.size() < static_cast<size_t>(config_.max_num_seqs)) {
      admitted.push_back(std::move(waiting_.front()));
      waiting_.pop_front();
    }
    // Counted as running from the moment they leave the queue, so submit()
    // never sees them in neither place (and over-admits).
    running_count_ = static_cast<int>(running_.size() + admitted.size());
  }
  for (auto& s : dropped) {
    finish_sequence(*s, {s->stream->cancelled() ? FinishReason::kCancelled : FinishReason::kTimeout, -1, {}});
  }
  for (auto& s : admitted) {
    s->scheduled = Clock::now();
    metrics_.request_queue_time.observe(seconds_between(s->arrival, s->scheduled));
    metrics_.request_prompt_tokens.observe(static_cast<double>(s->request.prompt.size()));
    try {
      model_.create_sequence(s->id);
      s->has_state = true;
      running_.push_back(std::move(s));
    } catch (const std::exception& e) {
      finish_sequence(*s, {FinishReason::kError, -1, e.what()});
    }
  }
}

namespace {

// Draws each drafted position with its sequence's sampler, keeping what verification needs.
class SequenceDrawer : public DraftDrawer {
 public:
  explicit SequenceDrawer(std::vector<std::pair<SequenceSampler*, std::vector<DraftedToken>*>> targets)
      : targets_(std::move(targets)) {}
  int32_t draw(size_t request, int64_t k, std::span<const float> logits) override {
    auto [sampler, drafted] = targets_.at(request);
    FP4SERVE_CHECK(static_cast<int64_t>(drafted->size()) == k, "speculation: draft position {} drawn out of order", k);
    pending_.clear();
    for (const DraftedToken& d : *drafted) pending_.push_back(d.token);
    drafted->push_back(draw_draft(*sampler, logits, pending_));
    return drafted->back().token;
  }

 private:
  std::vector<std::pair<SequenceSampler*, std::vector<DraftedToken>*>> targets_;
  std::vector<int32_t> pending_;
};

}  // namespace

// Drafts for every decoding sequence that has room (tokens left to generate, context, the
// step's token budget); a failed proposal ends those sequences.
void Scheduler::propose_drafts(int64_t budget) {
  DraftSource* source = model_.draft_source();
  if (source == nullptr) return;
  std::vector<DraftRequest> requests;
  std::vector<Sequence*> owners;
  std::vector<std::pair<SequenceSampler*, std::vector<DraftedToken>*>> targets;
  int64_t decodes = 0;
  for (auto& s : running_) decodes += s->decoding() ? 1 : 0;
  int64_t spare = budget - decodes;
  for (auto& s : running_) {
    s->drafted.clear();
    if (!s->decoding() || spare <= 0) continue;
    const int64_t length = static_cast<int64_t>(s->request.prompt.size()) + s->generated;
    const int64_t k = std::min({source->max_draft_tokens(), s->request.max_new_tokens - s->generated - 1,
                                model_.max_context() - length, spare});
    if (k < 1) continue;
    requests.push_back({s->id, length - 1, s->last_token, k});
    owners.push_back(s.get());
    targets.push_back({&s->sampler, &s->drafted});
    spare -= k;
  }
  if (requests.empty()) return;
  SequenceDrawer drawer(std::move(targets));
  std::vector<std::vector<int32_t>> drafts;
  try {
    source->propose(requests, drawer, drafts);
  } catch (const std::exception& e) {
    for (Sequence* s : owners) finish_sequence(*s, {FinishReason::kError, -1, e.what()});
    std::erase_if(running_, [](const auto& s) { return s->finish.has_value(); });
    return;
  }
  for (size_t i = 0; i < owners.size(); ++i) {
    Sequence& s = *owners[i];
    s.drafted.resize(std::min(s.drafted.size(), drafts[i].size()));  // a confidence trim drops the rest
    if (!s.drafted.empty()) metrics_.count_draft(static_cast<int64_t>(s.drafted.size()));
  }
}

void Scheduler::run_one_step() {
  std::vector<StepItem> work;
  std::vector<Sequence*> owners;
  int64_t budget = config_.max_batched_tokens;
  propose_drafts(budget);
  // Decodes first: one token each keeps every running stream moving; with drafts, the
  // last token and the drafts to verify.
  for (auto& s : running_) {
    if (!s->decoding()) continue;
    StepItem w;
    w.sequence = s->id;
    w.position = static_cast<int64_t>(s->request.prompt.size()) + s->generated - 1;
    if (s->drafted.empty()) {
      w.tokens = std::span<const int32_t>(&s->last_token, 1);
    } else {
      s->verify_tokens.assign(1, s->last_token);
      for (const DraftedToken& d : s->drafted) s->verify_tokens.push_back(d.token);
      w.tokens = s->verify_tokens;
      w.logits = LogitsMode::kAll;
    }
    work.push_back(w);
    owners.push_back(s.get());
    budget -= static_cast<int64_t>(w.tokens.size());
  }
  // Then prompt chunks, oldest first, in what is left of the budget (at least
  // one token, so prefill always progresses).
  budget = std::max<int64_t>(budget, 1);
  for (auto& s : running_) {
    if (s->decoding() || budget <= 0) continue;
    const auto& prompt = s->request.prompt;
    int64_t chunk = std::min<int64_t>(budget, static_cast<int64_t>(prompt.size()) - s->prefilled);
    StepItem w;
    w.sequence = s->id;
    w.position = s->prefilled;
    w.tokens = std::span<const int32_t>(prompt.data() + s->prefilled, static_cast<size_t>(chunk));
    w.logits = s->prefilled + chunk == static_cast<int64_t>(prompt.size()) ? LogitsMode::kLast : LogitsMode::kNone;
    work.push_back(w);
    owners.push_back(s.get());
    budget -= chunk;
  }
  if (work.empty()) return;

  int64_t step_tokens = 0;
  for (const auto& w : work) step_tokens += static_cast<int64_t>(w.tokens.size());
  metrics_.iteration_tokens.observe(static_cast<double>(step_tokens));
  const size_t vocab = static_cast<size_t>(model_.vocab_size());
  std::vector<size_t> slot(work.size());  // each item's first logits row
  size_t slots = 0;
  for (size_t i = 0; i < work.size(); ++i) {
    slot[i] = slots;
    slots += work[i].logits == LogitsMode::kAll ? work[i].tokens.size() : 1;
  }
  logits_.resize(slots * vocab);
  try {
    model_.step(work, logits_);
  } catch (const std::exception& e) {
    // A failed step leaves the states of its sequences unknown: end them all.
    for (Sequence* s : owners) finish_sequence(*s, {FinishReason::kError, -1, e.what()});
    return;
  }

  // Which items get a token this step: prefill bookkeeping first.
  std::vector<size_t> to_sample;
  for (size_t i = 0; i < work.size(); ++i) {
    Sequence& s = *owners[i];
    if (!s.decoding()) {
      s.prefilled += static_cast<int64_t>(work[i].tokens.size());
      metrics_.add_prompt_tokens(work[i].tokens.size());
      if (work[i].logits == LogitsMode::kNone) continue;
    }
    if (!s.stream->cancelled()) to_sample.push_back(i);  // cancelled ones are retired next iteration
  }

  // Sampling touches only each sequence's own sampler, so it runs in parallel
  // (a large vocabulary makes it cost about a millisecond per sequence).
  // A verified item gives its accepted drafts and one more token.
  std::vector<std::vector<SampledToken>> sampled(to_sample.size());
  std::vector<int64_t> accepted(to_sample.size(), -1);
  std::vector<std::string> errors(to_sample.size());
  parallel_for(to_sample.size(), vocab * to_sample.size() >= kParallelSamplingWork, [&](size_t k) {
    const size_t i = to_sample[k];
    Sequence& s = *owners[i];
    try {
      if (work[i].logits == LogitsMode::kAll) {
        const size_t rows = work[i].tokens.size();
        Verification v = verify_drafts(s.sampler, std::span<const float>(logits_.data() + slot[i] * vocab, rows * vocab),
                                       static_cast<int64_t>(vocab), s.drafted);
        accepted[k] = v.accepted;
        sampled[k] = std::move(v.emitted);
      } else {
        sampled[k].push_back(s.sampler.sample(std::span<const float>(logits_.data() + slot[i] * vocab, vocab)));
      }
    } catch (const std::exception& e) {
      errors[k] = e.what();  // e.g. logits without a finite maximum
    }
  });

  // Verified items: the model keeps the accepted prefix only.
  std::vector<VerifiedItem> verified;
  std::vector<size_t> verified_k;
  for (size_t k = 0; k < to_sample.size(); ++k) {
    if (accepted[k] < 0 || !errors[k].empty()) continue;
    const StepItem& w = work[to_sample[k]];
    verified.push_back({w.sequence, w.position, w.tokens, accepted[k]});
    verified_k.push_back(k);
    metrics_.count_accepted(accepted[k]);
  }
  if (!verified.empty()) {
    try {
      model_.draft_source()->finish_verification(verified);
    } catch (const std::exception& e) {
      for (size_t k : verified_k) errors[k] = e.what();
    }
  }

  Clock::time_point now = Clock::now();
  for (size_t k = 0; k < to_sample.size(); ++k) {
    Sequence& s = *owners[to_sample[k]];
    if (!errors[k].empty()) {
      finish_sequence(s, {FinishReason::kError, -1, errors[k]});  // this sequence cannot go on; the others can
      continue;
    }
    for (SampledToken& token : sampled[k]) {
      if (s.finish) break;
      emit(s, std::move(token), now);
    }
  }
  std::erase_if(running_, [](const auto& s) { return s->finish.has_value(); });
}

// Hands one generated token to the sequence's stream and ends the sequence at a stop token,
// max_new_tokens or a full context.
void Scheduler::emit(Sequence& s, SampledToken token, Clock::time_point now) {
  s.last_token = token.token;
  ++s.generated;
  metrics_.add_generation_tokens(1);
  if (s.generated == 1) {
    s.first_token = now;
    metrics_.time_to_first_token.observe(seconds_between(s.arrival, now));
    metrics_.request_prefill_time.observe(seconds_between(s.scheduled, now));
  } else {
    metrics_.inter_token_latency.observe(seconds_between(s.last_token_time, now));
  }
  s.last_token_time = now;
  const int32_t id = token.token;
  s.stream->push(std::move(token));

  const auto& stops = s.request.stop_token_ids;
  const int64_t length = static_cast<int64_t>(s.request.prompt.size()) + s.generated;
  if (std::find(stops.begin(), stops.end(), id) != stops.end()) {
    finish_sequence(s, {FinishReason::kStopToken, id, {}});
  } else if (s.generated >= s.request.max_new_tokens || length >= model_.max_context()) {
    finish_sequence(s, {FinishReason::kLength, -1, {}});
  }
}

void Scheduler::run() {
  while (true) {
    {
      std::unique_lock lock(mutex_);
      running_count_ = static_cast<int>(running_.size());
      if (running_.empty() && waiting_.empty()) idle_.notify_all();
      if (stopping_) break;
      if (running_.empty()) {
        if (waiting_.empty()) {
          wake_.wait(lock, [&] { return stopping_ || !waiting_.empty(); });
        }
        if (stopping_) break;
      }
    }
    retire_finished();
    admit_waiting();
    {
      std::lock_guard lock(mutex_);
      running_count_ = static_cast<int>(running_.size());
    }
    if (running_.empty()) {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, kWaitingPoll);
      continue;
    }
    run_one_step();
  }
  // Shutting down: end whatever is left so no consumer waits forever.
  for (auto& s : running_) finish_sequence(*s, {FinishReason::kCancelled, -1, "the server stopped"});
  running_.clear();
  std::lock_guard lock(mutex_);
  for (auto& s : waiting_) s->stream->finish({FinishReason::kCancelled, -1, "the server stopped"});
  waiting_.clear();
  running_count_ = 0;
  idle_.notify_all();
}

}  // namespace fp4serve::runtime

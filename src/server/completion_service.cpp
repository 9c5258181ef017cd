#include "server/completion_service.h"

#include <ctime>
#include <map>
#include <random>

#include "server/api_error.h"
#include "server/request_run.h"

namespace fp4serve::server {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr auto kClientCheckInterval = 100ms;

std::string random_id(const char* prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{}{:016x}{:08x}", prefix, rng(), static_cast<uint32_t>(rng()));
}

json byte_list(const std::string& bytes) {
  json list = json::array();
  for (unsigned char c : bytes) list.push_back(c);
  return list;
}

json chat_logprob_entry(const LogprobEntry& e) {
  json top = json::array();
  for (const auto& [bytes, lp] : e.top) {
    top.push_back({{"token", printable_token(bytes)}, {"logprob", lp}, {"bytes", byte_list(bytes)}});
  }
  return {{"token", printable_token(e.token_bytes)}, {"logprob", e.logprob}, {"bytes", byte_list(e.token_bytes)},
          {"top_logprobs", top}};
}

// The legacy completions shape: parallel lists plus one {token: logprob} map per position.
json completion_logprobs(const std::vector<LogprobEntry>& entries, size_t text_offset) {
  json tokens = json::array(), token_logprobs = json::array(), top = json::array(), offsets = json::array();
  for (const auto& e : entries) {
    std::string token = printable_token(e.token_bytes);
    tokens.push_back(token);
    token_logprobs.push_back(e.logprob);
    json alternatives = json::object();
    for (const auto& [bytes, lp] : e.top) alternatives[printable_token(bytes)] = lp;
    top.push_back(alternatives);
    offsets.push_back(text_offset);
    text_offset += token.size();
  }
  return {{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top}, {"text_offset", offsets}};
}

json tool_call_delta_json(const ToolCallDelta& d) {
  json call = {{"index", d.index}};
  if (!d.id.empty()) call["id"] = d.id;
  if (!d.name.empty()) {
    call["type"] = "function";
    call["function"] = {{"name", d.name}, {"arguments", d.arguments}};
  } else {
    call["function"] = {{"arguments", d.arguments}};
  }
  return call;
}

json usage_json(int64_t prompt_tokens, const RequestRun& run) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", run.completion_tokens()},
          {"total_tokens", prompt_tokens + run.completion_tokens()},
          {"prompt_tokens_details", {{"cached_tokens", 0}}},
          {"completion_tokens_details", {{"reasoning_tokens", run.reasoning_tokens()}}}};
}

// Collects one chat choice's deltas into a complete message.
struct ChatChoiceText {
  std::string reasoning, content;
  std::map<int, json> tool_calls;
  json logprobs = json::array();

  void add(const ChoiceOutput::Delta& d) {
    reasoning += d.text.reasoning_content;
    content += d.text.content;
    for (const auto& t : d.text.tool_calls) {
      json& call = tool_calls[t.index];
      if (call.is_null()) call = {{"id", t.id}, {"type", "function"}, {"function", {{"name", t.name}, {"arguments", ""}}}};
      call["function"]["arguments"] = call["function"]["arguments"].get<std::string>() + t.arguments;
    }
    for (const auto& e : d.logprobs) logprobs.push_back(chat_logprob_entry(e));
  }
};

}  // namespace

std::string sse_event(const json& payload) {
  return "data: " + payload.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

struct CompletionService::Prepared {
  std::vector<ChoiceSpec> choices;
  std::vector<std::string> echo_texts;  // per choice, completions with echo
  int64_t prompt_tokens = 0;
  std::vector<int32_t> stop_token_ids;
};

CompletionService::CompletionService(const ServingText& text, runtime::Scheduler& scheduler,
                                     runtime::SchedulerMetrics& metrics, ServiceConfig config)
    : text_(text), scheduler_(scheduler), metrics_(metrics), config_(std::move(config)) {}

void CompletionService::check_model(const std::optional<std::string>& model) const {
  if (model && *model != config_.served_model_name) {
    throw ApiError(404, fmt::format("The model '{}' does not exist; this server serves '{}'", *model,
                                    config_.served_model_name),
                   "model", "model_not_found");
  }
}

// Before any tokenizing: a request with more choices (n x prompts) than the
// scheduler holds at once can never run, so it is a 400, not a 429 to retry.
void CompletionService::check_capacity(size_t sequences, const GenerationOptions& options) const {
  const size_t capacity = scheduler_.capacity();
  if (sequences <= capacity) return;
  const size_t n = static_cast<size_t>(options.n);
  throw ApiError(400,
                 fmt::format("This server runs at most {} sequences at once ({} running, --max-num-seqs, plus {} "
                             "queued). However, you requested {} ({} prompts x n={}). Reduce n or the prompts",
                             capacity, scheduler_.config().max_num_seqs, scheduler_.config().max_waiting, sequences,
                             sequences / n, n),
                 n > 1 ? "n" : "prompt", "request_too_large");
}

void CompletionService::check_token_ids(const std::vector<int32_t>& ids, const char* param) const {
  for (int32_t id : ids) {
    if (id >= text_.vocab_size()) {
      bad_request(param, fmt::format("token id {} in '{}' is outside the vocabulary of {}", id, param, text_.vocab_size()));
    }
  }
}

int64_t CompletionService::resolve_max_tokens(int64_t prompt_tokens, std::optional<int64_t> requested,
                                              const char* param) const {
  const int64_t limit = config_.max_model_len;
  std::string message;
  if (prompt_tokens >= limit) {
    message = fmt::format("This model's maximum context length is {} tokens, but the prompt has {} tokens; "
                          "no room is left for the completion", limit, prompt_tokens);
  } else if (requested && prompt_tokens + *requested > limit) {
    message = fmt::format("This model's maximum context length is {} tokens. However, you requested {} tokens "
                          "({} in the prompt, {} for the completion). Reduce the prompt or max_tokens",
                          limit, prompt_tokens + *requested, prompt_tokens, *requested);
  } else {
    return requested.value_or(limit - prompt_tokens);
  }
  ApiError error(400, message, param, "context_length_exceeded");
  error.extra = {{"n_prompt_tokens", prompt_tokens}, {"n_ctx", limit}};
  throw error;
}

std::vector<int32_t> CompletionService::stop_token_ids(const GenerationOptions& options) const {
  check_token_ids(options.stop_token_ids, "stop_token_ids");
  std::vector<int32_t> ids = options.stop_token_ids;
  if (!options.ignore_eos) ids.push_back(text_.eos_token());
  std::vector<int32_t> bias_ids;
  for (const auto& [id, bias] : options.sampling.logit_bias) bias_ids.push_back(id);
  check_token_ids(bias_ids, "logit_bias");
  return ids;
}

CompletionService::Prepared CompletionService::prepare_chat(const ChatRequest& request) const {
  check_model(request.model);
  check_capacity(static_cast<size_t>(request.options.n), request.options);
  Prepared p;
  p.stop_token_ids = stop_token_ids(request.options);
  std::vector<int32_t> prompt;
  try {
    prompt = text_.encode(text_.render_chat(request), false);
  } catch (const ApiError&) {
    throw;
  } catch (const Error& e) {
    throw ApiError(400, e.what(), "messages");
  }
  int64_t max_new = resolve_max_tokens(static_cast<int64_t>(prompt.size()), request.options.max_tokens, "messages");
  p.prompt_tokens = static_cast<int64_t>(prompt.size());
  for (int i = 0; i < request.options.n; ++i) {
    p.choices.push_back({prompt, max_new, text_.output_parser(request.thinking, request.render_tools)});
  }
  return p;
}

CompletionService::Prepared CompletionService::prepare_completion(const CompletionRequest& request) const {
  check_model(request.model);
  check_capacity(request.prompts.size() * static_cast<size_t>(request.options.n), request.options);
  Prepared p;
  p.stop_token_ids = stop_token_ids(request.options);
  for (const auto& prompt : request.prompts) {
    std::vector<int32_t> ids;
    std::string echo;
    if (const auto* text = std::get_if<std::string>(&prompt)) {
      try {
        ids = text_.encode(*text, true);
      } catch (const Error& e) {
        throw ApiError(400, e.what(), "prompt");
      }
      echo = *text;
    } else {
      ids = std::get<std::vector<int32_t>>(prompt);
      check_token_ids(ids, "prompt");
      if (request.echo) echo = text_.decode(ids, request.options.skip_special_tokens);
    }
    int64_t max_new = resolve_max_tokens(static_cast<int64_t>(ids.size()), request.options.max_tokens, "prompt");
    p.prompt_tokens += static_cast<int64_t>(ids.size());
    for (int i = 0; i < request.options.n; ++i) {
      p.choices.push_back({ids, max_new, nullptr});
      p.echo_texts.push_back(request.echo ? echo : std::string());
    }
  }
  return p;
}

namespace {

// Runs until every choice is done, checking on the client between polls.
void run_to_end(RequestRun& run, const ClientGone& client_gone,
                const std::function<void(const RequestRun::ChoiceEvent&)>& on_event) {
  while (!run.done()) {
    for (const auto& event : run.poll(kClientCheckInterval)) on_event(event);
    if (!run.done() && client_gone && client_gone()) {
      run.cancel();
      throw ApiError(499, "the client closed the connection", {}, "client_closed");
    }
  }
}

}  // namespace

json CompletionService::chat(const ChatRequest& request, const ClientGone& client_gone) {
  Prepared p = prepare_chat(request);
  const int64_t prompt_tokens = p.prompt_tokens;
  RequestRun run(scheduler_, metrics_, text_, request.options, std::move(p.choices), p.stop_token_ids,
                 runtime::Clock::now() + config_.request_timeout);
  std::vector<ChatChoiceText> texts(run.choices());
  run_to_end(run, client_gone, [&](const RequestRun::ChoiceEvent& e) { texts[e.index].add(e.delta); });

  json choices = json::array();
  for (size_t i = 0; i < texts.size(); ++i) {
    const ChatChoiceText& t = texts[i];
    json message = {{"role", "assistant"}};
    message["content"] = t.content.empty() && !t.tool_calls.empty() ? json(nullptr) : json(t.content);
    if (request.thinking == ThinkingMode::kThinking) message["reasoning_content"] = t.reasoning;
    if (!t.tool_calls.empty()) {
      message["tool_calls"] = json::array();
      for (const auto& [index, call] : t.tool_calls) message["tool_calls"].push_back(call);
    }
    if (request.response_format == "json_object" && !json::accept(t.content)) {
      // We validate rather than constrain: say so instead of returning non-JSON.
      throw ApiError(422, fmt::format("response_format json_object: choice {} is not valid JSON (fp4serve validates "
                                      "JSON output but does not constrain decoding yet): {}", i,
                                      t.content.substr(0, 200)),
                     "response_format", "invalid_json_output");
    }
    choices.push_back({{"index", i},
                       {"message", message},
                       {"logprobs", request.options.logprobs ? json{{"content", t.logprobs}} : json(nullptr)},
                       {"finish_reason", run.output(i).finish_reason()},
                       {"stop_reason", run.output(i).stop_reason()}});
  }
  return {{"id", random_id("chatcmpl-")},
          {"object", "chat.completion"},
          {"created", static_cast<int64_t>(std::time(nullptr))},
          {"model", config_.served_model_name},
          {"choices", choices},
          {"usage", usage_json(prompt_tokens, run)}};
}

json CompletionService::completion(const CompletionRequest& request, const ClientGone& client_gone) {
  Prepared p = prepare_completion(request);
  const int64_t prompt_tokens = p.prompt_tokens;
  std::vector<std::string> texts = p.echo_texts;
  RequestRun run(scheduler_, metrics_, text_, request.options, std::move(p.choices), p.stop_token_ids,
                 runtime::Clock::now() + config_.request_timeout);
  std::vector<std::vector<LogprobEntry>> logprobs(run.choices());
  run_to_end(run, client_gone, [&](const RequestRun::ChoiceEvent& e) {
    texts[e.index] += e.delta.text.content;
    logprobs[e.index].insert(logprobs[e.index].end(), e.delta.logprobs.begin(), e.delta.logprobs.end());
  });
  json choices = json::array();
  for (size_t i = 0; i < texts.size(); ++i) {
    choices.push_back(
        {{"index", i},
         {"text", texts[i]},
         {"logprobs", request.options.logprobs ? completion_logprobs(logprobs[i], p.echo_texts[i].size()) : json(nullptr)},
         {"finish_reason", run.output(i).finish_reason()},
         {"stop_reason", run.output(i).stop_reason()}});
  }
  return {{"id", random_id("cmpl-")},
          {"object", "text_completion"},
          {"created", static_cast<int64_t>(std::time(nullptr))},
          {"model", config_.served_model_name},
          {"choices", choices},
          {"usage", usage_json(prompt_tokens, run)}};
}

namespace {

// SSE for both endpoints; `chat` picks the chunk shape.
class StreamingResponse : public EventSource {
 public:
  StreamingResponse(std::unique_ptr<RequestRun> run, bool chat, const ServiceConfig& config, const GenerationOptions& o,
                    int64_t prompt_tokens, std::vector<std::string> echo_texts, bool json_object)
      : run_(std::move(run)),
        chat_(chat),
        model_(config.served_model_name),
        id_(random_id(chat ? "chatcmpl-" : "cmpl-")),
        created_(static_cast<int64_t>(std::time(nullptr))),
        include_usage_(o.include_usage),
        logprobs_(o.logprobs),
        prompt_tokens_(prompt_tokens),
        echo_texts_(std::move(echo_texts)),
        json_object_(json_object),
        contents_(run_->choices()) {}

  bool next(std::string& out, std::chrono::milliseconds wait) override {
    if (ended_) return false;
    if (!started_) {
      started_ = true;
      for (size_t i = 0; i < run_->choices(); ++i) {
        if (chat_) {
          out += sse_event(chunk(i, {{"role", "assistant"}, {"content", ""}}, nullptr));
        } else if (i < echo_texts_.size() && !echo_texts_[i].empty()) {
          out += sse_event(chunk(i, echo_texts_[i], nullptr));
        }
      }
      return true;
    }
    try {
      for (const auto& e : run_->poll(wait)) write_event(e, out);
    } catch (const ApiError& error) {
      out += sse_event(error.to_json());
      return end(out);
    } catch (const std::exception& e) {
      out += sse_event(ApiError(500, std::string("internal error: ") + e.what()).to_json());
      return end(out);
    }
    if (run_->done()) {
      if (include_usage_) {
        json usage = chunk_base();
        usage["choices"] = json::array();
        usage["usage"] = usage_json(prompt_tokens_, *run_);
        out += sse_event(usage);
      }
      return end(out);
    }
    return true;
  }

  void cancel() override { run_->cancel(); }

 private:
  bool end(std::string& out) {
    out += "data: [DONE]\n\n";
    ended_ = true;
    return false;
  }

  json chunk_base() const {
    json c = {{"id", id_}, {"object", chat_ ? "chat.completion.chunk" : "text_completion"}, {"created", created_},
              {"model", model_}};
    if (include_usage_) c["usage"] = nullptr;
    return c;
  }

  json chunk(size_t index, json delta, json finish_reason, json logprobs = nullptr, json stop_reason = nullptr) const {
    json choice = {{"index", index}};
    choice[chat_ ? "delta" : "text"] = std::move(delta);
    choice["logprobs"] = std::move(logprobs);
    const bool last = !finish_reason.is_null();
    choice["finish_reason"] = std::move(finish_reason);
    if (last) choice["stop_reason"] = std::move(stop_reason);
    json c = chunk_base();
    c["choices"] = json::array({choice});
    return c;
  }

  void write_event(const RequestRun::ChoiceEvent& e, std::string& out) {
    const auto& d = e.delta;
    json logprobs = nullptr;
    if (logprobs_ && !d.logprobs.empty()) {
      if (chat_) {
        json content = json::array();
        for (const auto& entry : d.logprobs) content.push_back(chat_logprob_entry(entry));
        logprobs = {{"content", content}};
      } else {
        logprobs = completion_logprobs(d.logprobs, 0);
      }
    }
    if (!d.text.empty() || !logprobs.is_null()) {
      if (chat_) {
        json delta = json::object();
        if (!d.text.reasoning_content.empty()) delta["reasoning_content"] = d.text.reasoning_content;
        if (!d.text.content.empty() || delta.empty()) delta["content"] = d.text.content;
        if (!d.text.tool_calls.empty()) {
          delta["tool_calls"] = json::array();
          for (const auto& t : d.text.tool_calls) delta["tool_calls"].push_back(tool_call_delta_json(t));
        }
        out += sse_event(chunk(e.index, delta, nullptr, logprobs));
      } else {
        out += sse_event(chunk(e.index, d.text.content, nullptr, logprobs));
      }
      contents_[e.index] += d.text.content;
    }
    if (e.finished) {
      if (json_object_ && !json::accept(contents_[e.index])) {
        ApiError error(422, fmt::format("response_format json_object: choice {} is not valid JSON (fp4serve validates "
                                        "JSON output but does not constrain decoding yet)", e.index),
                       "response_format", "invalid_json_output");
        out += sse_event(error.to_json());
      }
      const ChoiceOutput& o = run_->output(e.index);
      out += sse_event(chunk(e.index, chat_ ? json::object() : json(""), o.finish_reason(), nullptr, o.stop_reason()));
    }
  }

  std::unique_ptr<RequestRun> run_;
  bool chat_;
  std::string model_, id_;
  int64_t created_;
  bool include_usage_, logprobs_;
  int64_t prompt_tokens_;
  std::vector<std::string> echo_texts_;
  bool json_object_;
  std::vector<std::string> contents_;
  bool started_ = false, ended_ = false;
};

}  // namespace

std::unique_ptr<EventSource> CompletionService::chat_stream(const ChatRequest& request) {
  Prepared p = prepare_chat(request);
  auto run = std::make_unique<RequestRun>(scheduler_, metrics_, text_, request.options, std::move(p.choices),
                                          p.stop_token_ids, runtime::Clock::now() + config_.request_timeout);
  return std::make_unique<StreamingResponse>(std::move(run), true, config_, request.options, p.prompt_tokens,
                                             std::vector<std::string>{}, request.response_format == "json_object");
}

std::unique_ptr<EventSource> CompletionService::completion_stream(const CompletionRequest& request) {
  Prepared p = prepare_completion(request);
  auto run = std::make_unique<RequestRun>(scheduler_, metrics_, text_, request.options, std::move(p.choices),
                                          p.stop_token_ids, runtime::Clock::now() + config_.request_timeout);
  return std::make_unique<StreamingResponse>(std::move(run), false, config_, request.options, p.prompt_tokens,
                                             std::move(p.echo_texts), false);
}

json CompletionService::tokenize(const TokenizeRequest& request) const {
  check_model(request.model);
  std::vector<int32_t> ids;
  try {
    ids = request.chat ? text_.encode(text_.render_chat(*request.chat), false)
                       : text_.encode(*request.prompt, request.add_special_tokens);
  } catch (const Error& e) {
    throw ApiError(400, e.what(), request.chat ? "messages" : "prompt");
  }
  json out = {{"count", ids.size()}, {"max_model_len", config_.max_model_len}, {"tokens", ids}};
  if (request.return_token_strs) {
    json strs = json::array();
    for (int32_t id : ids) strs.push_back(printable_token(text_.token_bytes(id)));
    out["token_strs"] = strs;
  }
  return out;
}

json CompletionService::detokenize(const DetokenizeRequest& request) const {
  check_model(request.model);
  check_token_ids(request.tokens, "tokens");
  return {{"prompt", text_.decode(request.tokens, false)}};
}

json CompletionService::models() const {
  json card = {{"id", config_.served_model_name}, {"object", "model"}, {"created", static_cast<int64_t>(std::time(nullptr))},
               {"owned_by", "fp4serve"}, {"root", config_.served_model_name}, {"parent", nullptr},
               {"max_model_len", config_.max_model_len}, {"permission", json::array()}};
  return {{"object", "list"}, {"data", json::array({card})}};
}

}  // namespace fp4serve::server

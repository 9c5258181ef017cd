#include "server/openai_request.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>

#include "server/api_error.h"
#include "server/request_json.h"

namespace fp4serve::server {
namespace {

// Ordered: prompts render tool schemas in the client's key order.
using json = nlohmann::ordered_json;

// The top-level fields each endpoint reads; parse_request_object drops the
// others unbuilt. Fields::get refuses to read one missing here (a 500 in
// every test that touches it), so the lists cannot fall behind the readers.
constexpr std::string_view kGenerationFields[] = {
    "model", "temperature", "top_p", "top_k", "min_p", "presence_penalty", "frequency_penalty", "repetition_penalty",
    "seed", "logit_bias", "stop", "stop_token_ids", "include_stop_str_in_output", "ignore_eos", "skip_special_tokens",
    "n", "stream", "stream_options", "max_tokens", "logprobs"};
constexpr std::string_view kChatFields[] = {
    "messages", "tools", "tool_choice", "thinking", "chat_template_kwargs", "reasoning_effort", "response_format",
    "add_generation_prompt", "max_completion_tokens", "top_logprobs"};
constexpr std::string_view kCompletionFields[] = {"prompt", "suffix", "echo"};
constexpr std::string_view kTokenizeFields[] = {"prompt", "add_special_tokens", "return_token_strs"};
constexpr std::string_view kDetokenizeFields[] = {"model", "tokens"};

bool listed(FieldNames names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// Typed access to optional request fields; null counts as absent (the SDKs
// send explicit nulls). `path` prefixes field names in messages ("stream_options.").
class Fields {
 public:
  Fields(const json& object, std::string path = {}) : object_(object), path_(std::move(path)) {}
  // The request body itself: only the fields it kept may be asked for.
  Fields(const json& body, std::vector<FieldNames> kept) : object_(body), kept_(std::move(kept)) {}

  const json* get(const char* name) const {
    if (!kept_.empty() && std::none_of(kept_.begin(), kept_.end(), [&](FieldNames f) { return listed(f, name); })) {
      throw std::logic_error(fmt::format("request field '{}' is read but was not kept by the parser", name));
    }
    auto it = object_.find(name);
    return it == object_.end() || it->is_null() ? nullptr : &*it;
  }
  std::string name(const char* field) const { return path_ + field; }

  std::optional<bool> boolean(const char* field) const {
    const json* v = get(field);
    if (!v) return std::nullopt;
    if (!v->is_boolean()) bad_request(name(field), fmt::format("'{}' must be a boolean, got {}", name(field), json_type_name(*v)));
    return v->get<bool>();
  }

  std::optional<double> number(const char* field, double min, double max) const {
    const json* v = get(field);
    if (!v) return std::nullopt;
    if (!v->is_number()) bad_request(name(field), fmt::format("'{}' must be a number, got {}", name(field), json_type_name(*v)));
    double x = v->get<double>();
    if (!(x >= min && x <= max)) {
      bad_request(name(field), fmt::format("'{}' must be in [{}, {}], got {}", name(field), min, max, x));
    }
    return x;
  }

  std::optional<int64_t> integer(const char* field, int64_t min, int64_t max) const {
    const json* v = get(field);
    if (!v) return std::nullopt;
    if (!v->is_number_integer()) {
      bad_request(name(field), fmt::format("'{}' must be an integer, got {}", name(field), json_type_name(*v)));
    }
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      bad_request(name(field), fmt::format("'{}' must be in [{}, {}]", name(field), min, max));
    }
    int64_t x = v->get<int64_t>();
    if (x < min || x > max) bad_request(name(field), fmt::format("'{}' must be in [{}, {}], got {}", name(field), min, max, x));
    return x;
  }

  std::optional<std::string> string(const char* field) const {
    const json* v = get(field);
    if (!v) return std::nullopt;
    if (!v->is_string()) bad_request(name(field), fmt::format("'{}' must be a string, got {}", name(field), json_type_name(*v)));
    return v->get<std::string>();
  }

 private:
  const json& object_;
  std::string path_;
  std::vector<FieldNames> kept_;
};

std::vector<int32_t> token_id_list(const json& v, const std::string& field) {
  if (!v.is_array()) bad_request(field, fmt::format("'{}' must be an array of token ids", field));
  std::vector<int32_t> ids;
  for (size_t i = 0; i < v.size(); ++i) {
    const json& t = v[i];
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      bad_request(field, fmt::format("'{}[{}]' must be a non-negative integer token id", field, i));
    }
    ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  return ids;
}

std::vector<std::string> stop_strings(const Fields& f) {
  const json* v = f.get("stop");
  if (!v) return {};
  std::vector<std::string> stops;
  if (v->is_string()) {
    stops.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    for (const json& s : *v) {
      if (!s.is_string()) bad_request("stop", "'stop' must be a string or an array of strings");
      stops.push_back(s.get<std::string>());
    }
  } else {
    bad_request("stop", fmt::format("'stop' must be a string or an array of strings, got {}", json_type_name(*v)));
  }
  for (const auto& s : stops) {
    if (s.empty()) bad_request("stop", "'stop' strings must not be empty");
  }
  return stops;
}

// The fields /v1/chat/completions and /v1/completions share.
GenerationOptions generation_options(const Fields& f, const SamplingDefaults& defaults) {
  GenerationOptions o;
  runtime::SamplingParams& s = o.sampling;
  s.temperature = f.number("temperature", 0.0, 2.0).value_or(defaults.temperature);
  s.top_p = f.number("top_p", 0.0, 1.0).value_or(defaults.top_p);
  if (s.top_p <= 0.0) bad_request("top_p", "'top_p' must be in (0, 1], got 0");
  int64_t top_k = f.integer("top_k", -1, std::numeric_limits<int32_t>::max()).value_or(defaults.top_k);
  s.top_k = top_k < 0 ? 0 : static_cast<int>(top_k);  // -1 also means off (vLLM)
  s.min_p = f.number("min_p", 0.0, 1.0).value_or(defaults.min_p);
  s.presence_penalty = f.number("presence_penalty", -2.0, 2.0).value_or(0.0);
  s.frequency_penalty = f.number("frequency_penalty", -2.0, 2.0).value_or(0.0);
  s.repetition_penalty = f.number("repetition_penalty", 0.0, 1e6).value_or(defaults.repetition_penalty);
  if (s.repetition_penalty <= 0.0) bad_request("repetition_penalty", "'repetition_penalty' must be > 0");
  if (auto seed = f.integer("seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max())) {
    s.seed = static_cast<uint64_t>(*seed);
  } else {
    s.seed = std::random_device{}() * 0x100000001ull ^ std::random_device{}();
  }
  if (const json* bias = f.get("logit_bias")) {
    if (!bias->is_object()) bad_request("logit_bias", "'logit_bias' must be an object of token id -> bias");
    for (const auto& [key, value] : bias->items()) {
      size_t used = 0;
      long long id = -1;
      try {
        id = std::stoll(key, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != key.size() || id < 0 || id > std::numeric_limits<int32_t>::max()) {
        bad_request("logit_bias", fmt::format("'logit_bias' key '{}' is not a token id", key));
      }
      if (!value.is_number() || !(value.get<double>() >= -100 && value.get<double>() <= 100)) {
        bad_request("logit_bias", fmt::format("'logit_bias[{}]' must be a number in [-100, 100]", key));
      }
      s.logit_bias.emplace_back(static_cast<int32_t>(id), value.get<double>());
    }
  }
  o.stop = stop_strings(f);
  if (const json* ids = f.get("stop_token_ids")) o.stop_token_ids = token_id_list(*ids, "stop_token_ids");
  o.include_stop_str_in_output = f.boolean("include_stop_str_in_output").value_or(false);
  o.ignore_eos = f.boolean("ignore_eos").value_or(false);
  o.skip_special_tokens = f.boolean("skip_special_tokens").value_or(true);
  o.n = static_cast<int>(f.integer("n", 1, kMaxChoices).value_or(1));
  o.stream = f.boolean("stream").value_or(false);
  if (const json* so = f.get("stream_options")) {
    if (!o.stream) bad_request("stream_options", "'stream_options' is only allowed when 'stream' is true");
    if (!so->is_object()) bad_request("stream_options", "'stream_options' must be an object");
    o.include_usage = Fields(*so, "stream_options.").boolean("include_usage").value_or(false);
  }
  return o;
}

// What every endpoint's body shares: a JSON object (parse_request_object,
// keeping the fields in `kept`) with an optional 'model'. `read` fills in the
// endpoint's own fields; it may move values out of the body.
template <typename Request, typename Read>
Request parse_request(std::string_view text, std::vector<FieldNames> kept, Read read) {
  std::vector<std::string_view> names;
  for (FieldNames list : kept) names.insert(names.end(), list.begin(), list.end());
  json body = parse_request_object(text, FieldNames(names));
  const Fields f(body, std::move(kept));
  Request r;
  r.model = f.string("model");
  read(body, f, r);
  return r;
}

// A count of tokens to generate; absent when the request gives none.
std::optional<int64_t> token_count(const Fields& f, const char* field) {
  return f.integer(field, 1, std::numeric_limits<int32_t>::max());
}

// Logprobs go to the sampler as the number of alternatives, -1 for none.
void pass_logprobs_to_sampler(GenerationOptions& o) { o.sampling.top_logprobs = o.logprobs ? o.top_logprobs : -1; }

// Content of a message: a string, or a list of {"type": "text", "text"} parts.
void check_content(const json& message, const std::string& where, bool nullable) {
  auto it = message.find("content");
  if (it == message.end() || it->is_null()) {
    if (nullable) return;
    bad_request(where + ".content", fmt::format("'{}.content' is required", where));
  }
  if (it->is_string()) return;
  if (!it->is_array()) bad_request(where + ".content", fmt::format("'{}.content' must be a string or an array of parts", where));
  for (size_t i = 0; i < it->size(); ++i) {
    const json& part = (*it)[i];
    std::string part_name = fmt::format("{}.content[{}]", where, i);
    if (!part.is_object()) bad_request(part_name, fmt::format("'{}' must be an object", part_name));
    auto type = part.find("type");
    if (type == part.end() || !type->is_string()) bad_request(part_name, fmt::format("'{}.type' must be a string", part_name));
    if (*type != "text") {
      bad_request(part_name, fmt::format("'{}' has type '{}': only text parts are supported", part_name,
                                         type->get<std::string>()));
    }
    auto text = part.find("text");
    if (text == part.end() || !text->is_string()) bad_request(part_name, fmt::format("'{}.text' must be a string", part_name));
  }
}

void check_tool_calls(const json& calls, const std::string& where) {
  if (!calls.is_array()) bad_request(where, fmt::format("'{}' must be an array", where));
  for (size_t i = 0; i < calls.size(); ++i) {
    std::string name = fmt::format("{}[{}]", where, i);
    const json& call = calls[i];
    if (!call.is_object()) bad_request(name, fmt::format("'{}' must be an object", name));
    auto fn = call.find("function");
    if (fn == call.end() || !fn->is_object()) bad_request(name, fmt::format("'{}.function' must be an object", name));
    Fields ff(*fn, name + ".function.");
    if (!ff.string("name")) bad_request(name, fmt::format("'{}.function.name' is required", name));
    if (!ff.string("arguments")) bad_request(name, fmt::format("'{}.function.arguments' must be a JSON string", name));
    Fields(call, name + ".").string("id");
  }
}

void check_messages(const Fields& f) {
  const json* it = f.get("messages");
  if (!it) bad_request("messages", "'messages' is required");
  if (!it->is_array()) bad_request("messages", fmt::format("'messages' must be an array, got {}", json_type_name(*it)));
  if (it->empty()) bad_request("messages", "'messages' must not be empty");
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    std::string where = fmt::format("messages[{}]", i);
    if (!m.is_object()) bad_request(where, fmt::format("'{}' must be an object", where));
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) bad_request(where + ".role", fmt::format("'{}.role' must be a string", where));
    const std::string r = role->get<std::string>();
    if (r == "assistant") {
      bool has_calls = m.contains("tool_calls") && !m["tool_calls"].is_null();
      check_content(m, where, true);
      if (has_calls) check_tool_calls(m["tool_calls"], where + ".tool_calls");
      Fields af(m, where + ".");
      af.string("reasoning_content");
      af.string("reasoning");
    } else if (r == "system" || r == "user" || r == "developer") {
      check_content(m, where, false);
    } else if (r == "tool") {
      check_content(m, where, false);
      Fields(m, where + ".").string("tool_call_id");
    } else {
      bad_request(where + ".role", fmt::format("'{}.role' is '{}': expected system, user, assistant, tool or developer",
                                               where, r));
    }
  }
}

// Tools and tool_choice; returns whether tools are to be rendered.
bool check_tools(const Fields& f) {
  const json* tools = f.get("tools");
  const json* choice = f.get("tool_choice");
  if (!tools) {
    if (choice && !(choice->is_string() && *choice == "none")) {
      bad_request("tool_choice", "'tool_choice' needs 'tools'");
    }
    return false;
  }
  if (!tools->is_array()) bad_request("tools", "'tools' must be an array");
  if (tools->empty()) bad_request("tools", "'tools' must not be an empty array");
  for (size_t i = 0; i < tools->size(); ++i) {
    std::string where = fmt::format("tools[{}]", i);
    const json& t = (*tools)[i];
    if (!t.is_object()) bad_request(where, fmt::format("'{}' must be an object", where));
    auto type = Fields(t, where + ".").string("type");
    if (type != "function") bad_request(where + ".type", fmt::format("'{}.type' must be \"function\"", where));
    auto fn = t.find("function");
    if (fn == t.end() || !fn->is_object()) bad_request(where + ".function", fmt::format("'{}.function' must be an object", where));
    Fields ff(*fn, where + ".function.");
    auto name = ff.string("name");
    if (!name || name->empty()) bad_request(where + ".function.name", fmt::format("'{}.function.name' is required", where));
    ff.string("description");
    if (const json* params = ff.get("parameters"); params && !params->is_object()) {
      bad_request(where + ".function.parameters", fmt::format("'{}.function.parameters' must be an object", where));
    }
  }
  if (!choice) return true;
  if (choice->is_string()) {
    if (*choice == "none") return false;
    if (*choice == "auto") return true;
    if (*choice == "required") {
      throw ApiError(400, "tool_choice 'required' needs constrained decoding, which fp4serve does not have yet; use 'auto'",
                     "tool_choice");
    }
    bad_request("tool_choice", "'tool_choice' must be 'none', 'auto' or a function");
  }
  if (choice->is_object()) {
    throw ApiError(400, "a named tool_choice needs constrained decoding, which fp4serve does not have yet; use 'auto'",
                   "tool_choice");
  }
  bad_request("tool_choice", "'tool_choice' must be 'none', 'auto' or a function");
}

// Thinking mode from the request, in the forms clients use: DeepSeek's
// `thinking` (object or bool), vLLM/SGLang's chat_template_kwargs.thinking /
// enable_thinking, and reasoning_effort ("none" = chat mode). A request that
// says nothing gets the model directory's default.
void read_thinking(const Fields& f, bool default_thinking, ChatRequest& r) {
  std::optional<bool> thinking;
  if (const json* t = f.get("thinking")) {
    if (t->is_boolean()) {
      thinking = t->get<bool>();
    } else if (t->is_object()) {
      auto type = Fields(*t, "thinking.").string("type");
      if (type == "enabled") thinking = true;
      else if (type == "disabled") thinking = false;
      else bad_request("thinking.type", "'thinking.type' must be 'enabled' or 'disabled'");
    } else {
      bad_request("thinking", "'thinking' must be a boolean or {\"type\": \"enabled\"|\"disabled\"}");
    }
  }
  if (const json* kwargs = f.get("chat_template_kwargs")) {
    if (!kwargs->is_object()) bad_request("chat_template_kwargs", "'chat_template_kwargs' must be an object");
    Fields k(*kwargs, "chat_template_kwargs.");
    if (auto t = k.boolean("thinking")) thinking = *t;
    if (auto t = k.boolean("enable_thinking")) thinking = *t;
  }
  if (auto effort = f.string("reasoning_effort")) {
    // DeepSeek's API mapping onto the 0731 encoding's levels low, high and max (the April encoding
    // renders low as high): minimal/low -> low, medium/high/xhigh -> high, max -> max. An effort asks
    // for thinking, unless the request chose the mode itself.
    if (*effort == "none") {
      thinking = false;
    } else if (*effort == "max") {
      r.reasoning_effort = "max";
      thinking = thinking.value_or(true);
    } else if (*effort == "minimal" || *effort == "low") {
      r.reasoning_effort = "low";
      thinking = thinking.value_or(true);
    } else if (*effort == "medium" || *effort == "high" || *effort == "xhigh") {
      r.reasoning_effort = "high";
      thinking = thinking.value_or(true);
    } else {
      bad_request("reasoning_effort", fmt::format("'reasoning_effort' '{}' is not one of none, minimal, low, medium, "
                                                  "high, xhigh, max", *effort));
    }
  }
  r.thinking = thinking.value_or(default_thinking) ? ThinkingMode::kThinking : ThinkingMode::kChat;
}

void read_response_format(const Fields& f, ChatRequest& r) {
  const json* rf = f.get("response_format");
  if (!rf) return;
  if (!rf->is_object()) bad_request("response_format", "'response_format' must be an object");
  auto type = Fields(*rf, "response_format.").string("type");
  if (!type) bad_request("response_format.type", "'response_format.type' is required");
  if (*type == "text" || *type == "json_object") {
    r.response_format = *type;
  } else if (*type == "json_schema") {
    if (!Fields(*rf).get("json_schema")) bad_request("response_format.json_schema", "'json_schema' is required for type json_schema");
    throw ApiError(400, "response_format json_schema needs constrained decoding, which fp4serve does not have yet; "
                        "use json_object", "response_format");
  } else {
    bad_request("response_format.type", fmt::format("'response_format.type' '{}' is not text, json_object or json_schema", *type));
  }
}

void read_logprobs_chat(const Fields& f, GenerationOptions& o) {
  o.logprobs = f.boolean("logprobs").value_or(false);
  if (auto top = f.integer("top_logprobs", 0, kMaxTopLogprobs)) {
    if (!o.logprobs && *top > 0) bad_request("top_logprobs", "'top_logprobs' needs 'logprobs' set to true");
    o.top_logprobs = static_cast<int>(*top);
  }
  pass_logprobs_to_sampler(o);
}

// The chat fields of `body`, validated; messages and tools are moved out.
void read_chat(json& body, const Fields& f, const SamplingDefaults& defaults, ChatRequest& r) {
  check_messages(f);
  r.render_tools = check_tools(f);
  read_thinking(f, defaults.thinking, r);
  read_response_format(f, r);
  r.add_generation_prompt = f.boolean("add_generation_prompt").value_or(true);
  r.options = generation_options(f, defaults);
  // max_completion_tokens supersedes the deprecated max_tokens.
  auto max_tokens = token_count(f, "max_tokens");
  auto max_completion = token_count(f, "max_completion_tokens");
  r.options.max_tokens = max_completion ? max_completion : max_tokens;
  read_logprobs_chat(f, r.options);
  r.messages = std::move(body["messages"]);
  if (r.render_tools) r.tools = std::move(body["tools"]);
}

}  // namespace

ChatRequest parse_chat_request(std::string_view text, const SamplingDefaults& defaults) {
  return parse_request<ChatRequest>(text, {kGenerationFields, kChatFields},
                                    [&](json& body, const Fields& f, ChatRequest& r) { read_chat(body, f, defaults, r); });
}

CompletionRequest parse_completion_request(std::string_view text, const SamplingDefaults& defaults) {
  return parse_request<CompletionRequest>(text, {kGenerationFields, kCompletionFields}, [&](json&, const Fields& f,
                                                                                          CompletionRequest& r) {
    const json* prompt = f.get("prompt");
    if (!prompt) bad_request("prompt", "'prompt' is required");
    auto bad_prompt = [] { bad_request("prompt", "'prompt' must be a string, an array of strings, an array of token ids "
                                                 "or an array of arrays of token ids"); };
    if (prompt->is_string()) {
      r.prompts.emplace_back(prompt->get<std::string>());
    } else if (prompt->is_array()) {
      if (prompt->empty()) bad_request("prompt", "'prompt' must not be empty");
      if ((*prompt)[0].is_number()) {
        r.prompts.emplace_back(token_id_list(*prompt, "prompt"));
      } else {
        for (const json& p : *prompt) {
          if (p.is_string()) r.prompts.emplace_back(p.get<std::string>());
          else if (p.is_array()) r.prompts.emplace_back(token_id_list(p, "prompt"));
          else bad_prompt();
        }
      }
    } else {
      bad_prompt();
    }
    for (const auto& p : r.prompts) {
      bool empty = std::visit([](const auto& v) { return v.empty(); }, p);
      if (empty) bad_request("prompt", "'prompt' must not be empty");
    }
    if (f.get("suffix")) throw ApiError(400, "'suffix' is not supported", "suffix");
    r.echo = f.boolean("echo").value_or(false);
    r.options = generation_options(f, defaults);
    r.options.max_tokens = token_count(f, "max_tokens").value_or(16);
    if (auto n = f.integer("logprobs", 0, kMaxTopLogprobs)) {  // legacy: the number of alternatives
      r.options.logprobs = true;
      r.options.top_logprobs = static_cast<int>(*n);
    }
    pass_logprobs_to_sampler(r.options);
  });
}

TokenizeRequest parse_tokenize_request(std::string_view text, const SamplingDefaults& defaults) {
  return parse_request<TokenizeRequest>(text, {kGenerationFields, kChatFields, kTokenizeFields}, [&](json& body, const Fields& f,
                                                                                                  TokenizeRequest& r) {
    r.return_token_strs = f.boolean("return_token_strs").value_or(false);
    if (body.contains("messages")) {
      r.chat.emplace();
      read_chat(body, f, defaults, *r.chat);
      r.chat->model = r.model;
      r.add_special_tokens = f.boolean("add_special_tokens").value_or(false);
    } else {
      r.prompt = f.string("prompt");
      if (!r.prompt) bad_request("prompt", "'prompt' (or 'messages') is required");
      r.add_special_tokens = f.boolean("add_special_tokens").value_or(true);
    }
  });
}

DetokenizeRequest parse_detokenize_request(std::string_view text) {
  return parse_request<DetokenizeRequest>(text, {kDetokenizeFields}, [](json&, const Fields& f, DetokenizeRequest& r) {
    const json* tokens = f.get("tokens");
    if (!tokens) bad_request("tokens", "'tokens' is required");
    r.tokens = token_id_list(*tokens, "tokens");
  });
}

}  // namespace fp4serve::server

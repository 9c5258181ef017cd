#include "server/request_json.h"

#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "server/api_error.h"
#include "text/utf8.h"

namespace fp4serve::server {
namespace {

using nlohmann::ordered_json;

// Objects with more keys than this get a hash index for duplicate checks;
// smaller ones are scanned (cheaper than building the index).
constexpr size_t kIndexedObjectKeys = 16;

// Builds the ordered_json DOM from nlohmann's SAX events (as its own DOM
// parser does), with the depth bound, the dropped fields and linear-time objects.
class BoundedDomBuilder {
 public:
  explicit BoundedDomBuilder(FieldNames kept) : kept_(kept) {}

  bool null() { return value(nullptr); }
  bool boolean(bool v) { return value(v); }
  bool number_integer(ordered_json::number_integer_t v) { return value(v); }
  bool number_unsigned(ordered_json::number_unsigned_t v) { return value(v); }
  bool number_float(ordered_json::number_float_t v, const std::string&) { return value(v); }
  bool string(std::string& v) { return value(std::move(v)); }
  bool binary(ordered_json::binary_t&) { return fail("binary values are not JSON"); }

  bool start_object(size_t) { return open(ordered_json::object()); }
  bool start_array(size_t) { return open(ordered_json::array()); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }

  bool key(std::string& name) {
    if (skipping()) return true;
    if (frames_.size() == 1 && std::find(kept_.begin(), kept_.end(), name) == kept_.end()) {
      skip_from_ = 1;  // this member's value is read past, not stored
      return true;
    }
    pending_key_ = std::move(name);
    return true;
  }

  bool parse_error(size_t position, const std::string&, const nlohmann::detail::exception& e) {
    // nlohmann's message names the line, column and what it expected; the
    // offset is the same place as a byte count (and what the other refusals use).
    error_ = fmt::format("the request body is not valid JSON (byte offset {}): {}", position > 0 ? position - 1 : 0, e.what());
    return false;
  }

  const std::string& error() const { return error_; }
  ordered_json take() { return std::move(root_); }

 private:
  struct Frame {
    ordered_json* container;
    std::unique_ptr<std::unordered_map<std::string, size_t>> index;  // key -> position, for big objects
  };

  bool skipping() const { return skip_from_ > 0; }

  bool fail(std::string message) {
    error_ = std::move(message);
    return false;
  }

  // A top-level member being skipped ends with its value: a scalar at once,
  // a container when the depth falls back to where it began.
  void end_of_value() {
    if (skip_from_ > 0 && depth_ == skip_from_) skip_from_ = 0;
  }

  // Stores `v` where the parse is; returns it (null while skipping).
  ordered_json* place(ordered_json v) {
    if (frames_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    Frame& frame = frames_.back();
    ordered_json& c = *frame.container;
    if (c.is_array()) {
      c.get_ref<ordered_json::array_t&>().push_back(std::move(v));
      return &c.get_ref<ordered_json::array_t&>().back();
    }
    auto& members = *c.get_ptr<ordered_json::object_t*>();
    if (size_t at = find_key(frame, members); at != members.size()) {
      auto slot = members.begin() + static_cast<std::ptrdiff_t>(at);
      slot->second = std::move(v);  // a duplicate key: the last value wins
      return &slot->second;
    }
    // ordered_map is a vector of pairs: appending skips its linear key check, done above.
    members.emplace_back(std::move(pending_key_), std::move(v));
    if (frame.index) (*frame.index)[members.back().first] = members.size() - 1;
    if (!frame.index && members.size() > kIndexedObjectKeys) {
      frame.index = std::make_unique<std::unordered_map<std::string, size_t>>();
      size_t i = 0;
      for (const auto& member : members) (*frame.index)[member.first] = i++;
    }
    return &members.back().second;
  }

  size_t find_key(const Frame& frame, const ordered_json::object_t& members) const {
    if (frame.index) {
      auto it = frame.index->find(pending_key_);
      return it == frame.index->end() ? members.size() : it->second;
    }
    size_t i = 0;
    for (const auto& member : members) {
      if (member.first == pending_key_) return i;
      ++i;
    }
    return members.size();
  }

  template <typename T>
  bool value(T&& v) {
    if (!skipping()) place(ordered_json(std::forward<T>(v)));
    end_of_value();
    return true;
  }

  bool open(ordered_json container) {
    if (++depth_ > kMaxJsonDepth) {
      return fail(fmt::format("the request body nests arrays and objects deeper than {} levels", kMaxJsonDepth));
    }
    if (!skipping()) frames_.push_back({place(std::move(container)), nullptr});
    return true;
  }

  bool close() {
    if (!skipping()) frames_.pop_back();
    --depth_;
    end_of_value();
    return true;
  }

  FieldNames kept_;
  ordered_json root_;
  std::vector<Frame> frames_;  // the open containers being stored
  std::string pending_key_;
  int depth_ = 0;      // open containers, stored or skipped
  int skip_from_ = 0;  // while > 0: the depth of the skipped member's object
  std::string error_;
};

}  // namespace

std::string json_type_name(const ordered_json& v) {
  if (v.is_number_integer()) return "integer";
  if (v.is_number()) return "number";
  return v.type_name();
}

ordered_json parse_request_object(std::string_view body, FieldNames kept) {
  if (size_t bad = text::find_invalid_utf8(body); bad != std::string_view::npos) {
    throw ApiError(400, fmt::format("the request body is not valid UTF-8 (byte offset {})", bad));
  }
  // nlohmann's lexer takes a NUL byte for the end of the input: without this
  // check, whatever follows one would be silently ignored.
  if (size_t nul = body.find('\0'); nul != std::string_view::npos) {
    throw ApiError(400, fmt::format("the request body is not valid JSON (byte offset {}): a NUL byte, which JSON "
                                    "allows neither outside strings nor unescaped inside them", nul));
  }
  BoundedDomBuilder builder(kept);
  if (!ordered_json::sax_parse(body, &builder, ordered_json::input_format_t::json, /*strict=*/true)) {
    throw ApiError(400, builder.error());
  }
  ordered_json parsed = builder.take();
  if (!parsed.is_object()) {
    throw ApiError(400, fmt::format("the request body must be a JSON object, got {}", json_type_name(parsed)));
  }
  return parsed;
}

}  // namespace fp4serve::server

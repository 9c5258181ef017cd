#include "io/strict_json.h"

#include <vector>

#include "base/error.h"

namespace fp4serve {
namespace {

using Json = nlohmann::json;

// Builds the DOM through nlohmann's SAX interface, refusing duplicate keys and deep
// nesting as it goes. (The library's callback parser would do the checks too, but it
// rescans the whole parent object at every object end to drop discarded values: a
// header of n tensor entries took O(n^2), 42 s for 50k tensors; see docs/CHECKPOINTS.md.)
class StrictDomBuilder {
 public:
  StrictDomBuilder(Json& root, const std::string& label, std::string_view what) : root_(root), label_(label), what_(what) {}

  bool null() { return put(Json(nullptr)); }
  bool boolean(bool v) { return put(Json(v)); }
  bool number_integer(Json::number_integer_t v) { return put(Json(v)); }
  bool number_unsigned(Json::number_unsigned_t v) { return put(Json(v)); }
  bool number_float(Json::number_float_t v, const std::string&) { return put(Json(v)); }
  bool string(Json::string_t& v) { return put(Json(std::move(v))); }
  bool binary(Json::binary_t& v) { return put(Json(std::move(v))); }

  bool start_object(std::size_t) { return open(Json::object(), /*object=*/true); }
  bool start_array(std::size_t) { return open(Json::array(), /*object=*/false); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }

  bool key(Json::string_t& k) {
    Frame& frame = frames_.back();
    if (frame.container->contains(k)) {
      if (object_depth() == 1) fail("{}: {} has key '{}' twice", label_, what_, k);
      fail("{}: {} has key '{}' twice inside {}", label_, what_, k, key_path(/*include_innermost=*/false));
    }
    frame.key = std::move(k);
    return true;
  }

  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
    if (object_depth() == 0) fail("{}: {} is not valid JSON: {}", label_, what_, e.what());
    fail("{}: {} is not valid JSON (last key read: {}): {}", label_, what_, key_path(/*include_innermost=*/true), e.what());
  }

 private:
  struct Frame {
    Json* container;
    bool object;
    std::string key;  // of the value being read (objects only)
  };

  // Places a value where the parser is: the root, the end of an array, or the last key.
  Json* place(Json&& value) {
    if (frames_.empty()) {
      root_ = std::move(value);
      return &root_;
    }
    Frame& frame = frames_.back();
    if (!frame.object) {
      frame.container->push_back(std::move(value));
      return &frame.container->back();
    }
    Json& slot = (*frame.container)[frame.key];
    slot = std::move(value);
    return &slot;
  }
  bool put(Json&& value) {
    place(std::move(value));
    return true;
  }
  bool open(Json&& container, bool object) {
    if (frames_.size() >= static_cast<size_t>(kMaxJsonDepth))
      fail("{}: {} nests deeper than {} levels", label_, what_, kMaxJsonDepth);
    frames_.push_back(Frame{place(std::move(container)), object, {}});
    return true;
  }
  bool close() {
    frames_.pop_back();
    return true;
  }

  size_t object_depth() const {
    size_t n = 0;
    for (const Frame& f : frames_) n += f.object;
    return n;
  }
  // The keys leading to the innermost open object, and with `include_innermost` the key
  // of the value being read in it: "'a.weight' > 'dtype'".
  std::string key_path(bool include_innermost) const {
    std::vector<const Frame*> objects;
    for (const Frame& f : frames_)
      if (f.object) objects.push_back(&f);
    const size_t levels = include_innermost ? objects.size() : objects.size() - 1;
    std::string path;
    for (size_t i = 0; i < levels; ++i) {
      if (!path.empty()) path += " > ";
      path += "'" + objects[i]->key + "'";
    }
    return path;
  }

  Json& root_;
  const std::string& label_;
  std::string_view what_;
  std::vector<Frame> frames_;
};

}  // namespace

nlohmann::json parse_strict_json_object(std::string_view text, const std::string& label, std::string_view what) {
  // nlohmann stops at a NUL byte as if the input ended there, which would let
  // anything after it through unread. JSON text never holds a raw NUL.
  if (const size_t nul = text.find('\0'); nul != std::string_view::npos) {
    fail("{}: {} holds a NUL byte at offset {} (not valid JSON)", label, what, nul);
  }
  Json value;
  StrictDomBuilder builder(value, label, what);
  Json::sax_parse(text.begin(), text.end(), &builder);
  if (!value.is_object()) fail("{}: {} must be a JSON object, not {}", label, what, value.type_name());
  return value;
}

}  // namespace fp4serve

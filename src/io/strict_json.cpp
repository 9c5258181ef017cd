#include "io/strict_json.h"

#include <set>
#include <vector>

#include "base/error.h"

namespace fp4serve {
namespace {

// One open object: the keys seen so far and the latest, so that a duplicate deep
// inside can be reported with its path ("tensor 'a.weight' > 'dtype'").
struct ObjectFrame {
  std::set<std::string> keys;
  std::string current_key;
};

// The keys leading to the innermost open object (`levels` = frames.size() - 1),
// or to the value being read (`levels` = frames.size()).
std::string key_path(const std::vector<ObjectFrame>& frames, size_t levels) {
  std::string path;
  for (size_t i = 0; i < levels; ++i) {
    if (!path.empty()) path += " > ";
    path += "'" + frames[i].current_key + "'";
  }
  return path;
}

}  // namespace

nlohmann::json parse_strict_json_object(std::string_view text, const std::string& label, std::string_view what) {
  using Json = nlohmann::json;
  std::vector<ObjectFrame> frames;
  auto on_event = [&](int depth, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
      case Json::parse_event_t::array_start:
        if (depth >= kMaxJsonDepth) fail("{}: {} nests deeper than {} levels", label, what, kMaxJsonDepth);
        if (event == Json::parse_event_t::object_start) frames.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        frames.pop_back();
        break;
      case Json::parse_event_t::key: {
        auto& frame = frames.back();
        frame.current_key = parsed.get<std::string>();
        if (!frame.keys.insert(frame.current_key).second) {
          if (frames.size() == 1) fail("{}: {} has key '{}' twice", label, what, frame.current_key);
          fail("{}: {} has key '{}' twice inside {}", label, what, frame.current_key,
               key_path(frames, frames.size() - 1));
        }
        break;
      }
      default:
        break;
    }
    return true;
  };
  // nlohmann stops at a NUL byte as if the input ended there, which would let
  // anything after it through unread. JSON text never holds a raw NUL.
  if (const size_t nul = text.find('\0'); nul != std::string_view::npos) {
    fail("{}: {} holds a NUL byte at offset {} (not valid JSON)", label, what, nul);
  }
  Json value;
  try {
    value = Json::parse(text.begin(), text.end(), on_event);
  } catch (const Json::exception& e) {
    if (frames.empty()) fail("{}: {} is not valid JSON: {}", label, what, e.what());
    fail("{}: {} is not valid JSON (last key read: {}): {}", label, what, key_path(frames, frames.size()), e.what());
  }
  if (!value.is_object()) fail("{}: {} must be a JSON object, not {}", label, what, value.type_name());
  return value;
}

}  // namespace fp4serve

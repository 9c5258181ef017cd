// Stop strings over streamed text. Text that might be the beginning of a stop
// string is held back until it is known not to be, so a stop string split
// across tokens is still found and never leaks to the client. When several
// match, the first to complete wins, whatever the cut into pieces.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace fp4serve::server {

class StopStringMatcher {
 public:
  StopStringMatcher(std::vector<std::string> stops, bool include_stop_in_output);

  // Appends generated text; returns the text that can be released now. Once a
  // stop string is found, returns the text before it (plus the stop string if
  // asked) and matched() turns true; later calls return nothing.
  std::string push(std::string_view text);
  // The end of generation without a match: releases what was held back.
  std::string finish();

  bool matched() const { return !matched_stop_.empty(); }
  const std::string& matched_stop() const { return matched_stop_; }

 private:
  std::vector<std::string> stops_;
  bool include_stop_;
  std::string held_;
  std::string matched_stop_;
};

}  // namespace fp4serve::server

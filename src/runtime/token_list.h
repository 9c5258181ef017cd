// "1,2,3" -> token ids, as the CLI takes them. Throws Error naming the bad item.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace fp4serve {

std::vector<int32_t> parse_token_list(std::string_view text);

}  // namespace fp4serve

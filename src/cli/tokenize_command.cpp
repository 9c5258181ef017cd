// `fp4serve tokenize`: text -> ids (one JSON array, no special tokens added),
// or with --decode, ids -> text (printed exactly, no newline added).
#include <cstdio>
#include <fstream>
#include <sstream>

#include "base/error.h"
#include "cli/command.h"
#include "text/tokenizer.h"

namespace fp4serve::cli {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

// "1,2,3", "[1, 2, 3]" or "1 2 3".
std::vector<uint32_t> parse_ids(const std::string& list) {
  std::vector<uint32_t> ids;
  std::string token;
  auto flush = [&] {
    if (token.empty()) return;
    size_t used = 0;
    unsigned long long value = 0;
    try {
      value = std::stoull(token, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != token.size() || value > 0xFFFFFFFFull) fail("--ids: '{}' is not a token id", token);
    ids.push_back(static_cast<uint32_t>(value));
    token.clear();
  };
  for (char c : list) {
    if (c == ',' || c == ' ' || c == '\n' || c == '\t' || c == '[' || c == ']') {
      flush();
    } else {
      token += c;
    }
  }
  flush();
  return ids;
}

const RegisterCommand command{Command{
    "tokenize", "Tokenize text (ids as a JSON array) or, with --decode, detokenize ids",
    [](CLI::App& sub) -> std::function<int()> {
      auto tokenizer_path = std::make_shared<std::string>();
      auto text = std::make_shared<std::string>();
      auto text_file = std::make_shared<std::string>();
      auto ids = std::make_shared<std::string>();
      auto decode = std::make_shared<bool>(false);
      sub.add_option("--tokenizer", *tokenizer_path, "tokenizer.json (Hugging Face format)")->required();
      auto* text_opt = sub.add_option("--text", *text, "Text to tokenize");
      auto* file_opt = sub.add_option("--text-file", *text_file, "File whose bytes are the text to tokenize");
      auto* decode_opt = sub.add_flag("--decode", *decode, "Detokenize --ids instead");
      auto* ids_opt = sub.add_option("--ids", *ids, "Ids to detokenize: 1,2,3 or [1, 2, 3]");
      text_opt->excludes(file_opt);
      decode_opt->excludes(text_opt)->excludes(file_opt)->needs(ids_opt);
      ids_opt->needs(decode_opt);
      return [=] {
        const auto tokenizer = text::Tokenizer::from_file(*tokenizer_path);
        if (*decode) {
          const std::string out = tokenizer.decode(parse_ids(*ids));
          std::fwrite(out.data(), 1, out.size(), stdout);
          return 0;
        }
        if (text_opt->count() == 0 && file_opt->count() == 0) fail("tokenize: give --text, --text-file or --decode --ids");
        const std::string input = file_opt->count() ? read_file(*text_file) : *text;
        const std::vector<uint32_t> result = tokenizer.encode(input);
        std::string out = "[";
        for (size_t i = 0; i < result.size(); ++i) {
          if (i) out += ',';
          out += std::to_string(result[i]);
        }
        out += "]\n";
        std::fwrite(out.data(), 1, out.size(), stdout);
        return 0;
      };
    }}};

}  // namespace
}  // namespace fp4serve::cli

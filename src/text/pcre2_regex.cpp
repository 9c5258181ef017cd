#include "text/pcre2_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cctype>

#include "base/error.h"
#include "text/unicode_additions.h"
#include "text/utf8.h"

namespace fp4serve::text {

namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

// Per-thread match state: PCRE2 match data and the JIT stack must not be shared
// between threads, while the compiled code may be.
struct MatchScratch {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  // Long runs of one character class can need more than the default 32 KiB.
  pcre2_jit_stack* jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);

  MatchScratch() { pcre2_jit_stack_assign(context, nullptr, jit_stack); }
  ~MatchScratch() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
};

MatchScratch& scratch() {
  thread_local MatchScratch instance;
  return instance;
}

// Oniguruma's long general-category names, as PCRE2's abbreviations.
constexpr std::pair<std::string_view, std::string_view> kCategoryLongNames[] = {
    {"letter", "L"}, {"uppercaseletter", "Lu"}, {"lowercaseletter", "Ll"}, {"titlecaseletter", "Lt"},
    {"modifierletter", "Lm"}, {"otherletter", "Lo"}, {"mark", "M"}, {"nonspacingmark", "Mn"}, {"spacingmark", "Mc"},
    {"enclosingmark", "Me"}, {"number", "N"}, {"decimalnumber", "Nd"}, {"letternumber", "Nl"}, {"othernumber", "No"},
    {"punctuation", "P"}, {"connectorpunctuation", "Pc"}, {"dashpunctuation", "Pd"}, {"openpunctuation", "Ps"},
    {"closepunctuation", "Pe"}, {"initialpunctuation", "Pi"}, {"finalpunctuation", "Pf"}, {"otherpunctuation", "Po"},
    {"symbol", "S"}, {"mathsymbol", "Sm"}, {"currencysymbol", "Sc"}, {"modifiersymbol", "Sk"}, {"othersymbol", "So"},
    {"separator", "Z"}, {"spaceseparator", "Zs"}, {"lineseparator", "Zl"}, {"paragraphseparator", "Zp"},
    {"other", "C"}, {"control", "Cc"}, {"format", "Cf"}, {"privateuse", "Co"}, {"surrogate", "Cs"},
    {"unassigned", "Cn"}, {"whitespace", "White_Space"}, {"space", "White_Space"}};

// The PCRE2 name of an Oniguruma property, or the name itself if it is not a category we track.
std::string canonical_property(std::string_view name) {
  std::string folded;
  for (char c : name) {
    if (c != '_' && c != ' ' && c != '-') folded += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  for (const auto& [long_name, abbreviation] : kCategoryLongNames) {
    if (folded == long_name) return std::string(abbreviation);
  }
  return std::string(name);
}

// `\p{name}` (or its negation) as PCRE2 should read it to agree with Unicode 16.0.
std::string translate_property(std::string_view pattern, const std::string& name, bool negated, bool in_class) {
  for (std::string_view removed : unicode16_categories_with_removals()) {
    if (name == removed)
      fail("regex '{}': \\p{{{}}} changed between Unicode 14.0 (PCRE2) and 16.0 (tokenizers); not supported", pattern, name);
  }
  const std::string property = "\\p{" + name + "}";
  std::string added;
  for (const CategoryAdditions& a : unicode16_category_additions()) {
    if (a.category != name) continue;
    for (const CodePointRange& r : a.ranges) {
      added += fmt::format("\\x{{{:X}}}", static_cast<uint32_t>(r.first));
      if (r.last != r.first) added += fmt::format("-\\x{{{:X}}}", static_cast<uint32_t>(r.last));
    }
  }
  if (added.empty()) return negated ? "\\P{" + name + "}" : property;
  if (!in_class) return (negated ? "[^" : "[") + property + added + "]";
  if (negated) fail("regex '{}': \\P{{{}}} inside a character class is not supported", pattern, name);
  return property + added;
}

}  // namespace

std::string pcre2_pattern_from_oniguruma(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size() + 64);
  bool in_class = false;
  auto word_members = [&] {
    return translate_property(pattern, "L", false, true) + translate_property(pattern, "M", false, true) +
           translate_property(pattern, "N", false, true) + translate_property(pattern, "Pc", false, true);
  };
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[++i];
      if (e == 'Q') {  // \Q...\E is literal text: copy it untouched
        const size_t end = pattern.find("\\E", i + 1);
        const size_t stop = end == std::string_view::npos ? pattern.size() : end + 2;
        out.append(pattern.substr(i - 1, stop - (i - 1)));
        i = stop - 1;
      } else if (e == 's' || e == 'S') {  // Oniguruma: the White_Space property
        out += translate_property(pattern, "White_Space", e == 'S', in_class);
      } else if (e == 'd' || e == 'D') {
        out += translate_property(pattern, "Nd", e == 'D', in_class);
      } else if (e == 'w') {  // Oniguruma: Letter | Mark | Number | Connector_Punctuation
        if (!in_class) out += '[';
        out += word_members();
        if (!in_class) out += ']';
      } else if (e == 'W') {
        if (in_class) fail("regex '{}': \\W inside a character class is not supported", pattern);
        out += "[^";
        out += word_members();
        out += ']';
      } else if ((e == 'p' || e == 'P') && i + 1 < pattern.size()) {
        bool negated = e == 'P';
        std::string_view name;
        if (pattern[i + 1] == '{') {
          const size_t close = pattern.find('}', i + 2);
          if (close == std::string_view::npos) fail("regex '{}': unterminated \\{}{{", pattern, e);
          name = pattern.substr(i + 2, close - i - 2);
          i = close;
          if (!name.empty() && name[0] == '^') {
            negated = !negated;
            name.remove_prefix(1);
          }
        } else {
          name = pattern.substr(++i, 1);
        }
        out += translate_property(pattern, canonical_property(name), negated, in_class);
      } else if (e == 'u' && i + 4 < pattern.size() &&
                 std::all_of(pattern.begin() + i + 1, pattern.begin() + i + 5, [](char h) { return std::isxdigit(static_cast<unsigned char>(h)); })) {
        out += "\\x{" + std::string(pattern.substr(i + 1, 4)) + "}";  // Oniguruma's \uHHHH
        i += 4;
      } else {
        out += '\\';
        out += e;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal member, not the end of the class.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
      continue;
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

Pcre2Regex::Pcre2Regex(std::string_view pattern, std::string origin) : origin_(std::move(origin)) {
  check_utf8(pattern, origin_ + ": regex");
  int error = 0;
  PCRE2_SIZE offset = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP, &error,
                        &offset, nullptr);
  if (!code_) fail("{}: regex '{}' does not compile at offset {}: {}", origin_, pattern, offset, pcre2_message(error));
  jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
}

Pcre2Regex::~Pcre2Regex() { pcre2_code_free(code_); }

bool Pcre2Regex::match(std::string_view subject, size_t offset, size_t* begin, size_t* end) const {
  MatchScratch& s = scratch();
  const auto* text = reinterpret_cast<PCRE2_SPTR>(subject.data());
  const int rc = jit_ ? pcre2_jit_match(code_, text, subject.size(), offset, 0, s.data, s.context)
                      : pcre2_match(code_, text, subject.size(), offset, PCRE2_NO_UTF_CHECK, s.data, s.context);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) fail("{}: regex match failed: {}", origin_, pcre2_message(rc));
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(s.data);
  *begin = ovector[0];
  *end = ovector[1];
  return true;
}

void Pcre2Regex::for_each_match(std::string_view subject, const std::function<void(size_t, size_t)>& on_match) const {
  size_t search_from = 0;
  size_t last_match_end = std::string_view::npos;
  while (search_from <= subject.size()) {
    size_t begin = 0, end = 0;
    if (!match(subject, search_from, &begin, &end)) return;
    if (begin == end && begin == last_match_end) {
      // An empty match glued to the previous one: step over one character and retry.
      if (search_from >= subject.size()) return;
      search_from += next_utf8_unit(subject.substr(search_from)).length;
      continue;
    }
    on_match(begin, end);
    last_match_end = end;
    search_from = end;
  }
}

bool Pcre2Regex::search(std::string_view subject) const {
  size_t begin = 0, end = 0;
  return match(subject, 0, &begin, &end);
}

}  // namespace fp4serve::text

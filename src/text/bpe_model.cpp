#include "text/bpe_model.h"

#include <algorithm>
#include <array>
#include <mutex>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "text/byte_level.h"
#include "text/utf8.h"

namespace fp4serve::text {

// Open addressing over (left id, right id) pairs: the merge loop's inner lookup.
struct BpeModel::MergeTable {
  struct Slot {
    uint64_t key = kEmpty;
    uint32_t rank = 0;
    uint32_t merged = 0;
  };
  static constexpr uint64_t kEmpty = ~uint64_t{0};

  explicit MergeTable(size_t count) {
    size_t capacity = 16;
    while (capacity < count * 2) capacity *= 2;
    slots.resize(capacity);
    mask = capacity - 1;
  }

  static uint64_t key_of(uint32_t left, uint32_t right) { return (uint64_t{left} << 32) | right; }
  static uint64_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
  }

  // A pair listed twice keeps its last rank, as Hugging Face's map does.
  void insert(uint32_t left, uint32_t right, uint32_t rank, uint32_t merged) {
    const uint64_t key = key_of(left, right);
    for (uint64_t i = hash(key) & mask;; i = (i + 1) & mask) {
      if (slots[i].key == kEmpty) ++size;
      if (slots[i].key == kEmpty || slots[i].key == key) {
        slots[i] = {key, rank, merged};
        return;
      }
    }
  }

  const Slot* find(uint32_t left, uint32_t right) const {
    const uint64_t key = key_of(left, right);
    for (uint64_t i = hash(key) & mask;; i = (i + 1) & mask) {
      if (slots[i].key == key) return &slots[i];
      if (slots[i].key == kEmpty) return nullptr;
    }
  }

  std::vector<Slot> slots;
  uint64_t mask = 0;
  size_t size = 0;
};

// Word -> ids, sharded so that server threads rarely wait on each other.
struct BpeModel::WordCache {
  static constexpr size_t kShards = 64;
  static constexpr size_t kEntriesPerShard = 4096;
  static constexpr size_t kMaxWordBytes = 128;

  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<uint32_t>, StringHash, std::equal_to<>> entries;
  };

  bool lookup(std::string_view word, size_t hash, std::vector<uint32_t>& out) {
    Shard& shard = shards[hash % kShards];
    std::lock_guard lock(shard.mutex);
    const auto it = shard.entries.find(word);
    if (it == shard.entries.end()) return false;
    out.insert(out.end(), it->second.begin(), it->second.end());
    return true;
  }

  void store(std::string_view word, size_t hash, const uint32_t* ids, size_t count) {
    Shard& shard = shards[hash % kShards];
    std::lock_guard lock(shard.mutex);
    if (shard.entries.size() < kEntriesPerShard) shard.entries.emplace(std::string(word), std::vector<uint32_t>(ids, ids + count));
  }

  std::array<Shard, kShards> shards;
};

BpeModel::BpeModel() : cache_(std::make_unique<WordCache>()) {}
BpeModel::BpeModel(BpeModel&&) noexcept = default;
BpeModel& BpeModel::operator=(BpeModel&&) noexcept = default;
BpeModel::~BpeModel() = default;

size_t BpeModel::merge_count() const { return merges_->size; }

std::optional<uint32_t> BpeModel::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

namespace {

void check_null_or_empty(const nlohmann::json& model, const char* key, const std::string& origin) {
  const auto it = model.find(key);
  if (it == model.end() || it->is_null() || (it->is_string() && it->get<std::string>().empty())) return;
  fail("{}.{}: only null is supported (byte-level BPE uses no subword affixes)", origin, key);
}

}  // namespace

BpeModel BpeModel::from_json(const nlohmann::json& model, const std::string& origin) {
  if (!model.is_object()) fail("{}: expected an object", origin);
  if (model.contains("type") && model["type"] != "BPE") fail("{}.type: '{}' is not supported (only BPE)", origin, model["type"].dump());
  if (model.contains("dropout") && !model["dropout"].is_null() && model["dropout"] != 0)
    fail("{}.dropout: BPE dropout is not supported (encoding must be deterministic)", origin);
  check_null_or_empty(model, "continuing_subword_prefix", origin);
  check_null_or_empty(model, "end_of_word_suffix", origin);

  BpeModel result;
  const auto vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_object()) fail("{}.vocab: expected an object of token -> id", origin);
  for (const auto& [token, id_value] : vocab->items()) {
    if (!id_value.is_number_unsigned() || id_value.get<uint64_t>() >= (uint64_t{1} << 31))
      fail("{}.vocab: token '{}' has an invalid id {}", origin, token, id_value.dump());
    const auto id = id_value.get<uint32_t>();
    if (id >= result.tokens_.size()) result.tokens_.resize(id + 1);
    if (!result.tokens_[id].empty()) fail("{}.vocab: id {} is used by both '{}' and '{}'", origin, id, result.tokens_[id], token);
    if (token.empty()) fail("{}.vocab: empty token with id {}", origin, id);
    result.tokens_[id] = token;
    result.vocab_.emplace(token, id);
  }
  for (int b = 0; b < 256; ++b) {
    const std::string symbol = bytes_to_byte_level(std::string(1, static_cast<char>(b)));
    const auto it = result.vocab_.find(symbol);
    if (it == result.vocab_.end())
      fail("{}.vocab: byte 0x{:02X} (byte-level '{}') has no token; not a byte-level BPE vocabulary", origin, b, symbol);
    result.byte_ids_[b] = it->second;
  }

  const auto merges = model.find("merges");
  if (merges == model.end() || !merges->is_array()) fail("{}.merges: expected an array", origin);
  result.merges_ = std::make_unique<MergeTable>(merges->size());
  for (size_t rank = 0; rank < merges->size(); ++rank) {
    const nlohmann::json& merge = (*merges)[rank];
    std::string left, right;
    if (merge.is_string()) {
      const std::string& pair = merge.get_ref<const std::string&>();
      const size_t space = pair.find(' ');
      if (space == std::string::npos || pair.find(' ', space + 1) != std::string::npos)
        fail("{}.merges[{}]: '{}' is not two tokens separated by one space", origin, rank, pair);
      left = pair.substr(0, space);
      right = pair.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
      left = merge[0].get<std::string>();
      right = merge[1].get<std::string>();
    } else {
      fail("{}.merges[{}]: expected \"a b\" or [\"a\", \"b\"], got {}", origin, rank, merge.dump());
    }
    const auto l = result.vocab_.find(left), r = result.vocab_.find(right), m = result.vocab_.find(left + right);
    if (l == result.vocab_.end() || r == result.vocab_.end() || m == result.vocab_.end()) {
      const std::string& missing = l == result.vocab_.end() ? left : r == result.vocab_.end() ? right : left + right;
      fail("{}.merges[{}]: token '{}' is not in the vocabulary", origin, rank, missing);
    }
    result.merges_->insert(l->second, r->second, static_cast<uint32_t>(rank), m->second);
  }

  if (model.contains("ignore_merges") && model["ignore_merges"].is_boolean() && model["ignore_merges"].get<bool>()) {
    result.ignore_merges_ = true;
    for (const auto& [token, id] : result.vocab_) {
      if (auto bytes = byte_level_to_bytes(token)) result.words_in_vocab_.emplace(std::move(*bytes), id);
    }
  }
  return result;
}

namespace {

struct Symbol {
  uint32_t id;
  int32_t prev, next;
  bool alive;
};

struct Candidate {
  uint32_t rank;
  uint32_t pos;
  uint32_t merged;
};

// Min-heap order: lowest rank first, then leftmost position.
bool later_candidate(const Candidate& a, const Candidate& b) {
  return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
}

}  // namespace

void BpeModel::encode_word(std::string_view word, std::vector<uint32_t>& ids) const {
  if (word.size() == 1) {
    ids.push_back(byte_ids_[static_cast<uint8_t>(word[0])]);
    return;
  }
  if (ignore_merges_) {
    const auto it = words_in_vocab_.find(std::string(word));
    if (it != words_in_vocab_.end()) {
      ids.push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() <= WordCache::kMaxWordBytes;
  const size_t hash = cacheable ? std::hash<std::string_view>{}(word) : 0;
  if (cacheable && cache_->lookup(word, hash, ids)) return;

  thread_local std::vector<Symbol> symbols;
  thread_local std::vector<Candidate> heap;
  symbols.clear();
  heap.clear();
  const auto n = static_cast<int32_t>(word.size());
  for (int32_t i = 0; i < n; ++i) symbols.push_back({byte_ids_[static_cast<uint8_t>(word[i])], i - 1, i + 1 < n ? i + 1 : -1, true});
  auto consider = [&](int32_t left) {
    const int32_t right = symbols[left].next;
    if (right < 0) return;
    if (const MergeTable::Slot* slot = merges_->find(symbols[left].id, symbols[right].id)) {
      heap.push_back({slot->rank, static_cast<uint32_t>(left), slot->merged});
      std::push_heap(heap.begin(), heap.end(), later_candidate);
    }
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later_candidate);
    const Candidate top = heap.back();
    heap.pop_back();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    // A stale candidate: one of its symbols has merged since it was queued.
    // The pair's merged token then spans more bytes, so its id differs.
    const MergeTable::Slot* slot = merges_->find(left.id, symbols[left.next].id);
    if (!slot || slot->merged != top.merged) continue;
    Symbol& right = symbols[left.next];
    left.id = top.merged;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = static_cast<int32_t>(top.pos);
    if (left.prev >= 0) consider(left.prev);
    consider(static_cast<int32_t>(top.pos));
  }

  const size_t first = ids.size();
  for (int32_t i = 0; i >= 0; i = symbols[i].next) ids.push_back(symbols[i].id);
  if (cacheable) cache_->store(word, hash, ids.data() + first, ids.size() - first);
}

}  // namespace fp4serve::text

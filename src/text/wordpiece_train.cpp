// text/wordpiece_train.cpp — training a WordPiece vocabulary by merging frequent pairs.
//
// As Hugging Face's WordPieceTrainer does (it runs its BPE trainer with the "##" prefix):
// every distinct word starts as its characters ("w", "##o", "##r", "##d"); the adjacent pair
// seen most often over the corpus (word frequency times occurrences in the word) becomes a
// new piece, and so on until the vocabulary is full or no pair is frequent enough.
//
// Cost: pair counts are kept in a hash map and updated by the difference each merge makes in
// the words that hold the merged pair (found through a pair -> words index), never recounted;
// the best pair comes from a max-heap with lazy deletion (an entry whose count is stale is
// pushed back with the current count when it surfaces). A merge thus costs time proportional
// to the occurrences of its pair, and training on the whole fortunes corpus takes well under
// a second.
#include <algorithm>
#include <map>
#include <queue>
#include <unordered_map>

#include "core/error.h"
#include "text/unicode.h"
#include "text/vocab.h"

namespace trainrt::detail {

namespace {

using PairKey = std::uint64_t;

PairKey pair_key(std::int32_t a, std::int32_t b) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
}
std::int32_t first_of(PairKey k) { return static_cast<std::int32_t>(k >> 32); }
std::int32_t second_of(PairKey k) { return static_cast<std::int32_t>(k & 0xFFFFFFFFu); }

struct Word {
  std::vector<std::int32_t> symbols;
  std::int64_t count = 0;
};

struct HeapEntry {
  std::int64_t count = 0;
  PairKey pair = 0;
};

/// Orders the heap: the highest count on top; among equal counts the lowest (first, second)
/// ids, which makes training deterministic whatever order the hash maps iterate in.
struct HeapLess {
  bool operator()(const HeapEntry& x, const HeapEntry& y) const {
    if (x.count != y.count) return x.count < y.count;
    return x.pair > y.pair;
  }
};

/// Words of the corpus with their frequencies, sorted (so that training is deterministic).
std::vector<std::pair<std::string, std::int64_t>> count_words(const std::vector<std::string>& documents, bool lowercase,
                                                              std::int64_t max_chars) {
  std::unordered_map<std::string, std::int64_t> counts;
  std::vector<std::string> words;
  for (const std::string& doc : documents) {
    basic_tokenize(doc, lowercase, words);
    for (std::string& w : words) ++counts[std::move(w)];
  }
  std::vector<std::pair<std::string, std::int64_t>> sorted;
  sorted.reserve(counts.size());
  for (auto& [w, c] : counts)
    if (static_cast<std::int64_t>(count_code_points(w)) <= max_chars) sorted.emplace_back(w, c);
  std::sort(sorted.begin(), sorted.end());
  return sorted;
}

/// The vocabulary under construction.
struct Builder {
  Vocab vocab;
  std::int32_t add(std::string token) {
    const std::int32_t existing = vocab.find(token);
    if (existing >= 0) return existing;
    const auto id = static_cast<std::int32_t>(vocab.tokens.size());
    vocab.ids.emplace(token, id);
    vocab.tokens.push_back(std::move(token));
    return id;
  }
};

}  // namespace

Vocab train_vocab(const std::vector<std::string>& documents, std::int64_t vocab_size, std::int64_t min_frequency,
                  bool lowercase, std::int64_t max_chars_per_word) {
  const auto counted = count_words(documents, lowercase, max_chars_per_word);
  if (counted.empty())
    fail(ErrorKind::InvalidArgument,
         cat("WordPieceTokenizer::train: the ", documents.size(), " documents hold no word to learn from"));

  Builder b;
  b.vocab.lowercase = lowercase;
  b.vocab.max_chars_per_word = max_chars_per_word;
  for (const std::string_view s : {kPadToken, kUnkToken, kClsToken, kSepToken, kMaskToken}) b.add(std::string(s));

  // The alphabet: word-initial characters, then continuation characters, each in code-point
  // order (byte order of UTF-8 is code-point order).
  std::map<std::string, int> initial, inner;
  std::vector<std::vector<std::string>> chars(counted.size());
  for (std::size_t w = 0; w < counted.size(); ++w) {
    const std::string& word = counted[w].first;
    std::size_t pos = 0;
    while (pos < word.size()) {
      const std::size_t start = pos;
      decode_utf8(word, pos);
      std::string c = word.substr(start, pos - start);
      if (start == 0) {
        initial.emplace(c, 0);
      } else {
        c.insert(0, kContinuation);
        inner.emplace(c, 0);
      }
      chars[w].push_back(std::move(c));
    }
  }
  for (const auto& [c, unused] : initial) b.add(c);
  for (const auto& [c, unused] : inner) b.add(c);

  std::vector<Word> words(counted.size());
  std::unordered_map<PairKey, std::int64_t> pair_counts;
  std::unordered_map<PairKey, std::vector<std::int32_t>> where;  // pair -> words that held it (maybe stale)
  for (std::size_t w = 0; w < counted.size(); ++w) {
    Word& word = words[w];
    word.count = counted[w].second;
    for (const std::string& c : chars[w]) word.symbols.push_back(b.vocab.find(c));
    for (std::size_t i = 0; i + 1 < word.symbols.size(); ++i) {
      const PairKey k = pair_key(word.symbols[i], word.symbols[i + 1]);
      pair_counts[k] += word.count;
      auto& list = where[k];
      if (list.empty() || list.back() != static_cast<std::int32_t>(w)) list.push_back(static_cast<std::int32_t>(w));
    }
  }
  chars.clear();

  std::priority_queue<HeapEntry, std::vector<HeapEntry>, HeapLess> heap;
  for (const auto& [k, c] : pair_counts) heap.push({c, k});

  std::unordered_map<PairKey, std::int64_t> delta;
  std::vector<std::int32_t> merged;
  while (static_cast<std::int64_t>(b.vocab.tokens.size()) < vocab_size && !heap.empty()) {
    const HeapEntry top = heap.top();
    heap.pop();
    const auto found = pair_counts.find(top.pair);
    const std::int64_t current = found == pair_counts.end() ? 0 : found->second;
    if (current != top.count) {  // stale: the pair's count changed since this entry was pushed
      if (current > 0) heap.push({current, top.pair});
      continue;
    }
    if (current < min_frequency) break;  // the best pair left is too rare

    const std::int32_t a = first_of(top.pair), bb = second_of(top.pair);
    const std::string& right = b.vocab.tokens[static_cast<std::size_t>(bb)];
    std::string joined = b.vocab.tokens[static_cast<std::size_t>(a)];
    joined.append(right, kContinuation.size());  // the right part always starts with "##"
    const std::int32_t n = b.add(std::move(joined));

    std::vector<std::int32_t> holders = std::move(where[top.pair]);
    where.erase(top.pair);
    std::sort(holders.begin(), holders.end());
    holders.erase(std::unique(holders.begin(), holders.end()), holders.end());
    delta.clear();
    for (const std::int32_t w : holders) {
      Word& word = words[static_cast<std::size_t>(w)];
      const std::vector<std::int32_t>& s = word.symbols;
      merged.clear();
      bool changed = false;
      for (std::size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == bb) {
          changed = true;
          delta[top.pair] -= word.count;
          if (!merged.empty()) {
            delta[pair_key(merged.back(), a)] -= word.count;
            delta[pair_key(merged.back(), n)] += word.count;
            where[pair_key(merged.back(), n)].push_back(w);
          }
          if (i + 2 < s.size()) {
            delta[pair_key(bb, s[i + 2])] -= word.count;
            delta[pair_key(n, s[i + 2])] += word.count;
            where[pair_key(n, s[i + 2])].push_back(w);
          }
          merged.push_back(n);
          i += 2;
        } else {
          merged.push_back(s[i]);
          ++i;
        }
      }
      if (changed) word.symbols = merged;
    }
    for (const auto& [k, d] : delta) {
      if (d == 0) continue;
      std::int64_t& c = pair_counts[k];
      c += d;
      if (d > 0) heap.push({c, k});  // decreases surface lazily; increases need a fresh entry
      if (c <= 0) pair_counts.erase(k);
    }
  }
  return std::move(b.vocab);
}

}  // namespace trainrt::detail

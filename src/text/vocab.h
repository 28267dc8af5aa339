// text/vocab.h — the vocabulary behind a WordPieceTokenizer: tokens by id, ids by token (with
// lookups by string_view that allocate nothing), the special ids and the tokenizer's options.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace trainrt::detail {

/// Hashes std::string and std::string_view alike, so that maps keyed by std::string can be
/// searched with a string_view (C++20 heterogeneous lookup).
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

/// An immutable vocabulary once built (shared by every copy of the tokenizer).
struct Vocab {
  std::vector<std::string> tokens;  // by id
  std::unordered_map<std::string, std::int32_t, StringHash, std::equal_to<>> ids;
  std::int32_t pad = 0, unk = 1, cls = 2, sep = 3, mask = 4;
  bool lowercase = true;
  std::int64_t max_chars_per_word = 100;

  /// The id of `token`, or -1 when absent.
  std::int32_t find(std::string_view token) const {
    const auto it = ids.find(token);
    return it == ids.end() ? -1 : it->second;
  }
};

/// The names of the special tokens, in the order a trained vocabulary starts with.
inline constexpr std::string_view kPadToken = "[PAD]", kUnkToken = "[UNK]", kClsToken = "[CLS]", kSepToken = "[SEP]",
                                  kMaskToken = "[MASK]";

/// The prefix of a piece that continues a word.
inline constexpr std::string_view kContinuation = "##";

/// Trains the vocabulary of WordPieceTokenizer::train (text/wordpiece_train.cpp): the
/// options are already checked; throws InvalidArgument when the documents hold no word.
Vocab train_vocab(const std::vector<std::string>& documents, std::int64_t vocab_size, std::int64_t min_frequency,
                  bool lowercase, std::int64_t max_chars_per_word);

}  // namespace trainrt::detail

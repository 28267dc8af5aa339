// text/masked_lm.cpp — MaskedLMDataset: documents tokenized once and packed into [CLS] ...
// [SEP] sequences; masking drawn per sample from (seed, index) when a sample is read.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/hash.h"
#include "trainrt/text.hpp"

namespace trainrt::text {

using detail::cat;
using detail::fail;

namespace {

/// splitmix64 (Steele et al.): a small generator whose output depends only on its seed, the
/// same on every platform (std:: distributions are not).
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  /// Uniform in [0, n), n > 0 (the bias of a 53-bit fraction is far below what matters here).
  std::int64_t below(std::int64_t n) {
    return std::min(n - 1, static_cast<std::int64_t>(uniform() * static_cast<double>(n)));
  }

 private:
  std::uint64_t state_;
};

// Documents below this count are tokenized on the calling thread.
constexpr std::size_t kParallelDocuments = 256;

}  // namespace

MaskedLMDataset::MaskedLMDataset(const WordPieceTokenizer& tokenizer, const std::vector<std::string>& documents,
                                 const MaskedLMOptions& options)
    : tokenizer_(tokenizer), options_(options) {
  const std::int64_t length = options.seq_len;
  if (length < 3)
    fail(ErrorKind::InvalidArgument,
         cat("MaskedLMDataset: seq_len must be >= 3 ([CLS], a token, [SEP]), got ", length));
  if (options.max_predictions < 1 || options.max_predictions > length)
    fail(ErrorKind::InvalidArgument,
         cat("MaskedLMDataset: max_predictions must be in [1, seq_len = ", length, "], got ", options.max_predictions));
  if (!(options.mask_prob > 0.0 && options.mask_prob <= 1.0))
    fail(ErrorKind::InvalidArgument, cat("MaskedLMDataset: mask_prob must be in (0, 1], got ", options.mask_prob));
  if (options.duplicates < 1)
    fail(ErrorKind::InvalidArgument, cat("MaskedLMDataset: duplicates must be >= 1, got ", options.duplicates));
  if (tokenizer.vocab_size() <= 5)
    fail(ErrorKind::InvalidArgument, "MaskedLMDataset: the tokenizer's vocabulary holds no ordinary token");

  std::vector<std::vector<std::int32_t>> encoded(documents.size());
  const auto encode_range = [&](std::size_t lo, std::size_t hi) {
    for (std::size_t i = lo; i < hi; ++i) encoded[i] = tokenizer.encode(documents[i]);
  };
  if (documents.size() < kParallelDocuments) encode_range(0, documents.size());
  else
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, documents.size(), 64),
                      [&](const tbb::blocked_range<std::size_t>& r) { encode_range(r.begin(), r.end()); });

  // Packing. Each sequence is [CLS], then documents (or their parts) each followed by [SEP],
  // closed by [SEP] when a document is cut at the end of the sequence.
  const auto cls = tokenizer.cls_id(), sep = tokenizer.sep_id();
  const auto full = static_cast<std::size_t>(length);
  std::size_t start = 0;  // where the open sequence starts in tokens_
  const auto open_sequence = [&] {
    start = tokens_.size();
    offsets_.push_back(static_cast<std::int64_t>(start));
    tokens_.push_back(cls);
  };
  const auto used = [&] { return tokens_.size() - start; };
  open_sequence();
  for (const auto& doc : encoded) {
    std::size_t i = 0;
    while (i < doc.size()) {
      if (used() + 1 >= full) {  // room only for the closing [SEP] (unless a document just ended)
        if (tokens_.back() != sep) tokens_.push_back(sep);
        open_sequence();
      }
      const std::size_t take = std::min(full - 1 - used(), doc.size() - i);
      tokens_.insert(tokens_.end(), doc.begin() + static_cast<std::ptrdiff_t>(i),
                     doc.begin() + static_cast<std::ptrdiff_t>(i + take));
      i += take;
    }
    if (!doc.empty()) tokens_.push_back(sep);  // fits: the loop leaves at least one place
    if (used() == full) open_sequence();
  }
  if (used() == 1) {  // the open sequence holds only [CLS]
    tokens_.pop_back();
    offsets_.pop_back();
  }
  if (offsets_.empty())
    fail(ErrorKind::InvalidArgument,
         cat("MaskedLMDataset: the ", documents.size(), " documents hold no token to pack into a sequence"));
  offsets_.push_back(static_cast<std::int64_t>(tokens_.size()));
}

std::int64_t MaskedLMDataset::size() const { return sequences() * options_.duplicates; }

std::vector<data::Field> MaskedLMDataset::fields() const {
  const std::int64_t l = options_.seq_len, p = options_.max_predictions;
  return {{"input_ids", DType::i64, Shape{l}},
          {"token_type_ids", DType::i64, Shape{l}},
          {"attention_mask", DType::boolean, Shape{l}},
          {"mlm_positions", DType::i64, Shape{p}},
          {"mlm_labels", DType::i64, Shape{p}}};
}

std::span<const std::int32_t> MaskedLMDataset::sequence(std::int64_t index) const {
  if (index < 0 || index >= sequences())
    fail(ErrorKind::InvalidArgument,
         cat("MaskedLMDataset: sequence ", index, " is out of range [0, ", sequences(), ")"));
  const auto lo = static_cast<std::size_t>(offsets_[static_cast<std::size_t>(index)]);
  const auto hi = static_cast<std::size_t>(offsets_[static_cast<std::size_t>(index) + 1]);
  return {tokens_.data() + lo, hi - lo};
}

void MaskedLMDataset::read(std::int64_t index, std::span<void* const> out) const {
  if (index < 0 || index >= size())
    fail(ErrorKind::InvalidArgument, cat("MaskedLMDataset: sample ", index, " is out of range [0, ", size(), ")"));
  const auto seq = sequence(index % sequences());
  if (out.size() != 5)
    fail(ErrorKind::InvalidArgument, cat("MaskedLMDataset::read: expected 5 outputs, got ", out.size()));
  const auto l = static_cast<std::size_t>(options_.seq_len);
  const auto p = static_cast<std::size_t>(options_.max_predictions);
  auto* input_ids = static_cast<std::int64_t*>(out[0]);
  auto* token_types = static_cast<std::int64_t*>(out[1]);
  auto* attention = static_cast<bool*>(out[2]);
  auto* positions = static_cast<std::int64_t*>(out[3]);
  auto* labels = static_cast<std::int64_t*>(out[4]);

  const auto pad = tokenizer_.pad_id();
  for (std::size_t i = 0; i < l; ++i) {
    input_ids[i] = i < seq.size() ? seq[i] : pad;
    token_types[i] = 0;
    attention[i] = i < seq.size();
  }

  // Candidates: the non-special tokens ([CLS], [SEP], [PAD] never; [UNK] and [MASK] neither).
  std::vector<std::int32_t> candidates;
  candidates.reserve(seq.size());
  for (std::size_t i = 0; i < seq.size(); ++i)
    if (!tokenizer_.is_special(seq[i])) candidates.push_back(static_cast<std::int32_t>(i));
  const auto wanted =
      static_cast<std::int64_t>(std::llround(options_.mask_prob * static_cast<double>(candidates.size())));
  const auto count = static_cast<std::size_t>(std::min(
      {std::max<std::int64_t>(wanted, 1), options_.max_predictions, static_cast<std::int64_t>(candidates.size())}));

  // Partial Fisher-Yates: the first `count` candidates become a uniform random choice.
  SplitMix64 rng(detail::hash_combine(options_.seed, static_cast<std::uint64_t>(index)));
  for (std::size_t i = 0; i < count; ++i) {
    const auto j = i + static_cast<std::size_t>(rng.below(static_cast<std::int64_t>(candidates.size() - i)));
    std::swap(candidates[i], candidates[j]);
  }
  std::sort(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(count));

  // Random replacements avoid the special tokens, which take ids 0..4 in a trained vocabulary
  // but may sit anywhere in a loaded one: draw until an ordinary token comes up.
  const std::int64_t vocab = tokenizer_.vocab_size();
  for (std::size_t k = 0; k < p; ++k) {
    if (k >= count) {
      positions[k] = 0;
      labels[k] = -100;
      continue;
    }
    const auto pos = static_cast<std::size_t>(candidates[k]);
    positions[k] = static_cast<std::int64_t>(pos);
    labels[k] = seq[pos];
    const double r = rng.uniform();
    if (r < 0.8) {
      input_ids[pos] = tokenizer_.mask_id();
    } else if (r < 0.9) {
      auto replacement = static_cast<std::int32_t>(rng.below(vocab));
      while (tokenizer_.is_special(replacement)) replacement = static_cast<std::int32_t>(rng.below(vocab));
      input_ids[pos] = replacement;
    }  // else: unchanged
  }
}

}  // namespace trainrt::text

// trainrt/text.hpp — text for language-model pre-training: corpus reading, BERT's WordPiece
// tokenizer (trained on a corpus or loaded from a vocab.txt) and the masked-LM dataset.
//
// Contents:
//   corpus            CorpusFormat, read_corpus, CorpusSplit, split_documents
//   tokenizer         WordPieceOptions, WordPieceTokenizer (train, load, save, encode, decode)
//   masked LM         MaskedLMOptions, MaskedLMDataset (a data::Dataset for BERT pre-training)
//
// The default corpus is Debian's `fortune-mod` data (packages fortunes and fortunes-min):
// /usr/share/games/fortunes, read with CorpusFormat::fortune.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "trainrt/data.hpp"

namespace trainrt::detail {
struct Vocab;
}

/// Tokenization and masked-LM data for pre-training language models.
namespace trainrt::text {

// ---- corpus ----------------------------------------------------------------------------------

/// How a corpus file is cut into documents.
enum class CorpusFormat {
  lines,       ///< each non-empty line is one document
  paragraphs,  ///< runs of non-blank lines separated by blank lines
  fortune,     ///< fortune(6) files: entries separated by lines holding just "%"
};

/// The default corpus: Debian's fortunes directory (present when the `fortunes` or
/// `fortunes-min` package is installed).
inline constexpr const char* kDefaultCorpus = "/usr/share/games/fortunes";

/// Reads the documents of a corpus: the file `path`, or every regular file directly inside
/// the directory `path` (sorted by name; *.dat files, symbolic links and subdirectories are
/// skipped, which leaves out fortune's index files and its .u8 links). Each document is
/// trimmed of leading and trailing whitespace; empty ones are dropped. Bytes that are not
/// valid UTF-8 become U+FFFD. Throws trainrt::Error: NotFound naming a missing path, Io for a
/// read error naming the file, InvalidArgument when no document is found.
std::vector<std::string> read_corpus(const std::filesystem::path& path, CorpusFormat format);

/// Documents divided into a training and a held-out evaluation part.
struct CorpusSplit {
  std::vector<std::string> train;  ///< every document not in `eval`, in order
  std::vector<std::string> eval;   ///< documents eval_every - 1, 2 * eval_every - 1, ... in order
};

/// Puts every `eval_every`-th document (indices eval_every - 1, 2 * eval_every - 1, ...) into
/// the evaluation part and the rest into the training part. Throws InvalidArgument when
/// eval_every < 2 or when either part would be empty (fewer than eval_every documents).
CorpusSplit split_documents(const std::vector<std::string>& documents, std::int64_t eval_every = 20);

// ---- tokenizer -------------------------------------------------------------------------------

/// Options of WordPieceTokenizer::train. Designated initializers follow member order.
struct WordPieceOptions {
  std::int64_t vocab_size = 8192;         ///< the vocabulary's size at most (>= 5); the alphabet is always kept
  std::int64_t min_frequency = 2;         ///< a pair seen fewer times than this is never merged (>= 1)
  bool lowercase = true;                  ///< lower-case and strip accents (BERT "uncased")
  std::int64_t max_chars_per_word = 100;  ///< longer words encode as [UNK] (>= 1)
};

/// BERT's tokenizer. Basic tokenization first: control characters, U+0000 and U+FFFD are
/// dropped, whitespace splits words, (when lowercase) letters are lower-cased and accents
/// stripped, punctuation characters become words of their own and so do CJK ideographs.
/// Then each word is cut greedily, longest match first, into vocabulary pieces, every piece
/// after the first written with the "##" prefix; a word with no such cut, or longer than
/// max_chars_per_word characters, is [UNK]. The Unicode tables (case, accents, punctuation,
/// whitespace) cover Latin-1, Latin Extended-A, Greek and Cyrillic letters and the common
/// punctuation blocks: outside them a character is kept as it is. Copyable; every const
/// member may be called from several threads at once.
class WordPieceTokenizer {
 public:
  /// Trains a vocabulary on `documents`: [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4, then the
  /// alphabet (each character seen at the start of a word, then each seen inside one as
  /// "##c", in code-point order), then merges. Training is BPE-style, as Hugging Face's
  /// WordPiece trainer does it: words start as characters and the most frequent adjacent
  /// pair (ties: the lower ids) is merged into a new piece, repeatedly, until the vocabulary
  /// holds vocab_size pieces or no pair is seen min_frequency times. Deterministic for the
  /// same input. Throws InvalidArgument for options out of range or documents with no word.
  static WordPieceTokenizer train(const std::vector<std::string>& documents, const WordPieceOptions& options = {});
  /// Loads a Hugging Face vocab.txt: one token per line, its id the line number (from 0).
  /// [PAD], [UNK], [CLS], [SEP] and [MASK] are looked up by name. Throws trainrt::Error
  /// naming the file: NotFound for a missing file, Io for a read error, InvalidArgument for
  /// an empty file, an empty or repeated token (naming the line) or a missing special token
  /// (naming it).
  static WordPieceTokenizer load(const std::filesystem::path& vocab_txt, bool lowercase = true,
                                 std::int64_t max_chars_per_word = 100);
  /// Writes the vocabulary as vocab.txt (one token per line, in id order) through a temporary
  /// file in the same directory renamed over `vocab_txt`, so that readers see the old or the
  /// new file, never a partial one. Throws Io naming the file when writing fails.
  void save(const std::filesystem::path& vocab_txt) const;

  /// The ids of `text` (no [CLS]/[SEP] added). Never throws beyond std::bad_alloc.
  std::vector<std::int32_t> encode(std::string_view text) const;
  /// The words of `text` after basic tokenization (before WordPiece), as encode() sees them.
  std::vector<std::string> basic_tokenize(std::string_view text) const;
  /// Joins the tokens of `ids` with spaces, gluing each "##" piece to the one before it
  /// (special tokens are written by name). Throws InvalidArgument for an id out of range.
  std::string decode(std::span<const std::int32_t> ids) const;

  /// The number of tokens in the vocabulary.
  std::int64_t vocab_size() const;
  /// The id of `token`, or unk_id() when it is not in the vocabulary.
  std::int32_t id(std::string_view token) const;
  /// The token of `id`; throws InvalidArgument when 0 <= id < vocab_size() does not hold.
  const std::string& token(std::int32_t id) const;
  /// True for the ids of [PAD], [UNK], [CLS], [SEP] and [MASK].
  bool is_special(std::int32_t id) const;
  std::int32_t pad_id() const;   ///< the id of [PAD]
  std::int32_t unk_id() const;   ///< the id of [UNK]
  std::int32_t cls_id() const;   ///< the id of [CLS]
  std::int32_t sep_id() const;   ///< the id of [SEP]
  std::int32_t mask_id() const;  ///< the id of [MASK]
  /// Whether text is lower-cased and stripped of accents.
  bool lowercase() const;

 private:
  explicit WordPieceTokenizer(std::shared_ptr<const detail::Vocab> vocab);
  std::shared_ptr<const detail::Vocab> vocab_;  // immutable, shared by copies
};

// ---- masked LM -------------------------------------------------------------------------------

/// Options of MaskedLMDataset. Designated initializers follow member order.
struct MaskedLMOptions {
  std::int64_t seq_len = 128;         ///< tokens per sequence, [CLS] and [SEP] included (>= 3)
  std::int64_t max_predictions = 20;  ///< masked positions per sequence at most (1 <= it <= seq_len)
  double mask_prob = 0.15;            ///< share of the non-special tokens to predict, in (0, 1]
  std::uint64_t seed = 0;             ///< with the sample index, the only input of the masking
  /// Masked copies of the corpus (BERT's dupe_factor, >= 1): the dataset holds
  /// duplicates * sequences() samples, sample i being sequence i % sequences() masked with the
  /// draws of (seed, i), so that every copy of a sequence is masked differently and an epoch
  /// over the dataset predicts other tokens of the same text in each copy.
  std::int64_t duplicates = 1;
};

/// BERT pre-training samples. The documents are tokenized once, when the dataset is built
/// (on oneTBB tasks when there are many), and packed in order into sequences of seq_len
/// tokens: "[CLS] a... [SEP] b... [SEP] ... [PAD]...". A document longer than a sequence
/// continues in the next one; short ones follow each other, a [SEP] after each. A sequence
/// is closed with [SEP] when it is full and padded with [PAD] after the last document.
///
/// Masking follows BERT: round(mask_prob * n) of the n non-special tokens of the sequence
/// (at least 1, at most max_predictions) are chosen; each becomes [MASK] with probability
/// 0.8, a random non-special token with probability 0.1, and stays unchanged otherwise. The
/// draws depend only on (seed, sample index), so a sample is masked the same way every time
/// it is read (a resumed run reproduces exactly).
///
/// Fields: "input_ids" i64 [L]; "token_type_ids" i64 [L] (zeros); "attention_mask" bool [L]
/// (true up to the last real token); "mlm_positions" i64 [P] (the positions predicted, in
/// increasing order, then zeros); "mlm_labels" i64 [P] (the original ids there, then -100).
/// L = seq_len, P = max_predictions. read() may be called from several threads at once.
class MaskedLMDataset final : public data::Dataset {
 public:
  /// Tokenizes and packs `documents` (a copy of the tokenizer is kept). Throws
  /// InvalidArgument for options out of range or documents without a single token.
  MaskedLMDataset(const WordPieceTokenizer& tokenizer, const std::vector<std::string>& documents,
                  const MaskedLMOptions& options = {});
  std::int64_t size() const override;  ///< samples: sequences() * MaskedLMOptions::duplicates
  /// The number of packed sequences.
  std::int64_t sequences() const noexcept { return static_cast<std::int64_t>(offsets_.size()) - 1; }
  std::vector<data::Field> fields() const override;
  void read(std::int64_t index, std::span<void* const> out) const override;

  /// The unmasked tokens of sequence `index` < sequences() (without padding); InvalidArgument
  /// out of range.
  std::span<const std::int32_t> sequence(std::int64_t index) const;
  /// Tokens packed over all sequences, [CLS], [SEP] included and padding excluded.
  std::int64_t tokens() const noexcept { return static_cast<std::int64_t>(tokens_.size()); }
  /// The tokenizer the dataset was built with.
  const WordPieceTokenizer& tokenizer() const noexcept { return tokenizer_; }

 private:
  WordPieceTokenizer tokenizer_;
  MaskedLMOptions options_;
  std::vector<std::int32_t> tokens_;   // every sequence's tokens, back to back, unpadded
  std::vector<std::int64_t> offsets_;  // sequence i is tokens_[offsets_[i], offsets_[i + 1])
};

}  // namespace trainrt::text

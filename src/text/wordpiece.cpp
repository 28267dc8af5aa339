// text/wordpiece.cpp — WordPieceTokenizer: loading and saving vocab.txt, encoding (basic
// tokenization then greedy longest-match-first WordPiece) and decoding. Training is in
// wordpiece_train.cpp.
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include "core/error.h"
#include "text/unicode.h"
#include "text/vocab.h"
#include "trainrt/text.hpp"

namespace trainrt::text {

using detail::cat;
using detail::fail;

namespace {

/// Appends the WordPiece ids of one basic-tokenized word (BERT's WordpieceTokenizer).
void encode_word(const detail::Vocab& vocab, std::string_view word, std::string& scratch,
                 std::vector<std::int32_t>& out) {
  if (static_cast<std::int64_t>(detail::count_code_points(word)) > vocab.max_chars_per_word) {
    out.push_back(vocab.unk);
    return;
  }
  const std::size_t first = out.size();
  std::size_t start = 0;
  while (start < word.size()) {
    std::size_t end = word.size();
    std::int32_t found = -1;
    while (end > start) {
      const std::string_view piece = word.substr(start, end - start);
      if (start == 0) {
        found = vocab.find(piece);
      } else {
        scratch.assign(detail::kContinuation);
        scratch.append(piece);
        found = vocab.find(scratch);
      }
      if (found >= 0) break;
      // Step back one code point (skip continuation bytes), never splitting a character.
      --end;
      while (end > start && (static_cast<unsigned char>(word[end]) & 0xC0) == 0x80) --end;
    }
    if (found < 0) {  // no piece fits: the whole word is unknown
      out.resize(first);
      out.push_back(vocab.unk);
      return;
    }
    out.push_back(found);
    start = end;
  }
}

std::string describe(const std::filesystem::path& path) { return cat("'", path.string(), "'"); }

}  // namespace

WordPieceTokenizer::WordPieceTokenizer(std::shared_ptr<const detail::Vocab> vocab) : vocab_(std::move(vocab)) {}

WordPieceTokenizer WordPieceTokenizer::train(const std::vector<std::string>& documents,
                                             const WordPieceOptions& options) {
  if (options.vocab_size < 5)
    fail(ErrorKind::InvalidArgument,
         cat("WordPieceTokenizer::train: vocab_size must be >= 5 (the special tokens), got ", options.vocab_size));
  if (options.vocab_size > std::int64_t{1} << 30)
    fail(ErrorKind::InvalidArgument,
         cat("WordPieceTokenizer::train: vocab_size ", options.vocab_size, " is too large"));
  if (options.min_frequency < 1)
    fail(ErrorKind::InvalidArgument,
         cat("WordPieceTokenizer::train: min_frequency must be >= 1, got ", options.min_frequency));
  if (options.max_chars_per_word < 1)
    fail(ErrorKind::InvalidArgument,
         cat("WordPieceTokenizer::train: max_chars_per_word must be >= 1, got ", options.max_chars_per_word));
  return WordPieceTokenizer(std::make_shared<const detail::Vocab>(detail::train_vocab(
      documents, options.vocab_size, options.min_frequency, options.lowercase, options.max_chars_per_word)));
}

WordPieceTokenizer WordPieceTokenizer::load(const std::filesystem::path& vocab_txt, bool lowercase,
                                            std::int64_t max_chars_per_word) {
  const std::string who = cat("WordPieceTokenizer::load: ", describe(vocab_txt));
  if (max_chars_per_word < 1)
    fail(ErrorKind::InvalidArgument, cat(who, ": max_chars_per_word must be >= 1, got ", max_chars_per_word));
  std::error_code ec;
  if (!std::filesystem::exists(vocab_txt, ec)) fail(ErrorKind::NotFound, cat(who, ": file not found"));
  if (std::filesystem::is_directory(vocab_txt, ec)) fail(ErrorKind::Io, cat(who, ": is a directory, not a vocab file"));
  std::ifstream in(vocab_txt, std::ios::binary);
  if (!in) fail(ErrorKind::Io, cat(who, ": cannot open: ", detail::errno_message(errno)));
  auto vocab = std::make_shared<detail::Vocab>();
  vocab->lowercase = lowercase;
  vocab->max_chars_per_word = max_chars_per_word;
  std::string line;
  std::int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();  // vocab files written on Windows
    if (line.empty()) fail(ErrorKind::InvalidArgument, cat(who, ": line ", line_no, " is empty (a token per line)"));
    if (detail::sanitize_utf8(line) != line)
      fail(ErrorKind::InvalidArgument, cat(who, ": line ", line_no, " is not valid UTF-8"));
    if (static_cast<std::int64_t>(vocab->tokens.size()) >= (std::int64_t{1} << 30))
      fail(ErrorKind::InvalidArgument, cat(who, ": more than 2^30 tokens"));
    const auto id = static_cast<std::int32_t>(vocab->tokens.size());
    const auto [it, inserted] = vocab->ids.emplace(line, id);
    if (!inserted)
      fail(ErrorKind::InvalidArgument,
           cat(who, ": line ", line_no, " repeats the token '", line, "' of line ", it->second + 1));
    vocab->tokens.push_back(line);
  }
  if (in.bad()) fail(ErrorKind::Io, cat(who, ": read error: ", detail::errno_message(errno)));
  if (vocab->tokens.empty()) fail(ErrorKind::InvalidArgument, cat(who, ": the file is empty (no token)"));
  const auto special = [&](std::string_view name) {
    const std::int32_t id = vocab->find(name);
    if (id < 0) fail(ErrorKind::InvalidArgument, cat(who, ": the special token ", name, " is missing"));
    return id;
  };
  vocab->pad = special(detail::kPadToken);
  vocab->unk = special(detail::kUnkToken);
  vocab->cls = special(detail::kClsToken);
  vocab->sep = special(detail::kSepToken);
  vocab->mask = special(detail::kMaskToken);
  return WordPieceTokenizer(std::move(vocab));
}

void WordPieceTokenizer::save(const std::filesystem::path& vocab_txt) const {
  static std::atomic<unsigned> counter{0};
  const std::string who = cat("WordPieceTokenizer::save: ", describe(vocab_txt));
  std::filesystem::path tmp = vocab_txt;
  tmp += cat(".tmp.", ::getpid(), ".", counter.fetch_add(1));
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(ErrorKind::Io, cat(who, ": cannot create '", tmp.string(), "': ", detail::errno_message(errno)));
    for (const std::string& t : vocab_->tokens) out << t << '\n';
    out.flush();
    if (!out) {
      const int err = errno;
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      fail(ErrorKind::Io, cat(who, ": write failed: ", detail::errno_message(err)));
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, vocab_txt, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    fail(ErrorKind::Io, cat(who, ": cannot rename the temporary file into place: ", ec.message()));
  }
}

std::vector<std::int32_t> WordPieceTokenizer::encode(std::string_view text) const {
  std::vector<std::string> words;
  detail::basic_tokenize(text, vocab_->lowercase, words);
  std::vector<std::int32_t> ids;
  ids.reserve(words.size() * 2);
  std::string scratch;
  for (const std::string& w : words) encode_word(*vocab_, w, scratch, ids);
  return ids;
}

std::vector<std::string> WordPieceTokenizer::basic_tokenize(std::string_view text) const {
  std::vector<std::string> words;
  detail::basic_tokenize(text, vocab_->lowercase, words);
  return words;
}

std::string WordPieceTokenizer::decode(std::span<const std::int32_t> ids) const {
  std::string out;
  for (const std::int32_t id : ids) {
    const std::string& t = token(id);
    if (t.size() > detail::kContinuation.size() && t.starts_with(detail::kContinuation)) {
      out.append(t, detail::kContinuation.size());
    } else {
      if (!out.empty()) out.push_back(' ');
      out.append(t);
    }
  }
  return out;
}

std::int64_t WordPieceTokenizer::vocab_size() const { return static_cast<std::int64_t>(vocab_->tokens.size()); }

std::int32_t WordPieceTokenizer::id(std::string_view token) const {
  const std::int32_t found = vocab_->find(token);
  return found < 0 ? vocab_->unk : found;
}

const std::string& WordPieceTokenizer::token(std::int32_t id) const {
  if (id < 0 || id >= static_cast<std::int64_t>(vocab_->tokens.size()))
    fail(ErrorKind::InvalidArgument,
         cat("WordPieceTokenizer: token id ", id, " is out of range [0, ", vocab_->tokens.size(), ")"));
  return vocab_->tokens[static_cast<std::size_t>(id)];
}

bool WordPieceTokenizer::is_special(std::int32_t id) const {
  return id == vocab_->pad || id == vocab_->unk || id == vocab_->cls || id == vocab_->sep || id == vocab_->mask;
}

std::int32_t WordPieceTokenizer::pad_id() const { return vocab_->pad; }
std::int32_t WordPieceTokenizer::unk_id() const { return vocab_->unk; }
std::int32_t WordPieceTokenizer::cls_id() const { return vocab_->cls; }
std::int32_t WordPieceTokenizer::sep_id() const { return vocab_->sep; }
std::int32_t WordPieceTokenizer::mask_id() const { return vocab_->mask; }
bool WordPieceTokenizer::lowercase() const { return vocab_->lowercase; }

}  // namespace trainrt::text

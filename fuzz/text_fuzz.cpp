// fuzz/text_fuzz.cpp — the text pipeline on untrusted bytes (text/corpus.cpp, text/wordpiece.cpp,
// text/unicode.cpp). An input holding a NUL byte is a vocabulary file (the bytes before it) and a
// text (the bytes after); without one it is a corpus file read in every format and tokenized
// with a small fixed vocabulary. Properties: ids lie in [0, vocab_size), decoding succeeds,
// basic tokenization yields no empty word, and a rejected vocabulary or corpus is an
// InvalidArgument or Io error, never anything else.
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "fuzz_util.h"
#include "trainrt/text.hpp"

namespace {

using namespace trainrt::detail;
using trainrt::text::WordPieceTokenizer;

constexpr const char* kTarget = "text";

void check_encoding(const WordPieceTokenizer& tok, std::string_view text) {
  const std::vector<std::int32_t> ids = tok.encode(text);
  for (const std::int32_t id : ids)
    if (id < 0 || id >= tok.vocab_size())
      fuzz::property_failed(kTarget, cat("id ", id, " outside the vocabulary of ", tok.vocab_size()));
  (void)tok.decode(ids);
  for (const std::string& word : tok.basic_tokenize(text))
    if (word.empty()) fuzz::property_failed(kTarget, "basic_tokenize returned an empty word");
}

/// Rejections must be the reader's own kinds.
void expect_rejection_kind(const trainrt::Error& e) {
  if (e.kind() != trainrt::ErrorKind::InvalidArgument && e.kind() != trainrt::ErrorKind::Io)
    fuzz::property_failed(kTarget, cat("an error of kind ", trainrt::to_string(e.kind()), ": ", e.what()));
}

const WordPieceTokenizer& fixed_tokenizer() {
  static const WordPieceTokenizer tok = [] {
    const fuzz::MemFile vocab(
        "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\nquick\nfox\n##es\n##s\nun\n##aff\n##able\n.\n,\n!\na\nb\nc\n"
        "\xc3\xa9\n\xe4\xb8\x80\n");
    return WordPieceTokenizer::load(vocab.path());
  }();
  return tok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes = fuzz::as_text(data, size);
  fuzz::expect_clean(kTarget, [&] {
    const std::size_t nul = bytes.find('\0');
    if (nul != std::string_view::npos) {
      const fuzz::MemFile vocab(bytes.substr(0, nul));
      for (const bool lowercase : {true, false}) {
        try {
          const WordPieceTokenizer tok = WordPieceTokenizer::load(vocab.path(), lowercase, 8);
          check_encoding(tok, bytes.substr(nul + 1));
        } catch (const trainrt::Error& e) {
          expect_rejection_kind(e);
        }
      }
      return;
    }
    const fuzz::MemFile corpus(bytes);
    using trainrt::text::CorpusFormat;
    for (const CorpusFormat format : {CorpusFormat::lines, CorpusFormat::paragraphs, CorpusFormat::fortune}) {
      try {
        for (const std::string& doc : trainrt::text::read_corpus(corpus.path(), format))
          check_encoding(fixed_tokenizer(), doc);
      } catch (const trainrt::Error& e) {
        expect_rejection_kind(e);
      }
    }
    check_encoding(fixed_tokenizer(), bytes);
  });
  return 0;
}

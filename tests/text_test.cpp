// tests/text_test.cpp — the tokenizer, corpus reading and the masked-LM dataset.
//
// Contents: basic tokenization and WordPiece against what BERT's uncased tokenizer gives
// (google-research/bert tokenization_test.py cases, pieces written by hand for small vocab
// files); vocab files (round trip, bad files); training; corpus formats (and the real
// fortunes directory when installed); MaskedLMDataset packing and masking statistics.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "test_util.h"
#include "trainrt/text.hpp"

namespace trainrt {
namespace {

using text::CorpusFormat;
using text::MaskedLMDataset;
using text::MaskedLMOptions;
using text::WordPieceOptions;
using text::WordPieceTokenizer;

void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
}

/// A vocab.txt of `tokens`, one per line.
std::string vocab_file(const test::TempDir& dir, const std::vector<std::string>& tokens,
                       const std::string& name = "vocab.txt") {
  std::string content;
  for (const auto& t : tokens) content += t + "\n";
  write_file(dir.file(name), content);
  return dir.file(name);
}

/// The small vocabulary of BERT's tokenization tests plus the pieces our cases need.
WordPieceTokenizer test_tokenizer(const test::TempDir& dir, bool lowercase = true, std::int64_t max_chars = 100) {
  const std::vector<std::string> tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "want",  "##want", "##ed",
                                           "wa",    "un",    "runn",  "##ing", ",",      "##aff", "##able", "hello",
                                           "!",     "how",   "are",   "you",   "?",      "cafe",  "\u4E2D", "\u56FD",
                                           "the",   ".",     "'",     "s",     "don",    "t",     "HeLLo"};
  return WordPieceTokenizer::load(vocab_file(dir, tokens), lowercase, max_chars);
}

std::vector<std::string> pieces(const WordPieceTokenizer& tok, std::string_view s) {
  std::vector<std::string> out;
  for (const auto id : tok.encode(s)) out.push_back(tok.token(id));
  return out;
}

using Strings = std::vector<std::string>;

// ---- basic tokenization and WordPiece ---------------------------------------------------------

TEST(TextTokenizer, BasicTokenizationLowercase) {
  test::TempDir dir;
  const auto tok = test_tokenizer(dir);
  EXPECT_EQ(tok.basic_tokenize(" \tHeLLo!how  \n Are yoU?  "), (Strings{"hello", "!", "how", "are", "you", "?"}));
  EXPECT_EQ(tok.basic_tokenize("H\u00E9llo"), (Strings{"hello"}));  // accents stripped
  EXPECT_EQ(tok.basic_tokenize("CAF\u00C9 na\u00EFve"), (Strings{"cafe", "naive"}));
  EXPECT_EQ(tok.basic_tokenize("e\u0301t\u00E9"), (Strings{"ete"}));  // combining acute dropped
  EXPECT_EQ(tok.basic_tokenize("ah\u535A\u63A8zz"), (Strings{"ah", "\u535A", "\u63A8", "zz"}));  // CJK
  EXPECT_EQ(tok.basic_tokenize("a\x01"
                               "b\x7F"
                               "c\u200Bd"),
            (Strings{"abcd"}));                                                // control/format chars dropped
  EXPECT_EQ(tok.basic_tokenize("x\u00A0y\u3000z"), (Strings{"x", "y", "z"}));  // Unicode spaces split
  EXPECT_EQ(tok.basic_tokenize("don't \u00ABquote\u00BB \u2014 $5"),
            (Strings{"don", "'", "t", "\u00AB", "quote", "\u00BB", "\u2014", "$", "5"}));
  EXPECT_EQ(tok.basic_tokenize("\u0130stanbul \u0141\u00F3d\u017A \u00C6sir \u0394\u0416"),
            (Strings{"istanbul", "\u0142odz", "\u00E6sir", "\u03B4\u0436"}));
  // Greek and Cyrillic accents, titlecase digraphs, Hangul jamo (NFD), line/paragraph separators:
  // the pieces Hugging Face's BertWordPieceTokenizer (lowercase, strip_accents) gives.
  EXPECT_EQ(tok.basic_tokenize("\u0386\u03BB\u03C6\u03B1 \u0401\u043B\u043A\u0430 \u0419 \u01C5\u01C8"),
            (Strings{"\u03B1\u03BB\u03C6\u03B1", "\u0435\u043B\u043A\u0430", "\u0438", "\u01C6\u01C9"}));
  EXPECT_EQ(tok.basic_tokenize("\uD55C\uAD6D"), (Strings{"\u1112\u1161\u11AB\u1100\u116E\u11A8"}));
  EXPECT_EQ(tok.basic_tokenize("a\u2028b\u2029c"), (Strings{"a", "b", "c"}));
  EXPECT_TRUE(tok.basic_tokenize(" \n\t ").empty());
}

TEST(TextTokenizer, BasicTokenizationCased) {
  test::TempDir dir;
  const auto tok = test_tokenizer(dir, /*lowercase=*/false);
  EXPECT_EQ(tok.basic_tokenize(" \tHeLLo!how  \n Are yoU?  "), (Strings{"HeLLo", "!", "how", "Are", "yoU", "?"}));
  EXPECT_EQ(tok.basic_tokenize("H\u00E9llo"), (Strings{"H\u00E9llo"}));
  EXPECT_EQ(pieces(tok, "HeLLo hello"), (Strings{"HeLLo", "hello"}));
}

TEST(TextTokenizer, WordPieceGreedyLongestMatch) {
  test::TempDir dir;
  const auto tok = test_tokenizer(dir);
  EXPECT_EQ(pieces(tok, "unaffable"), (Strings{"un", "##aff", "##able"}));
  EXPECT_EQ(pieces(tok, "unwanted running"), (Strings{"un", "##want", "##ed", "runn", "##ing"}));
  EXPECT_EQ(pieces(tok, "UNwant\u00E9d,running"), (Strings{"un", "##want", "##ed", ",", "runn", "##ing"}));
  // A word with no complete cut is one [UNK]; its neighbours are unaffected.
  EXPECT_EQ(pieces(tok, "unwantedX running"), (Strings{"[UNK]", "runn", "##ing"}));
  EXPECT_EQ(pieces(tok, "Hello, how are you?"), (Strings{"hello", ",", "how", "are", "you", "?"}));
  EXPECT_EQ(pieces(tok, "Caf\u00E9 \u4E2D\u56FD"), (Strings{"cafe", "\u4E2D", "\u56FD"}));
  EXPECT_EQ(pieces(tok, "x \u00E9"), (Strings{"[UNK]", "[UNK]"}));  // "é" -> "e", not in the vocabulary
  EXPECT_TRUE(tok.encode("").empty());
  EXPECT_EQ(tok.id("##aff"), 13);
  EXPECT_EQ(tok.id("nope"), tok.unk_id());
  EXPECT_EQ(tok.decode(tok.encode("unwanted running, hello")), "unwanted running , hello");
  EXPECT_EQ(tok.decode(std::vector<std::int32_t>{tok.cls_id(), 9, 13, 14, tok.sep_id()}), "[CLS] unaffable [SEP]");
  test::expect_error([&] { (void)tok.decode(std::vector<std::int32_t>{5, 999}); }, ErrorKind::InvalidArgument, {"999"});
  test::expect_error([&] { (void)tok.token(-1); }, ErrorKind::InvalidArgument, {"-1"});
}

TEST(TextTokenizer, MaxCharsPerWord) {
  test::TempDir dir;
  const auto tok = test_tokenizer(dir, true, /*max_chars=*/7);
  EXPECT_EQ(pieces(tok, "running"), (Strings{"runn", "##ing"}));  // 7 characters: still cut
  EXPECT_EQ(pieces(tok, "unwanted"), (Strings{"[UNK]"}));         // 8: too long
  // CJK ideographs are words of their own, so they never make a word too long.
  const auto tight = test_tokenizer(dir, false, 4);
  EXPECT_EQ(pieces(tight, "cafe"), (Strings{"cafe"}));
  EXPECT_EQ(pieces(tight, "\u4E2D\u4E2D"), (Strings{"\u4E2D", "\u4E2D"}));
}

TEST(TextTokenizer, SpecialIdsLookedUpByName) {
  test::TempDir dir;
  const auto tok =
      WordPieceTokenizer::load(vocab_file(dir, {"a", "[UNK]", "b", "[SEP]", "[MASK]", "[CLS]", "[PAD]", "##c"}));
  EXPECT_EQ(tok.vocab_size(), 8);
  EXPECT_EQ(tok.pad_id(), 6);
  EXPECT_EQ(tok.unk_id(), 1);
  EXPECT_EQ(tok.cls_id(), 5);
  EXPECT_EQ(tok.sep_id(), 3);
  EXPECT_EQ(tok.mask_id(), 4);
  EXPECT_TRUE(tok.is_special(6));
  EXPECT_FALSE(tok.is_special(0));
  EXPECT_EQ(pieces(tok, "acc b"), (Strings{"a", "##c", "##c", "b"}));
}

TEST(TextTokenizer, BadVocabFiles) {
  test::TempDir dir;
  write_file(dir.file("empty.txt"), "");
  test::expect_error([&] { (void)WordPieceTokenizer::load(dir.file("empty.txt")); }, ErrorKind::InvalidArgument,
                     {"empty.txt", "empty"});
  const auto no_mask = vocab_file(dir, {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"}, "no_mask.txt");
  test::expect_error([&] { (void)WordPieceTokenizer::load(no_mask); }, ErrorKind::InvalidArgument,
                     {"no_mask.txt", "[MASK]", "missing"});
  const auto dup = vocab_file(dir, {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "a"}, "dup.txt");
  test::expect_error([&] { (void)WordPieceTokenizer::load(dup); }, ErrorKind::InvalidArgument,
                     {"dup.txt", "line 8", "'a'", "line 6"});
  write_file(dir.file("blank.txt"), "[PAD]\n[UNK]\n\n[CLS]\n");
  test::expect_error([&] { (void)WordPieceTokenizer::load(dir.file("blank.txt")); }, ErrorKind::InvalidArgument,
                     {"blank.txt", "line 3", "empty"});
  write_file(dir.file("latin1.txt"), "[PAD]\n[UNK]\nchat\xE9\n");
  test::expect_error([&] { (void)WordPieceTokenizer::load(dir.file("latin1.txt")); }, ErrorKind::InvalidArgument,
                     {"latin1.txt", "line 3", "UTF-8"});
  test::expect_error([&] { (void)WordPieceTokenizer::load(dir.file("missing.txt")); }, ErrorKind::NotFound,
                     {"missing.txt"});
  test::expect_error([&] { (void)WordPieceTokenizer::load(dir.path()); }, ErrorKind::Io, {"directory"});
}

// ---- training and vocab files -----------------------------------------------------------------

std::vector<std::string> small_corpus() {
  std::vector<std::string> docs;
  const std::vector<std::string> sentences = {
      "The quick brown fox jumps over the lazy dog.", "The dog sleeps; the fox runs away!",
      "Quickly, the brown dogs jumped over the foxes.", "A lazy afternoon: the dog and the fox sleep.",
      "Running, jumping and sleeping are what the animals do."};
  for (int i = 0; i < 20; ++i) docs.push_back(sentences[static_cast<std::size_t>(i) % sentences.size()]);
  return docs;
}

TEST(TextTokenizer, TrainingIsDeterministicAndLearnsCommonWords) {
  const auto docs = small_corpus();
  const WordPieceOptions opts{.vocab_size = 120, .min_frequency = 2};
  const auto a = WordPieceTokenizer::train(docs, opts);
  const auto b = WordPieceTokenizer::train(docs, opts);
  ASSERT_EQ(a.vocab_size(), b.vocab_size());
  for (std::int32_t i = 0; i < a.vocab_size(); ++i) EXPECT_EQ(a.token(i), b.token(i)) << "id " << i;
  EXPECT_LE(a.vocab_size(), 120);
  EXPECT_EQ(a.token(0), "[PAD]");
  EXPECT_EQ(a.token(1), "[UNK]");
  EXPECT_EQ(a.token(2), "[CLS]");
  EXPECT_EQ(a.token(3), "[SEP]");
  EXPECT_EQ(a.token(4), "[MASK]");
  // Frequent words are whole tokens; each character of the corpus is in the alphabet.
  for (const char* w : {"the", "dog", "fox", "brown", "lazy", "over"}) EXPECT_EQ(pieces(a, w), (Strings{w})) << w;
  EXPECT_NE(a.id("##z"), a.unk_id());
  EXPECT_NE(a.id("q"), a.unk_id());
  // Everything made of known characters encodes without [UNK] and decodes back (lower-cased).
  const std::string sentence = "The lazy fox quickly jumps over brown dogs.";
  const auto ids = a.encode(sentence);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), a.unk_id()), 0);
  EXPECT_EQ(a.decode(ids), "the lazy fox quickly jumps over brown dogs .");
  // Characters never seen in their place are [UNK]: no "\u4E2D" at all, and "x" never starts a word.
  EXPECT_EQ(pieces(a, "\u4E2D x fox"), (Strings{"[UNK]", "[UNK]", "fox"}));

  // Fewer merges when pairs must be frequent: min_frequency = 1000 leaves only the alphabet.
  const auto alphabet_only = WordPieceTokenizer::train(docs, {.vocab_size = 1000, .min_frequency = 1000});
  for (std::int32_t i = 5; i < alphabet_only.vocab_size(); ++i) {
    const std::string& t = alphabet_only.token(i);
    EXPECT_TRUE(t.size() == 1 || (t.size() == 3 && t.starts_with("##"))) << t;
  }
}

TEST(TextTokenizer, TrainingOptionsChecked) {
  const auto docs = small_corpus();
  test::expect_error([&] { (void)WordPieceTokenizer::train(docs, {.vocab_size = 4}); }, ErrorKind::InvalidArgument,
                     {"vocab_size"});
  test::expect_error([&] { (void)WordPieceTokenizer::train(docs, {.min_frequency = 0}); }, ErrorKind::InvalidArgument,
                     {"min_frequency"});
  test::expect_error([&] { (void)WordPieceTokenizer::train(docs, {.max_chars_per_word = 0}); },
                     ErrorKind::InvalidArgument, {"max_chars_per_word"});
  test::expect_error([&] { (void)WordPieceTokenizer::train({" ", "\n\t"}); }, ErrorKind::InvalidArgument, {"no word"});
}

TEST(TextTokenizer, SaveLoadRoundTrip) {
  test::TempDir dir;
  const auto docs = small_corpus();
  const auto trained = WordPieceTokenizer::train(docs, {.vocab_size = 100});
  const std::string path = dir.file("vocab.txt");
  write_file(path, "old contents\n");
  trained.save(path);
  const auto loaded = WordPieceTokenizer::load(path);
  ASSERT_EQ(loaded.vocab_size(), trained.vocab_size());
  for (std::int32_t i = 0; i < trained.vocab_size(); ++i) EXPECT_EQ(loaded.token(i), trained.token(i));
  EXPECT_EQ(loaded.mask_id(), trained.mask_id());
  for (const auto& d : docs) EXPECT_EQ(loaded.encode(d), trained.encode(d));
  // Only the vocabulary file remains: the temporary file was renamed into place.
  int files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 1);
  test::expect_error([&] { trained.save(dir.file("no/such/dir/vocab.txt")); }, ErrorKind::Io, {"vocab.txt"});
}

// ---- corpus ---------------------------------------------------------------------------------

TEST(TextCorpus, Formats) {
  test::TempDir dir;
  write_file(dir.file("a.txt"), "first line\n\n  second line  \r\nthird\n\n\nfourth\nfifth");
  EXPECT_EQ(text::read_corpus(dir.file("a.txt"), CorpusFormat::lines),
            (Strings{"first line", "second line", "third", "fourth", "fifth"}));
  EXPECT_EQ(text::read_corpus(dir.file("a.txt"), CorpusFormat::paragraphs),
            (Strings{"first line", "second line  \nthird", "fourth\nfifth"}));
  write_file(dir.file("f"), "A fortune\nof two lines.\n%\n%\nAnother one.\n%\n  Last, no trailing percent\n");
  EXPECT_EQ(text::read_corpus(dir.file("f"), CorpusFormat::fortune),
            (Strings{"A fortune\nof two lines.", "Another one.", "Last, no trailing percent"}));
}

TEST(TextCorpus, DirectorySkipsIndexFilesLinksAndSubdirectories) {
  test::TempDir dir;
  std::filesystem::create_directory(dir.file("corpus"));
  const auto in = [&](const std::string& name) { return dir.file("corpus/" + name); };
  write_file(in("b"), "bee\n%\nbuzz\n");
  write_file(in("a"), "ant\n");
  write_file(in("a.dat"), std::string("\x00\x01\x02\x03", 4));
  std::filesystem::create_symlink("a", in("a.u8"));
  std::filesystem::create_directory(in("sub"));
  write_file(in("sub/c"), "hidden\n");
  write_file(in("latin1"), "caf\xE9 cr\xE8me\n");  // latin-1, not UTF-8
  EXPECT_EQ(text::read_corpus(dir.file("corpus"), CorpusFormat::fortune),
            (Strings{"ant", "bee", "buzz", "caf\uFFFD cr\uFFFDme"}));
}

TEST(TextCorpus, Errors) {
  test::TempDir dir;
  test::expect_error([&] { (void)text::read_corpus(dir.file("nope"), CorpusFormat::lines); }, ErrorKind::NotFound,
                     {"nope"});
  write_file(dir.file("blank"), "\n  \n%\n");
  test::expect_error([&] { (void)text::read_corpus(dir.file("blank"), CorpusFormat::fortune); },
                     ErrorKind::InvalidArgument, {"blank", "no document"});
  std::filesystem::create_directory(dir.file("empty"));
  test::expect_error([&] { (void)text::read_corpus(dir.file("empty"), CorpusFormat::lines); },
                     ErrorKind::InvalidArgument, {"empty", "no document", "0 files"});
}

TEST(TextCorpus, SplitDocuments) {
  Strings docs;
  for (int i = 0; i < 45; ++i) docs.push_back(std::to_string(i));
  const auto split = text::split_documents(docs, 20);
  EXPECT_EQ(split.eval, (Strings{"19", "39"}));
  EXPECT_EQ(split.train.size(), 43u);
  EXPECT_EQ(split.train.front(), "0");
  EXPECT_EQ(split.train.back(), "44");
  test::expect_error([&] { (void)text::split_documents(docs, 1); }, ErrorKind::InvalidArgument, {"eval_every"});
  test::expect_error([&] { (void)text::split_documents(Strings(5, "x"), 20); }, ErrorKind::InvalidArgument,
                     {"5 documents"});
}

TEST(TextCorpus, FortunesTrainAndEncode) {
  if (!std::filesystem::is_directory(text::kDefaultCorpus))
    GTEST_SKIP() << "no " << text::kDefaultCorpus << " (install Debian's fortunes or fortunes-min package)";
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  const auto docs = text::read_corpus(text::kDefaultCorpus, CorpusFormat::fortune);
  const auto t1 = Clock::now();
  EXPECT_GT(docs.size(), 100u);
  const auto tok = WordPieceTokenizer::train(docs, {.vocab_size = 8192});
  const auto t2 = Clock::now();
  std::int64_t tokens = 0, unknown = 0;
  for (const auto& d : docs) {
    const auto ids = tok.encode(d);
    tokens += static_cast<std::int64_t>(ids.size());
    unknown += std::count(ids.begin(), ids.end(), tok.unk_id());
  }
  const auto t3 = Clock::now();
  const auto ms = [](auto d) { return std::chrono::duration<double, std::milli>(d).count(); };
  std::cout << "fortunes: " << docs.size() << " documents read in " << ms(t1 - t0) << " ms; vocabulary of "
            << tok.vocab_size() << " trained in " << ms(t2 - t1) << " ms; " << tokens << " tokens (" << unknown
            << " [UNK]) encoded in " << ms(t3 - t2) << " ms\n";
  EXPECT_EQ(tok.vocab_size(), 8192);
  EXPECT_LT(static_cast<double>(unknown), 0.001 * static_cast<double>(tokens));
  for (const char* w : {"the", "and", "you", "computer", "love"}) EXPECT_EQ(pieces(tok, w), (Strings{w})) << w;
}

// ---- masked LM --------------------------------------------------------------------------------

/// Everything read() writes for one sample.
struct Sample {
  std::vector<std::int64_t> input_ids, token_types, positions, labels;
  std::vector<unsigned char> attention;  // bool storage, compared as bytes
};

Sample read_sample(const MaskedLMDataset& ds, std::int64_t index, const MaskedLMOptions& o) {
  const auto l = static_cast<std::size_t>(o.seq_len), p = static_cast<std::size_t>(o.max_predictions);
  Sample s{std::vector<std::int64_t>(l), std::vector<std::int64_t>(l), std::vector<std::int64_t>(p),
           std::vector<std::int64_t>(p), std::vector<unsigned char>(l)};
  auto attention = std::make_unique<bool[]>(l);  // NOLINT(cppcoreguidelines-avoid-c-arrays): bool storage
  const std::vector<void*> out = {s.input_ids.data(), s.token_types.data(), attention.get(), s.positions.data(),
                                  s.labels.data()};
  ds.read(index, out);
  for (std::size_t i = 0; i < l; ++i) s.attention[i] = attention[i] ? 1 : 0;
  return s;
}

struct MlmFixture {
  WordPieceTokenizer tok;
  std::vector<std::string> docs;
};

MlmFixture mlm_fixture() {
  auto docs = small_corpus();
  // Documents of very different lengths: some span several sequences, some share one.
  std::string long_doc;
  for (int i = 0; i < 60; ++i) long_doc += "the quick brown fox jumps over the lazy dog and runs away. ";
  docs.push_back(long_doc);
  docs.emplace_back("   ");  // no token: skipped
  docs.emplace_back("dog");
  auto tok = WordPieceTokenizer::train(docs, {.vocab_size = 200});
  return {std::move(tok), std::move(docs)};
}

TEST(TextMaskedLM, FieldsAndPacking) {
  const auto f = mlm_fixture();
  const MaskedLMOptions o{.seq_len = 32, .max_predictions = 6, .seed = 7};
  const MaskedLMDataset ds(f.tok, f.docs, o);
  const auto fields = ds.fields();
  ASSERT_EQ(fields.size(), 5u);
  EXPECT_EQ(fields[0].name, "input_ids");
  EXPECT_EQ(fields[0].dtype, DType::i64);
  EXPECT_EQ(fields[0].shape, Shape{32});
  EXPECT_EQ(fields[1].name, "token_type_ids");
  EXPECT_EQ(fields[2].name, "attention_mask");
  EXPECT_EQ(fields[2].dtype, DType::boolean);
  EXPECT_EQ(fields[3].name, "mlm_positions");
  EXPECT_EQ(fields[3].shape, Shape{6});
  EXPECT_EQ(fields[4].name, "mlm_labels");
  EXPECT_EQ(fields[4].dtype, DType::i64);

  // Sequences: [CLS] first, [SEP] last, at most seq_len; all but the last full or short by one.
  // Their ordinary tokens, in order, are the documents' tokens; [SEP] ends every document.
  std::vector<std::int32_t> expected, packed;
  std::int64_t seps_expected = 0, seps = 0;
  for (const auto& d : f.docs) {
    const auto ids = f.tok.encode(d);
    expected.insert(expected.end(), ids.begin(), ids.end());
    seps_expected += ids.empty() ? 0 : 1;
  }
  ASSERT_GT(ds.size(), 3);
  std::int64_t total = 0;
  for (std::int64_t i = 0; i < ds.size(); ++i) {
    const auto seq = ds.sequence(i);
    ASSERT_GE(seq.size(), 3u);
    ASSERT_LE(seq.size(), 32u);
    if (i + 1 < ds.size()) {
      EXPECT_GE(seq.size(), 31u) << "sequence " << i << " is not filled";
    }
    EXPECT_EQ(seq.front(), f.tok.cls_id());
    EXPECT_EQ(seq.back(), f.tok.sep_id());
    total += static_cast<std::int64_t>(seq.size());
    for (std::size_t k = 1; k < seq.size(); ++k) {
      if (seq[k] == f.tok.sep_id()) {
        ++seps;
        continue;
      }
      EXPECT_NE(seq[k], f.tok.cls_id());
      packed.push_back(seq[k]);
    }
  }
  EXPECT_EQ(packed, expected);
  EXPECT_GE(seps, seps_expected);  // one per document, plus one closing each cut
  EXPECT_EQ(total, ds.tokens());

  for (std::int64_t i = 0; i < ds.size(); ++i) {
    const auto s = read_sample(ds, i, o);
    const auto seq = ds.sequence(i);
    for (std::size_t k = 0; k < 32; ++k) {
      EXPECT_EQ(s.token_types[k], 0);
      EXPECT_EQ(s.attention[k], k < seq.size() ? 1 : 0);
      if (k >= seq.size()) {
        EXPECT_EQ(s.input_ids[k], f.tok.pad_id());
      }
    }
  }
  test::expect_error([&] { (void)ds.sequence(ds.size()); }, ErrorKind::InvalidArgument, {"out of range"});
}

TEST(TextMaskedLM, MaskingStatistics) {
  const auto f = mlm_fixture();
  const MaskedLMOptions o{.seq_len = 64, .max_predictions = 64, .mask_prob = 0.15, .seed = 3};
  std::int64_t candidates = 0, predicted = 0, masked = 0, random = 0, kept = 0;
  // Many epochs' worth of draws: every (seed, index) pair is one draw, so vary the seed.
  for (std::uint64_t seed = 0; seed < 60; ++seed) {
    MaskedLMOptions os = o;
    os.seed = seed;
    const MaskedLMDataset d(f.tok, f.docs, os);
    for (std::int64_t i = 0; i < d.size(); ++i) {
      const auto s = read_sample(d, i, os);
      const auto seq = d.sequence(i);
      std::int64_t n = 0;
      for (const auto t : seq) n += f.tok.is_special(t) ? 0 : 1;
      candidates += n;
      std::int64_t prev = -1;
      for (std::size_t k = 0; k < s.positions.size(); ++k) {
        if (s.labels[k] == -100) {
          EXPECT_EQ(s.positions[k], 0);
          continue;
        }
        ++predicted;
        const auto pos = static_cast<std::size_t>(s.positions[k]);
        ASSERT_LT(pos, seq.size());
        EXPECT_GT(s.positions[k], prev);  // increasing, no repeats
        prev = s.positions[k];
        EXPECT_EQ(s.labels[k], seq[pos]);  // the label is the original token
        EXPECT_FALSE(f.tok.is_special(seq[pos])) << "masked a special token at " << pos;
        if (s.input_ids[pos] == f.tok.mask_id()) ++masked;
        else if (s.input_ids[pos] == seq[pos]) ++kept;
        else {
          ++random;
          EXPECT_FALSE(f.tok.is_special(static_cast<std::int32_t>(s.input_ids[pos])));
        }
      }
      // Positions not predicted are unchanged.
      for (std::size_t k = 0; k < seq.size(); ++k) {
        const bool predicted_here = k != 0 && std::find(s.positions.begin(), s.positions.end(),
                                                        static_cast<std::int64_t>(k)) != s.positions.end();
        if (!predicted_here) {
          EXPECT_EQ(s.input_ids[k], seq[k]) << "sample " << i << " position " << k;
        }
      }
    }
  }
  ASSERT_GT(predicted, 2000);
  const double rate = static_cast<double>(predicted) / static_cast<double>(candidates);
  EXPECT_NEAR(rate, 0.15, 0.01);
  // 80/10/10 within about 4 standard deviations for this many draws. A random replacement can
  // draw the original token, which counts as kept (probability 1 / ordinary tokens).
  const auto share = [&](std::int64_t x) { return static_cast<double>(x) / static_cast<double>(predicted); };
  EXPECT_NEAR(share(masked), 0.8, 0.035);
  EXPECT_NEAR(share(random), 0.1, 0.025);
  EXPECT_NEAR(share(kept), 0.1, 0.025);
}

TEST(TextMaskedLM, MaskingIsDeterministicPerSeedAndIndex) {
  const auto f = mlm_fixture();
  const MaskedLMOptions o{.seq_len = 48, .max_predictions = 8, .seed = 11};
  const MaskedLMDataset a(f.tok, f.docs, o), b(f.tok, f.docs, o);
  MaskedLMOptions other = o;
  other.seed = 12;
  const MaskedLMDataset c(f.tok, f.docs, other);
  bool any_differs = false;
  for (std::int64_t i = 0; i < a.size(); ++i) {
    const auto x = read_sample(a, i, o), y = read_sample(a, i, o), z = read_sample(b, i, o);
    EXPECT_EQ(x.input_ids, y.input_ids);
    EXPECT_EQ(x.positions, z.positions);
    EXPECT_EQ(x.input_ids, z.input_ids);
    EXPECT_EQ(x.labels, z.labels);
    any_differs = any_differs || read_sample(c, i, other).positions != x.positions;
  }
  EXPECT_TRUE(any_differs) << "another seed masks the same positions everywhere";

  // Concurrent reads (as the DataLoader's threads do) give the same samples.
  std::vector<Sample> seen(static_cast<std::size_t>(a.size()));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (std::int64_t i = t; i < a.size(); i += 4) seen[static_cast<std::size_t>(i)] = read_sample(a, i, o);
    });
  for (auto& th : threads) th.join();
  for (std::int64_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(seen[static_cast<std::size_t>(i)].input_ids, read_sample(b, i, o).input_ids);

  // max_predictions caps the count; at least one token is always predicted.
  const MaskedLMOptions few{.seq_len = 48, .max_predictions = 2, .mask_prob = 0.5};
  const MaskedLMDataset capped(f.tok, f.docs, few);
  const MaskedLMOptions tiny{.seq_len = 48, .max_predictions = 8, .mask_prob = 0.001};
  const MaskedLMDataset one(f.tok, f.docs, tiny);
  for (std::int64_t i = 0; i < capped.size(); ++i) {
    const auto s = read_sample(capped, i, few);
    EXPECT_EQ(std::count(s.labels.begin(), s.labels.end(), -100), 0);
    const auto t = read_sample(one, i, tiny);
    EXPECT_EQ(std::count(t.labels.begin(), t.labels.end(), -100), 7);
  }
}

TEST(TextMaskedLM, DuplicatesMaskEachCopyDifferently) {
  const auto f = mlm_fixture();
  const MaskedLMOptions once{.seq_len = 48, .max_predictions = 8, .seed = 5};
  MaskedLMOptions thrice = once;
  thrice.duplicates = 3;
  const MaskedLMDataset a(f.tok, f.docs, once), b(f.tok, f.docs, thrice);
  ASSERT_EQ(b.sequences(), a.sequences());
  ASSERT_EQ(b.size(), 3 * a.size());
  std::int64_t differing = 0;
  for (std::int64_t i = 0; i < b.size(); ++i) {
    const std::int64_t s = i % a.size();
    const auto x = read_sample(b, i, thrice);
    // The first copy is the dataset without duplicates; every copy holds sequence s.
    if (i < a.size()) {
      EXPECT_EQ(x.input_ids, read_sample(a, i, once).input_ids);
    }
    const auto seq = b.sequence(s);
    for (std::size_t k = 0; k < x.positions.size(); ++k)
      if (x.labels[k] != -100) {
        EXPECT_EQ(x.labels[k], seq[static_cast<std::size_t>(x.positions[k])]);
      }
    differing += i >= a.size() && x.positions != read_sample(b, s, thrice).positions;
  }
  EXPECT_GT(differing, a.size()) << "the copies of a sequence should mostly mask other positions";
  test::expect_error([&] { (void)b.sequence(b.sequences()); }, ErrorKind::InvalidArgument, {"out of range"});
}

TEST(TextMaskedLM, WorksWithTheDataLoader) {
  const auto f = mlm_fixture();
  auto ds = std::make_shared<MaskedLMDataset>(f.tok, f.docs, MaskedLMOptions{.seq_len = 16, .max_predictions = 3});
  data::DataLoader loader(ds, 4, {.shuffle = true, .seed = 1, .threads = 2});
  const auto& batch = loader.next();
  EXPECT_EQ(batch.tensor("input_ids").shape(), (Shape{4, 16}));
  EXPECT_EQ(batch.tensor("attention_mask").dtype(), DType::boolean);
  EXPECT_EQ(batch.tensor("mlm_labels").shape(), (Shape{4, 3}));
}

TEST(TextMaskedLM, OptionsChecked) {
  const auto f = mlm_fixture();
  const auto bad = [&](const MaskedLMOptions& o, const char* what) {
    test::expect_error([&] { (void)MaskedLMDataset(f.tok, f.docs, o); }, ErrorKind::InvalidArgument, {what});
  };
  bad({.seq_len = 2}, "seq_len");
  bad({.seq_len = 8, .max_predictions = 9}, "max_predictions");
  bad({.max_predictions = 0}, "max_predictions");
  bad({.mask_prob = 0.0}, "mask_prob");
  bad({.mask_prob = 1.5}, "mask_prob");
  bad({.duplicates = 0}, "duplicates");
  test::expect_error([&] { (void)MaskedLMDataset(f.tok, {"", "  "}, {}); }, ErrorKind::InvalidArgument, {"no token"});
}

}  // namespace
}  // namespace trainrt

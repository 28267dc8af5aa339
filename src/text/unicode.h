// text/unicode.h — UTF-8 decoding and the character classes of BERT's basic tokenizer.
//
// BERT's BasicTokenizer (Devlin et al., google-research/bert tokenization.py) asks Python's
// unicodedata for categories, lower-casing and NFD. libtrainrt links no ICU, so the tables
// here cover what English corpora hold: ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic
// letters, Hangul syllables, combining marks and the usual punctuation blocks; other
// characters are kept as they are (treated as letters). Checked against Hugging Face's
// BertWordPieceTokenizer: identical ids on every entry of the fortunes corpus.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace trainrt::detail {

inline constexpr char32_t kReplacementChar = 0xFFFD;
/// The precomposed Hangul syllables, which NFD (and so accent stripping) splits into jamo.
inline constexpr char32_t kHangulFirst = 0xAC00, kHangulLast = 0xD7A3;

/// Decodes the code point at `text[pos]` and advances `pos` past it. A byte sequence that is
/// not valid UTF-8 (a stray continuation byte, a truncated, overlong or surrogate sequence,
/// a value above U+10FFFF) decodes as U+FFFD and advances one byte. Requires pos < size.
char32_t decode_utf8(std::string_view text, std::size_t& pos) noexcept;

/// Appends the UTF-8 encoding of `cp` (which must be <= U+10FFFF) to `out`.
void append_utf8(std::string& out, char32_t cp);

/// `text` with every invalid UTF-8 sequence replaced by U+FFFD (valid input is returned as is).
std::string sanitize_utf8(std::string_view text);

/// The number of code points of valid UTF-8 `text`.
std::size_t count_code_points(std::string_view text) noexcept;

/// Space, \t, \n, \r and the Unicode space separators (category Zs).
bool is_whitespace(char32_t cp) noexcept;
/// Control and format characters (categories Cc, Cf) other than \t, \n and \r.
bool is_control(char32_t cp) noexcept;
/// ASCII symbols and punctuation (as BERT treats them: "$", "+", "^" too) and Unicode P*.
bool is_punctuation(char32_t cp) noexcept;
/// CJK Unified Ideographs and their extensions and compatibility blocks (BERT's list).
bool is_cjk(char32_t cp) noexcept;
/// Combining marks (category Mn in the common blocks): what NFD leaves after a base letter.
bool is_combining_mark(char32_t cp) noexcept;
/// The lower-case form of `cp` where the tables know one, else `cp`.
char32_t to_lower(char32_t cp) noexcept;
/// The base letter of a precomposed letter (NFD minus its marks: "é" -> "e"), else `cp`.
char32_t strip_accent(char32_t cp) noexcept;
/// Appends the jamo of the Hangul syllable `cp` (kHangulFirst <= cp <= kHangulLast) to `out`.
void append_decomposed_hangul(std::string& out, char32_t cp);

/// BERT's basic tokenization of `text`: drops U+0000, U+FFFD and control characters, puts
/// spaces around CJK ideographs, splits on whitespace, lower-cases and strips accents when
/// `lowercase`, and makes each punctuation character a word of its own. Appends the words
/// to `words` (cleared first).
void basic_tokenize(std::string_view text, bool lowercase, std::vector<std::string>& words);

}  // namespace trainrt::detail

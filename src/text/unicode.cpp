// text/unicode.cpp — UTF-8 decoding, the character tables and BERT's basic tokenization.
#include "text/unicode.h"

#include <array>

namespace trainrt::detail {

namespace {

struct Range {
  char32_t lo, hi;
};

template <std::size_t N>
bool in_ranges(char32_t cp, const std::array<Range, N>& ranges) noexcept {
  for (const Range& r : ranges)
    if (cp >= r.lo && cp <= r.hi) return true;
  return false;
}

// Base letters of U+00C0..U+00FF and U+0100..U+017F under NFD; '-' where NFD keeps the
// letter whole (Æ, Ø, Ð, Þ, ß, Đ, Ħ, Ł, Œ, ...). Read from the Unicode character database.
constexpr std::string_view kLatin1Base =
    "AAAAAA-CEEEEIIII"   // C0..CF
    "-NOOOOO--UUUUY--"   // D0..DF
    "aaaaaa-ceeeeiiii"   // E0..EF
    "-nooooo--uuuuy-y";  // F0..FF
constexpr std::string_view kLatinABase =
    "AaAaAaCcCcCcCcDd"   // 0100..010F
    "--EeEeEeEeEeGgGg"   // 0110..011F
    "GgGgHh--IiIiIiIi"   // 0120..012F
    "I---JjKk-LlLlLl-"   // 0130..013F
    "---NnNnNn---OoOo"   // 0140..014F
    "Oo--RrRrRrSsSsSs"   // 0150..015F
    "SsTtTt--UuUuUuUu"   // 0160..016F
    "UuUuWwYyYZzZzZz-";  // 0170..017F

}  // namespace

char32_t decode_utf8(std::string_view text, std::size_t& pos) noexcept {
  const auto b0 = static_cast<unsigned char>(text[pos]);
  if (b0 < 0x80) {
    ++pos;
    return b0;
  }
  int len = 0;
  char32_t cp = 0;
  char32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    ++pos;  // a continuation byte or 0xF8..0xFF where a sequence should start
    return kReplacementChar;
  }
  if (pos + static_cast<std::size_t>(len) > text.size()) {
    ++pos;
    return kReplacementChar;
  }
  for (int i = 1; i < len; ++i) {
    const auto b = static_cast<unsigned char>(text[pos + static_cast<std::size_t>(i)]);
    if ((b & 0xC0) != 0x80) {
      ++pos;
      return kReplacementChar;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++pos;
    return kReplacementChar;
  }
  pos += static_cast<std::size_t>(len);
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string sanitize_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t start = pos;
    const char32_t cp = decode_utf8(text, pos);
    if (cp == kReplacementChar && pos == start + 1 && static_cast<unsigned char>(text[start]) >= 0x80)
      append_utf8(out, kReplacementChar);
    else out.append(text.substr(start, pos - start));
  }
  return out;
}

std::size_t count_code_points(std::string_view text) noexcept {
  std::size_t n = 0;
  for (const char c : text) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

bool is_whitespace(char32_t cp) noexcept {
  if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r') return true;
  // U+2028/U+2029 (Zl, Zp) are not Zs, but BERT's str.split() splits on them too.
  return cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

bool is_control(char32_t cp) noexcept {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  static constexpr std::array<Range, 14> kControl{{{0x00, 0x1F},
                                                   {0x7F, 0x9F},
                                                   {0xAD, 0xAD},
                                                   {0x600, 0x605},
                                                   {0x61C, 0x61C},
                                                   {0x6DD, 0x6DD},
                                                   {0x70F, 0x70F},
                                                   {0x180E, 0x180E},
                                                   {0x200B, 0x200F},
                                                   {0x202A, 0x202E},
                                                   {0x2060, 0x2064},
                                                   {0x2066, 0x206F},
                                                   {0xFEFF, 0xFEFF},
                                                   {0xFFF9, 0xFFFB}}};
  return in_ranges(cp, kControl);
}

bool is_punctuation(char32_t cp) noexcept {
  // BERT counts every non-alphanumeric ASCII printable as punctuation.
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126))
    return true;
  static constexpr std::array<Range, 30> kPunct{
      {{0xA1, 0xA1},     {0xA7, 0xA7},     {0xAB, 0xAB},     {0xB6, 0xB7},     {0xBB, 0xBB},     {0xBF, 0xBF},
       {0x37E, 0x37E},   {0x387, 0x387},   {0x55A, 0x55F},   {0x589, 0x58A},   {0x2010, 0x2027}, {0x2030, 0x2043},
       {0x2045, 0x2051}, {0x2053, 0x205E}, {0x207D, 0x207E}, {0x208D, 0x208E}, {0x2308, 0x230B}, {0x2329, 0x232A},
       {0x2E00, 0x2E4F}, {0x3001, 0x3003}, {0x3008, 0x3011}, {0x3014, 0x301F}, {0x3030, 0x3030}, {0x303D, 0x303D},
       {0x30FB, 0x30FB}, {0xFF01, 0xFF03}, {0xFF05, 0xFF0F}, {0xFF1A, 0xFF20}, {0xFF3B, 0xFF3F}, {0xFF5B, 0xFF65}}};
  return in_ranges(cp, kPunct);
}

bool is_cjk(char32_t cp) noexcept {
  static constexpr std::array<Range, 8> kCjk{{{0x4E00, 0x9FFF},
                                              {0x3400, 0x4DBF},
                                              {0x20000, 0x2A6DF},
                                              {0x2A700, 0x2B73F},
                                              {0x2B740, 0x2B81F},
                                              {0x2B820, 0x2CEAF},
                                              {0xF900, 0xFAFF},
                                              {0x2F800, 0x2FA1F}}};
  return in_ranges(cp, kCjk);
}

bool is_combining_mark(char32_t cp) noexcept {
  static constexpr std::array<Range, 5> kMarks{
      {{0x300, 0x36F}, {0x1AB0, 0x1AFF}, {0x1DC0, 0x1DFF}, {0x20D0, 0x20FF}, {0xFE20, 0xFE2F}}};
  return in_ranges(cp, kMarks);
}

char32_t to_lower(char32_t cp) noexcept {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) return cp + 0x20;
  if (cp >= 0x100 && cp <= 0x17F) {
    if (cp == 0x130) return 'i';  // İ: Python lowers it to "i" + U+0307
    if (cp == 0x178) return 0xFF;
    const bool even_upper = (cp <= 0x137) || (cp >= 0x14A && cp <= 0x177);
    const bool odd_upper = (cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E);
    if (even_upper && cp % 2 == 0) return cp + 1;
    if (odd_upper && cp % 2 == 1) return cp + 1;
    return cp;
  }
  if (cp >= 0x1C4 && cp <= 0x1CC) return cp - (cp - 0x1C4) % 3 + 2;  // DŽ Dž dž, LJ Lj lj, NJ Nj nj
  if (cp == 0x1F1 || cp == 0x1F2) return 0x1F3;                      // DZ Dz -> dz
  if (cp == 0x386) return 0x3AC;                                     // Greek capitals with tonos
  if (cp >= 0x388 && cp <= 0x38A) return cp + 0x25;
  if (cp == 0x38C) return 0x3CC;
  if (cp == 0x38E || cp == 0x38F) return cp + 0x3F;
  if (cp >= 0x391 && cp <= 0x3AB && cp != 0x3A2) return cp + 0x20;  // Greek capitals
  if (cp >= 0x410 && cp <= 0x42F) return cp + 0x20;                 // Cyrillic А..Я
  if (cp >= 0x400 && cp <= 0x40F) return cp + 0x50;                 // Ѐ..Џ
  return cp;
}

char32_t strip_accent(char32_t cp) noexcept {
  char base = '-';
  if (cp >= 0xC0 && cp <= 0xFF) base = kLatin1Base[cp - 0xC0];
  else if (cp >= 0x100 && cp <= 0x17F) base = kLatinABase[cp - 0x100];
  if (base != '-') return static_cast<char32_t>(base);
  switch (cp) {                // Greek with tonos or dialytika, Cyrillic with breve or diaeresis (lower case)
    case 0x3AC: return 0x3B1;  // ά
    case 0x3AD: return 0x3B5;  // έ
    case 0x3AE: return 0x3B7;  // ή
    case 0x3AF:
    case 0x390:
    case 0x3CA: return 0x3B9;  // ί ΐ ϊ
    case 0x3CC: return 0x3BF;  // ό
    case 0x3CD:
    case 0x3B0:
    case 0x3CB: return 0x3C5;  // ύ ΰ ϋ
    case 0x3CE: return 0x3C9;  // ώ
    case 0x419: return 0x418;  // Й
    case 0x439:
    case 0x45D: return 0x438;  // й ѝ
    case 0x450:
    case 0x451: return 0x435;  // ѐ ё
    case 0x453: return 0x433;  // ѓ
    case 0x457: return 0x456;  // ї
    case 0x45C: return 0x43A;  // ќ
    case 0x45E: return 0x443;  // ў
    default: return cp;
  }
}

void append_decomposed_hangul(std::string& out, char32_t cp) {
  // Unicode's algorithmic decomposition of a precomposed syllable into its jamo (what NFD
  // gives): leading consonant, vowel, and trailing consonant when there is one.
  const char32_t s = cp - kHangulFirst;
  append_utf8(out, 0x1100 + s / 588);
  append_utf8(out, 0x1161 + (s % 588) / 28);
  if (s % 28 != 0) append_utf8(out, 0x11A7 + s % 28);
}

void basic_tokenize(std::string_view text, bool lowercase, std::vector<std::string>& words) {
  words.clear();
  std::string current;
  const auto flush = [&] {
    if (!current.empty()) words.push_back(std::move(current));
    current.clear();
  };
  std::size_t pos = 0;
  while (pos < text.size()) {
    char32_t cp = decode_utf8(text, pos);
    if (cp == 0 || cp == kReplacementChar || is_control(cp)) continue;
    if (is_whitespace(cp)) {
      flush();
      continue;
    }
    if (lowercase) {
      cp = strip_accent(to_lower(cp));
      if (is_combining_mark(cp)) continue;
      if (cp >= kHangulFirst && cp <= kHangulLast) {
        append_decomposed_hangul(current, cp);
        continue;
      }
    }
    if (is_punctuation(cp) || is_cjk(cp)) {
      flush();
      append_utf8(current, cp);
      flush();
      continue;
    }
    append_utf8(current, cp);
  }
  flush();
}

}  // namespace trainrt::detail

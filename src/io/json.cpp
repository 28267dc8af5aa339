// io/json.cpp — the strict JSON reader of io/json.h: a recursive-descent parser whose depth
// is bounded by JsonLimits::max_depth, so untrusted input cannot exhaust the stack.
#include "io/json.h"

#include <charconv>
#include <unordered_set>

#include "core/error.h"

namespace trainrt::detail {
namespace {

class Parser {
 public:
  Parser(std::string_view text, std::string_view where, const JsonLimits& limits)
      : s_(text), where_(where), limits_(limits) {}

  JsonValue document() {
    skip_space();
    JsonValue v = value(1);
    skip_space();
    if (pos_ != s_.size()) error(pos_, "unexpected bytes after the end of the document");
    return v;
  }

 private:
  [[noreturn]] void error(std::size_t at, const std::string& problem) const {
    fail(ErrorKind::Io, cat(where_, ": JSON header: ", problem, " at byte ", limits_.base_offset + at));
  }

  static std::string describe(char c) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) return cat("'", c, "'");
    return cat("byte 0x", "0123456789abcdef"[u >> 4], "0123456789abcdef"[u & 15]);
  }

  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }

  char peek() const {
    if (pos_ >= s_.size()) error(pos_, "unexpected end of the header");
    return s_[pos_];
  }

  void expect(char c) {
    if (peek() != c) error(pos_, cat("expected '", c, "', found ", describe(s_[pos_])));
    ++pos_;
  }

  JsonValue value(int depth) {
    if (++count_ > limits_.max_values)
      error(pos_, cat("more than ", limits_.max_values, " values (the limit for a header)"));
    JsonValue v;
    v.offset = limits_.base_offset + pos_;
    const char c = peek();
    if (c == '{' || c == '[') {
      if (depth > limits_.max_depth) error(pos_, cat("nesting deeper than ", limits_.max_depth, " levels"));
      if (c == '{') object(v, depth);
      else array(v, depth);
    } else if (c == '"') {
      v.type = JsonValue::Type::string;
      v.text = string();
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      v.type = JsonValue::Type::number;
      v.text = number();
    } else if (literal("true")) {
      v.type = JsonValue::Type::boolean;
      v.boolean = true;
    } else if (literal("false")) {
      v.type = JsonValue::Type::boolean;
    } else if (literal("null")) {
      v.type = JsonValue::Type::null;
    } else {
      error(pos_, cat("expected a value, found ", describe(c)));
    }
    return v;
  }

  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  void object(JsonValue& v, int depth) {
    v.type = JsonValue::Type::object;
    ++pos_;  // '{'
    skip_space();
    if (peek() == '}') {
      ++pos_;
      return;
    }
    std::unordered_set<std::string> keys;  // a linear search would make a wide object quadratic
    for (;;) {
      skip_space();
      const std::size_t key_at = pos_;
      if (peek() != '"') error(pos_, cat("expected a string key, found ", describe(s_[pos_])));
      std::string key = string();
      if (!keys.insert(key).second) error(key_at, cat("duplicate key ", json_quote(key)));
      skip_space();
      expect(':');
      skip_space();
      JsonValue member = value(depth + 1);
      v.members.push_back(JsonMember{std::move(key), std::move(member)});
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      expect('}');
      return;
    }
  }

  void array(JsonValue& v, int depth) {
    v.type = JsonValue::Type::array;
    ++pos_;  // '['
    skip_space();
    if (peek() == ']') {
      ++pos_;
      return;
    }
    for (;;) {
      skip_space();
      v.items.push_back(value(depth + 1));
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      expect(']');
      return;
    }
  }

  std::string number() {
    const std::size_t start = pos_;
    auto digits = [&] {
      const std::size_t from = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      if (pos_ == from) error(pos_, "a number without digits");
    };
    if (s_[pos_] == '-') ++pos_;
    if (pos_ < s_.size() && s_[pos_] == '0') {
      ++pos_;
      if (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') error(start, "a number with a leading zero");
    } else {
      digits();
    }
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      digits();
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      digits();
    }
    return std::string(s_.substr(start, pos_ - start));
  }

  unsigned hex4() {
    if (s_.size() - pos_ < 4) error(pos_, "a \\u escape cut short");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<unsigned>(c - 'A' + 10);
      else error(pos_ - 1, cat("a \\u escape with a non-hex digit ", describe(c)));
    }
    return v;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  }

  std::string string() {
    const std::size_t start = pos_;
    ++pos_;  // '"'
    std::string out;
    for (;;) {
      if (pos_ >= s_.size()) error(start, "a string that is never closed");
      const char c = s_[pos_];
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20)
        error(pos_, cat("a raw control character (", describe(c), ") in a string"));
      if (c != '\\') {
        out.push_back(c);
        ++pos_;
        continue;
      }
      if (++pos_ >= s_.size()) error(start, "a string that is never closed");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          const std::size_t at = pos_ - 2;
          unsigned cp = hex4();
          if (cp >= 0xdc00 && cp <= 0xdfff) error(at, "a lone low surrogate in a \\u escape");
          if (cp >= 0xd800 && cp <= 0xdbff) {
            if (s_.substr(pos_, 2) != "\\u") error(at, "a high surrogate without its low half");
            pos_ += 2;
            const unsigned lo = hex4();
            if (lo < 0xdc00 || lo > 0xdfff) error(at, "a high surrogate without its low half");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          }
          append_utf8(out, cp);
          break;
        }
        default: error(pos_ - 2, cat("an unknown escape \\", describe(e)));
      }
    }
  }

  std::string_view s_;
  std::string_view where_;
  JsonLimits limits_;
  std::size_t pos_ = 0;
  std::size_t count_ = 0;
};

}  // namespace

JsonValue parse_json(std::string_view text, std::string_view where, const JsonLimits& limits) {
  return Parser(text, where, limits).document();
}

bool json_to_u64(const JsonValue& v, std::uint64_t& out) noexcept {
  if (v.type != JsonValue::Type::number || v.text.empty()) return false;
  for (char c : v.text)
    if (c < '0' || c > '9') return false;
  const char* end = v.text.data() + v.text.size();
  const auto [ptr, ec] = std::from_chars(v.text.data(), end, out);
  return ec == std::errc() && ptr == end;
}

std::string json_quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (u < 0x20) {
      out += "\\u00";
      out.push_back("0123456789abcdef"[u >> 4]);
      out.push_back("0123456789abcdef"[u & 15]);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

const char* json_type_name(JsonValue::Type type) noexcept {
  switch (type) {
    case JsonValue::Type::null: return "null";
    case JsonValue::Type::boolean: return "boolean";
    case JsonValue::Type::number: return "number";
    case JsonValue::Type::string: return "string";
    case JsonValue::Type::array: return "array";
    case JsonValue::Type::object: return "object";
  }
  return "value";
}

}  // namespace trainrt::detail

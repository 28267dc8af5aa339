// io/json.h — a small, strict JSON reader and string escaper for file headers (safetensors).
//
// It reads untrusted bytes: every limit is checked (nesting depth, number of values), every
// error is a trainrt::Error (Io) naming the file and the byte offset where the problem is, and
// nothing is trusted from the input. It follows RFC 8259 with these choices:
//  - object keys must be unique (a repeated key is an error naming it): JSON leaves this
//    open, and for a header it always means a damaged or forged file;
//  - numbers keep their literal text; as_u64() converts exact non-negative integers only,
//    so sizes and offsets never pass through a double;
//  - strings are decoded (escapes, \u with surrogate pairs, to UTF-8); raw control
//    characters are rejected; other bytes are kept as they are.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace trainrt::detail {

struct JsonMember;

/// One parsed JSON value with the byte offset where it starts (for error messages).
struct JsonValue {
  enum class Type : std::uint8_t { null, boolean, number, string, array, object };
  Type type = Type::null;
  bool boolean = false;
  std::size_t offset = 0;           ///< of its first byte, counted as JsonLimits::base_offset + index
  std::string text;                 ///< string: the decoded contents; number: the literal as written
  std::vector<JsonValue> items;     ///< array elements, in order
  std::vector<JsonMember> members;  ///< object members, in order
};

/// One member of a JSON object. (A struct, not std::pair: a pair of the still-incomplete
/// JsonValue inside JsonValue is ill-formed, which clang diagnoses.)
struct JsonMember {
  std::string key;
  JsonValue value;
};

/// Bounds on what parse_json() accepts, and how it reports offsets.
struct JsonLimits {
  int max_depth = 32;                 ///< nested arrays/objects (the top level counts as 1)
  std::size_t max_values = 1u << 22;  ///< values in the whole document (bounds memory: ~100 B each)
  std::size_t base_offset = 0;        ///< added to offsets in values and messages (e.g. 8 in a file)
};

/// Parses one JSON document (surrounding whitespace allowed, nothing else after it).
/// Throws trainrt::Error (Io) "<where>: JSON header: <problem> at byte <offset>" for bad
/// syntax, a repeated object key (named), nesting deeper than max_depth or more than
/// max_values values.
JsonValue parse_json(std::string_view text, std::string_view where, const JsonLimits& limits = {});

/// The value of a number that is a non-negative integer literal no larger than 2^64 - 1
/// (no sign, fraction or exponent); false otherwise.
bool json_to_u64(const JsonValue& v, std::uint64_t& out) noexcept;

/// `s` as a JSON string literal, quotes included; control characters, '"' and '\' escaped,
/// other bytes written as they are.
std::string json_quote(std::string_view s);

/// "null", "boolean", "number", "string", "array" or "object".
const char* json_type_name(JsonValue::Type type) noexcept;

}  // namespace trainrt::detail

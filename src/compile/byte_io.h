// compile/byte_io.h — a little-endian byte writer and a bounds-checked reader, for formats
// that must survive damaged input (serialized graphs). Header-only: a few lines each.
#pragma once

#include <bit>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"

namespace trainrt::detail {

/// Appends little-endian fields to a byte string.
class ByteWriter {
 public:
  /// Appends the low `bytes` bytes of `v`, least significant first.
  void uint(std::uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  /// Fixed-size fields: unsigned, two's complement signed, IEEE-754 bits of a double.
  void u8(std::uint64_t v) { uint(v, 1); }
  void u16(std::uint64_t v) { uint(v, 2); }
  void u32(std::uint64_t v) { uint(v, 4); }
  void u64(std::uint64_t v) { uint(v, 8); }
  void i32(std::int32_t v) { u32(static_cast<std::uint32_t>(v)); }
  void i64(std::int64_t v) { u64(static_cast<std::uint64_t>(v)); }
  void f64(double v) { u64(std::bit_cast<std::uint64_t>(v)); }
  /// A list length as u32 (Internal error beyond 2^32 - 1).
  void count(std::size_t n) {
    check_internal(n <= 0xffffffffu, "ByteWriter: a list longer than 2^32 entries");
    u32(n);
  }
  /// Bytes as they are (no length).
  void raw(std::string_view s) { out_.append(s); }
  /// A length (count) followed by the bytes.
  void str(std::string_view s) {
    count(s.size());
    raw(s);
  }
  /// The bytes written; the writer is left empty.
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

/// Reads little-endian fields from bytes, every read bounds-checked: running past the end,
/// an out-of-range enum or a length longer than the bytes left throws Error(Io) naming the
/// reader (`what`) and the byte offset.
class ByteReader {
 public:
  ByteReader(std::string_view bytes, const char* what) : bytes_(bytes), what_(what) {}
  /// The offset of the next byte to read, and how many bytes are left.
  std::size_t pos() const noexcept { return pos_; }
  std::size_t remaining() const noexcept { return bytes_.size() - pos_; }

  /// Throws Io naming the reader, the problem and the byte offset `at`.
  [[noreturn]] void fail_at(std::size_t at, const std::string& message) const {
    fail(ErrorKind::Io, cat(what_, ": ", message, " at byte ", at, " of ", bytes_.size()));
  }
  /// The next `n` bytes (a view into the input); throws Io when fewer are left.
  std::string_view raw(std::size_t n) {
    if (remaining() < n) fail_at(pos_, cat("truncated input: ", n, " bytes needed, ", remaining(), " left"));
    const std::string_view s = bytes_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  /// A little-endian unsigned field of `bytes` bytes; throws Io when truncated.
  std::uint64_t uint(int bytes) {
    const std::string_view s = raw(static_cast<std::size_t>(bytes));
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i)
      v |= std::uint64_t{static_cast<unsigned char>(s[static_cast<std::size_t>(i)])} << (8 * i);
    return v;
  }
  /// Fixed-size fields, as ByteWriter writes them; throw Io when truncated.
  std::uint32_t u32() { return static_cast<std::uint32_t>(uint(4)); }
  std::uint64_t u64() { return uint(8); }
  std::int32_t i32() { return static_cast<std::int32_t>(u32()); }
  std::int64_t i64() { return static_cast<std::int64_t>(u64()); }
  double f64() { return std::bit_cast<double>(u64()); }
  /// An enum stored in `bytes` bytes whose values are 0..count-1; throws Io for another value.
  std::uint64_t enumerator(int bytes, std::uint64_t count, const char* what) {
    const std::size_t at = pos_;
    const std::uint64_t v = uint(bytes);
    if (v >= count) fail_at(at, cat("invalid ", what, " ", v));
    return v;
  }
  /// A bool stored as one byte, 0 or 1 (Io for anything else).
  bool flag(const char* what) { return enumerator(1, 2, what) != 0; }
  /// A list length whose entries take at least `min_bytes` each: checked against the bytes
  /// left, so a damaged length fails here instead of allocating.
  std::size_t count(std::size_t min_bytes, const char* what) {
    const std::size_t at = pos_;
    const std::size_t n = u32();
    if (n * min_bytes > remaining())
      fail_at(at, cat("damaged length: ", n, " ", what, " cannot fit in ", remaining(), " bytes"));
    return n;
  }
  /// A string written by ByteWriter::str (a view into the input).
  std::string_view str(const char* what) { return raw(count(1, what)); }

 private:
  std::string_view bytes_;
  std::size_t pos_ = 0;
  const char* what_;
};

}  // namespace trainrt::detail

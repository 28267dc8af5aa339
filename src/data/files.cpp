// data/files.cpp — whole files in memory, and gzip decompression (moved from idx.cpp so
// that every reader shares them).
#include "data/files.h"

#define ZLIB_CONST  // next_in is a pointer to const: the compressed bytes are never written
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace trainrt::detail {

Bytes read_file_bytes(const std::string& path, const char* who, const char* what) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (status.type() == fs::file_type::not_found) fail(ErrorKind::NotFound, cat(who, ": file not found: '", path, "'"));
  if (status.type() == fs::file_type::directory)
    fail(ErrorKind::Io, cat(who, ": '", path, "' is a directory, not ", what));
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::Io, cat(who, ": cannot open '", path, "': ", errno_message(errno)));
  Bytes bytes;
  // The size is only a hint: reading to the end also works for pipes and growing files.
  const std::uintmax_t size = fs::file_size(path, ec);
  if (!ec && size < (std::uintmax_t{1} << 34)) bytes.reserve(static_cast<std::size_t>(size));
  constexpr std::size_t kChunk = std::size_t{1} << 20;
  for (;;) {
    const std::size_t old = bytes.size();
    bytes.resize(old + kChunk);
    in.read(reinterpret_cast<char*>(bytes.data() + old), static_cast<std::streamsize>(kChunk));
    bytes.resize(old + static_cast<std::size_t>(in.gcount()));
    if (in.bad()) fail(ErrorKind::Io, cat(who, ": error while reading '", path, "': ", errno_message(errno)));
    if (in.eof()) break;
  }
  return bytes;
}

bool is_gzip(const Bytes& bytes) { return bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b; }

namespace {

/// Frees the z_stream however gunzip leaves (return or throw).
struct InflateGuard {  // NOLINT(cppcoreguidelines-special-member-functions): a scope guard, never copied
  z_stream* stream;
  ~InflateGuard() { inflateEnd(stream); }
};

}  // namespace

Bytes gunzip(const Bytes& in, const std::string& path, const char* who) {
  z_stream zs{};
  // 16 + MAX_WBITS: accept the gzip wrapper only (a zlib or raw deflate stream is not a .gz file).
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
    fail(ErrorKind::Io, cat(who, ": '", path, "': cannot start zlib's inflate: ", zs.msg ? zs.msg : "out of memory"));
  InflateGuard guard{&zs};

  // ISIZE, the last four bytes of a member, is the uncompressed size modulo 2^32: a good first
  // allocation for a single-member file. It is untrusted, hence capped by deflate's largest
  // ratio (about 1032:1) and 1 GiB; the buffer grows as needed anyway.
  Bytes out;
  std::size_t hint = std::size_t{1} << 16;
  if (in.size() >= 18) {
    const std::size_t n = in.size();
    const std::size_t isize = std::size_t{in[n - 4]} | std::size_t{in[n - 3]} << 8 | std::size_t{in[n - 2]} << 16 |
                              std::size_t{in[n - 1]} << 24;
    hint = std::max(hint, std::min({isize + 1, in.size() * 1032, std::size_t{1} << 30}));
  }
  out.resize(hint);

  const unsigned char* const end = in.data() + in.size();
  std::size_t produced = 0;
  constexpr std::size_t kMaxAvail = UINT_MAX;  // avail_in/avail_out are 32-bit
  zs.next_in = in.data();
  zs.avail_in = 0;
  for (;;) {
    if (zs.avail_in == 0) {
      zs.avail_in = static_cast<uInt>(std::min<std::size_t>(static_cast<std::size_t>(end - zs.next_in), kMaxAvail));
    }
    if (out.size() - produced < (std::size_t{1} << 16))
      out.resize(std::max(out.size() * 2, produced + (std::size_t{1} << 20)));
    zs.next_out = out.data() + produced;
    zs.avail_out = static_cast<uInt>(std::min(out.size() - produced, kMaxAvail));
    const uInt avail_out_before = zs.avail_out;
    const int ret = inflate(&zs, Z_NO_FLUSH);
    produced += avail_out_before - zs.avail_out;
    const auto left = static_cast<std::size_t>(end - zs.next_in);
    if (ret == Z_STREAM_END) {
      if (left == 0) break;
      if (left >= 2 && zs.next_in[0] == 0x1f && zs.next_in[1] == 0x8b) {  // another member follows
        inflateReset(&zs);
        continue;
      }
      fail(ErrorKind::Io, cat(who, ": '", path, "': trailing garbage: ", left,
                              " bytes after the end of the gzip stream (file has ", in.size(), " bytes)"));
    }
    if (ret == Z_BUF_ERROR && left == 0)
      fail(ErrorKind::Io,
           cat(who, ": '", path, "': corrupt gzip stream: it is truncated (the compressed data ends after ", in.size(),
               " bytes, ", produced, " bytes decompressed, before the end of the stream)"));
    if (ret != Z_OK && ret != Z_BUF_ERROR)
      fail(ErrorKind::Io, cat(who, ": '", path, "': corrupt gzip stream: ", zs.msg ? zs.msg : zError(ret), " (after ",
                              produced, " bytes decompressed)"));
  }
  out.resize(produced);
  return out;
}

}  // namespace trainrt::detail

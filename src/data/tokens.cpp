// data/tokens.cpp — TokenDataset: language-model windows from a raw token file.
//
// A token file is what tokenizer scripts (nanoGPT's prepare.py, llm.c's) write: token ids as
// little-endian uint16 or uint32, back to back, no header. Such files are often larger than
// memory, so windows are read with pread(2) (thread-safe: no shared file position) through a
// small stack buffer, and ids are checked against the vocabulary as they are read. Opening
// checks only what the size tells: whole tokens and at least one window.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "trainrt/data.hpp"

namespace trainrt::data {

using detail::cat;
using detail::fail;

namespace {

std::size_t token_bytes(TokenType type) { return type == TokenType::U16 ? 2 : 4; }
const char* token_name(TokenType type) { return type == TokenType::U16 ? "uint16" : "uint32"; }

/// Closes a descriptor unless released: the constructor may throw after open().
struct FdGuard {  // NOLINT(cppcoreguidelines-special-member-functions): a scope guard, never copied
  int fd;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

TokenDataset::TokenDataset(const std::string& path, const TokenOptions& options) : path_(path), options_(options) {
  const std::string prefix = cat("TokenDataset: '", path, "': ");
  if (options.seq_len <= 0) fail(ErrorKind::InvalidArgument, cat(prefix, "seq_len must be > 0, got ", options.seq_len));
  if (options.vocab_size <= 0)
    fail(ErrorKind::InvalidArgument, cat(prefix, "vocab_size must be > 0, got ", options.vocab_size));
  FdGuard guard{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (guard.fd < 0) {
    const int err = errno;
    if (err == ENOENT) fail(ErrorKind::NotFound, cat("TokenDataset: file not found: '", path, "'"));
    fail(ErrorKind::Io, cat(prefix, "cannot open: ", detail::errno_message(err)));
  }
  struct stat st {};
  if (::fstat(guard.fd, &st) != 0) fail(ErrorKind::Io, cat(prefix, "cannot stat: ", detail::errno_message(errno)));
  if (S_ISDIR(st.st_mode)) fail(ErrorKind::Io, cat(prefix, "is a directory, not a token file"));
  if (!S_ISREG(st.st_mode)) fail(ErrorKind::Io, cat(prefix, "is not a regular file (windows are read at offsets)"));
  const auto size = static_cast<std::int64_t>(st.st_size);
  const auto elem = static_cast<std::int64_t>(token_bytes(options.type));
  if (size % elem != 0)
    fail(ErrorKind::Io, cat(prefix, "truncated or not a ", token_name(options.type), " token file: its size, ", size,
                            " bytes, is not a multiple of ", elem, " bytes (", size / elem, " tokens and ", size % elem,
                            " bytes left over)"));
  tokens_ = size / elem;
  if (tokens_ < options.seq_len + 1)
    fail(ErrorKind::InvalidArgument,
         cat(prefix, "holds ", tokens_, " tokens, fewer than one window needs (seq_len + 1 = ", options.seq_len + 1,
             ": the targets are the inputs shifted by one)"));
  windows_ = (tokens_ - 1) / options.seq_len;
  fd_ = guard.fd;
  guard.fd = -1;
}

TokenDataset::~TokenDataset() {
  if (fd_ >= 0) ::close(fd_);
}

std::vector<Field> TokenDataset::fields() const {
  return {{"input", DType::i64, Shape{options_.seq_len}}, {"target", DType::i64, Shape{options_.seq_len}}};
}

void TokenDataset::read(std::int64_t index, std::span<void* const> out) const {
  auto* input = static_cast<std::int64_t*>(out[0]);
  auto* target = static_cast<std::int64_t*>(out[1]);
  const std::size_t elem = token_bytes(options_.type);
  const std::int64_t first = index * options_.seq_len;  // token index of input[0]
  const std::int64_t count = options_.seq_len + 1;      // input[0..L-1] and the last target
  // 4 KiB keeps a chunk well inside a worker's stack; a window of 1024 uint16 tokens is one read.
  unsigned char buffer[4096];
  const auto per_chunk = static_cast<std::int64_t>(sizeof buffer / elem);
  for (std::int64_t done = 0; done < count;) {
    const std::int64_t n = std::min(per_chunk, count - done);
    const auto offset = static_cast<off_t>((first + done) * static_cast<std::int64_t>(elem));
    std::size_t got = 0;
    const std::size_t want = static_cast<std::size_t>(n) * elem;
    while (got < want) {
      const ssize_t r = ::pread(fd_, buffer + got, want - got, offset + static_cast<off_t>(got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0)
        fail(ErrorKind::Io, cat("TokenDataset: '", path_, "': read error at byte offset ",
                                offset + static_cast<off_t>(got), ": ", detail::errno_message(errno)));
      if (r == 0)
        fail(ErrorKind::Io,
             cat("TokenDataset: '", path_, "': the file ends at byte offset ", offset + static_cast<off_t>(got),
                 " but held ", tokens_, " tokens when it was opened; it changed while in use"));
      got += static_cast<std::size_t>(r);
    }
    for (std::int64_t i = 0; i < n; ++i) {
      const unsigned char* p = buffer + static_cast<std::size_t>(i) * elem;
      // Little-endian by definition of the format, whatever the host's byte order.
      std::uint32_t id = std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8;
      if (elem == 4) id |= std::uint32_t{p[2]} << 16 | std::uint32_t{p[3]} << 24;
      const std::int64_t k = done + i;  // position within the window
      if (id >= static_cast<std::uint64_t>(options_.vocab_size))
        fail(ErrorKind::InvalidArgument,
             cat("TokenDataset: '", path_, "': token id ", id, " at byte offset ",
                 (first + k) * static_cast<std::int64_t>(elem), " (token ", first + k, ", window ", index,
                 ") is out of range: ids must be < vocab_size (", options_.vocab_size, ")"));
      if (k < options_.seq_len) input[k] = id;
      if (k > 0) target[k - 1] = id;
    }
    done += n;
  }
}

}  // namespace trainrt::data

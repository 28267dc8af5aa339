#include "core/error.h"

#include <array>
#include <cstring>

namespace trainrt {

const char* to_string(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::InvalidArgument: return "invalid argument";
    case ErrorKind::ShapeMismatch: return "shape mismatch";
    case ErrorKind::DTypeMismatch: return "dtype mismatch";
    case ErrorKind::NotFound: return "not found";
    case ErrorKind::Io: return "i/o error";
    case ErrorKind::Unsupported: return "unsupported";
    case ErrorKind::Runtime: return "runtime error";
    case ErrorKind::Internal: return "internal error";
  }
  return "error";
}

Error::Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}

namespace detail {

void fail(ErrorKind kind, const std::string& message) { throw Error(kind, message); }

std::string where(const char* file, unsigned line) {
  if (file == nullptr || *file == '\0') return "<unknown>";
  const char* base = std::strrchr(file, '/');
  return cat(base ? base + 1 : file, ":", line);
}

std::string errno_message(int err) {
  std::array<char, 256> buffer{};
  // GNU strerror_r (g++ defines _GNU_SOURCE): returns either a static string or `buffer`.
  return ::strerror_r(err, buffer.data(), buffer.size());
}

std::string where(const std::source_location& loc) { return where(loc.file_name(), loc.line()); }

}  // namespace detail
}  // namespace trainrt

// core/error.h — building trainrt::Error messages inside the library.
#pragma once

#include <source_location>
#include <sstream>
#include <string>

#include "trainrt/errors.hpp"

namespace trainrt::detail {

/// Concatenates anything streamable into a string.
template <class... Args>
std::string cat(const Args&... args) {  // NOLINT(misc-unused-parameters): cat() with no arguments is ""
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

/// Throws trainrt::Error(kind, message).
[[noreturn]] void fail(ErrorKind kind, const std::string& message);

/// The system's text for an errno value ("No such file or directory"). Unlike std::strerror it
/// may be called from several threads at once (the data loader and the kernel compiler do).
/// Never throws beyond std::bad_alloc.
std::string errno_message(int err);

/// "file.cpp:42" of a caller's source location, with the directory part removed.
std::string where(const std::source_location& loc);
std::string where(const char* file, unsigned line);

/// Checks an invariant of libtrainrt itself; a failure is our bug, reported as
/// ErrorKind::Internal with the place it was detected. Never used for user input.
inline void check_internal(bool ok, const char* what, std::source_location loc = std::source_location::current()) {
  if (!ok) [[unlikely]]
    fail(ErrorKind::Internal, cat("internal error (a libtrainrt bug, please report): ", what, " [", where(loc), "]"));
}

}  // namespace trainrt::detail

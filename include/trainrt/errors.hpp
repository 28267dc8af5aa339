// trainrt/errors.hpp — the one exception type libtrainrt throws.
//
// Every failure that reaches the application is a trainrt::Error: bad graphs, bad feeds,
// damaged files and broken internal invariants alike. The message names what was wrong and
// where (op, argument, shapes and dtypes, the caller's file:line). Nothing in the library
// aborts the process.
#pragma once

#include <stdexcept>
#include <string>

namespace trainrt {

/// What kind of failure an Error reports; the message carries the details.
enum class ErrorKind {
  InvalidArgument,  ///< a value the caller passed is out of range or malformed
  ShapeMismatch,    ///< shapes do not fit the op or the feed
  DTypeMismatch,    ///< dtypes do not fit the op or the feed
  NotFound,         ///< a name (feed, parameter, file) that does not exist
  Io,               ///< reading or writing a file failed, or the file is damaged
  Unsupported,      ///< a valid request this build or device cannot serve
  Runtime,          ///< a failure while a step ran (non-finite loss, device error)
  Internal,         ///< a broken invariant inside libtrainrt: a bug to report
};

/// Returns a short lower-case name of `kind` ("shape mismatch", ...).
const char* to_string(ErrorKind kind) noexcept;

/// The exception thrown by every libtrainrt function.
class Error : public std::runtime_error {
 public:
  /// An error of `kind` whose what() is `message` (libtrainrt's messages name the op or
  /// call, the values involved and the caller's file:line).
  Error(ErrorKind kind, const std::string& message);
  /// The category of the failure.
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

}  // namespace trainrt

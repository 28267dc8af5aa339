// metrics/output_file.h — the file handling the metrics writers share: opening (parent
// directories created), writing and flushing with errors that name the file and the system's
// reason, and the wall clock they stamp records with.
#pragma once

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string_view>

namespace trainrt::detail {

/// Closes a std::FILE (ignoring the result: callers flush and check before closing).
struct FileCloser {
  void operator()(std::FILE* f) const noexcept;
};
/// An open std::FILE closed when it goes out of scope.
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

/// Creates `dir` and its missing parents (an existing directory is fine). Throws
/// trainrt::Error (Io) "<who>: cannot create directory '<dir>': <reason>".
void create_directories(const std::filesystem::path& dir, std::string_view who);

/// std::fopen(path, mode) after creating the missing parent directories. Returns nullptr with
/// errno EEXIST only when `mode` holds 'x' and the file exists; throws trainrt::Error (Io)
/// "<who>: cannot open '<path>' for writing: <reason>" for every other failure.
FilePtr open_output(const std::filesystem::path& path, const char* mode, std::string_view who);

/// Writes all of `bytes` to `f` (buffered). Throws trainrt::Error (Io) "<who>: cannot write
/// to '<path>': <reason>" when the stream reports an error.
void write_output(std::FILE* f, std::string_view bytes, const std::filesystem::path& path, std::string_view who);

/// std::fflush(f). Throws trainrt::Error (Io) "<who>: cannot write to '<path>': <reason>".
void flush_output(std::FILE* f, const std::filesystem::path& path, std::string_view who);

/// Seconds since the Unix epoch (std::chrono::system_clock), with sub-second precision.
double unix_time_now() noexcept;

}  // namespace trainrt::detail

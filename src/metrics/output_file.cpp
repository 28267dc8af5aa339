// metrics/output_file.cpp — opening, writing and flushing metrics files with errors that
// say which file and why.
#include "metrics/output_file.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <system_error>

#include "core/error.h"

namespace trainrt::detail {

void FileCloser::operator()(std::FILE* f) const noexcept {
  if (f != nullptr) std::fclose(f);  // NOLINT(cert-err33-c): flushed and checked before by the owner
}

void create_directories(const std::filesystem::path& dir, std::string_view who) {
  if (dir.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail(ErrorKind::Io, cat(who, ": cannot create directory '", dir.string(), "': ", ec.message()));
}

FilePtr open_output(const std::filesystem::path& path, const char* mode, std::string_view who) {
  if (path.empty()) fail(ErrorKind::Io, cat(who, ": cannot open '' for writing: the path is empty"));
  create_directories(path.parent_path(), who);
  errno = 0;
  FilePtr f(std::fopen(path.c_str(), mode));
  if (f) return f;
  const int err = errno;
  if (err == EEXIST && std::strchr(mode, 'x') != nullptr) return nullptr;
  fail(ErrorKind::Io, cat(who, ": cannot open '", path.string(), "' for writing: ", errno_message(err)));
}

void write_output(std::FILE* f, std::string_view bytes, const std::filesystem::path& path, std::string_view who) {
  errno = 0;
  const std::size_t written = std::fwrite(bytes.data(), 1, bytes.size(), f);
  if (written != bytes.size() || std::ferror(f)) {
    const int err = errno;
    std::clearerr(f);
    fail(ErrorKind::Io, cat(who, ": cannot write to '", path.string(),
                            "': ", err != 0 ? errno_message(err) : std::string("short write")));
  }
}

void flush_output(std::FILE* f, const std::filesystem::path& path, std::string_view who) {
  errno = 0;
  if (std::fflush(f) != 0) {
    const int err = errno;
    std::clearerr(f);
    fail(ErrorKind::Io, cat(who, ": cannot write to '", path.string(),
                            "': ", err != 0 ? errno_message(err) : std::string("flush failed")));
  }
}

double unix_time_now() noexcept {
  const auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
  return std::chrono::duration<double>(since_epoch).count();
}

}  // namespace trainrt::detail

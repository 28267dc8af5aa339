// io/safetensors_write.cpp — write_safetensors(): builds the header of io/safetensors.h and
// publishes the file atomically (temporary file in the target's directory, fsync, rename,
// fsync of the directory), so a crash or a failed write never leaves a half checkpoint
// under the target's name and never loses the previous one.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <set>

#include "core/error.h"
#include "core/logging.h"
#include "io/json.h"
#include "io/safetensors.h"

namespace trainrt::detail {
namespace {

namespace fs = std::filesystem;

std::string header_json(const std::vector<std::pair<std::string, const Tensor*>>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  std::string h = "{";
  bool first = true;
  auto comma = [&] {
    if (!first) h += ',';
    first = false;
  };
  if (!metadata.empty()) {
    comma();
    h += "\"__metadata__\":{";
    bool first_meta = true;
    for (const auto& [k, v] : metadata) {
      if (!first_meta) h += ',';
      first_meta = false;
      h += json_quote(k) + ":" + json_quote(v);
    }
    h += '}';
  }
  std::size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    comma();
    h += json_quote(name) + R"(:{"dtype":")" + std::string(safetensors_dtype(t->dtype())) + R"(","shape":[)";
    for (std::int64_t i = 0; i < t->shape().rank(); ++i) h += cat(i ? "," : "", t->shape()[i]);
    h += cat("],\"data_offsets\":[", offset, ",", offset + t->nbytes(), "]}");
    offset += t->nbytes();
  }
  h += '}';
  // Pad with spaces so that the data section starts 8-byte aligned (8 + N is a multiple of 8),
  // as Python's safetensors does: a mapped file then gives aligned f64/i64 data.
  while (h.size() % 8 != 0) h += ' ';
  return h;
}

/// An open temporary file that removes itself unless publish() succeeded.
class TempFile {
 public:
  explicit TempFile(const fs::path& target) : target_(target) {
    static std::atomic<unsigned> counter{0};
    const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
    for (int attempt = 0;; ++attempt) {
      path_ = dir / cat(".", target.filename().string(), ".tmp.", ::getpid(), ".", counter.fetch_add(1));
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd_ >= 0) return;
      if (errno != EEXIST || attempt >= 100) {
        const int err = errno;
        fail(ErrorKind::Io, cat("write_safetensors: cannot create the temporary file ", path_.string(), " for ",
                                target.string(), ": ", errno_message(err)));
      }
    }
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!published_) ::unlink(path_.c_str());
  }

  void write(const void* data, std::size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        io_error("cannot write");
      }
      p += w;
      n -= static_cast<std::size_t>(w);
    }
  }

  /// fsync, close, rename over the target, fsync the directory.
  void publish() {
    if (::fsync(fd_) != 0) io_error("cannot sync");
    const int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) io_error("cannot close");
    if (::rename(path_.c_str(), target_.c_str()) != 0) {
      const int err = errno;
      fail(ErrorKind::Io, cat("write_safetensors: cannot rename ", path_.string(), " to ", target_.string(), ": ",
                              errno_message(err)));
    }
    published_ = true;
    // The new file is in place; syncing the directory makes the rename itself durable. A
    // failure here cannot be undone (the old file is gone), so it is logged, not thrown.
    const fs::path dir = target_.has_parent_path() ? target_.parent_path() : fs::path(".");
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || ::fsync(dfd) != 0)
      log().warn("write_safetensors: {} is written, but its directory could not be synced: {}", target_.string(),
                 errno_message(errno));
    if (dfd >= 0) ::close(dfd);
  }

 private:
  [[noreturn]] void io_error(const char* what) const {
    const int err = errno;
    fail(ErrorKind::Io, cat("write_safetensors: ", what, " ", path_.string(), " (the temporary file for ",
                            target_.string(), "): ", errno_message(err)));
  }

  fs::path target_;
  fs::path path_;
  int fd_ = -1;
  bool published_ = false;
};

}  // namespace

void write_safetensors(const fs::path& path, const std::vector<std::pair<std::string, const Tensor*>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::set<std::string_view> names;
  for (const auto& [name, t] : tensors) {
    if (name.empty() || name == "__metadata__")
      fail(ErrorKind::InvalidArgument,
           cat("write_safetensors(", path.string(), "): the tensor name ", json_quote(name), " is not allowed"));
    if (!names.insert(name).second)
      fail(ErrorKind::InvalidArgument,
           cat("write_safetensors(", path.string(), "): tensor ", json_quote(name), " is given twice"));
    if (t == nullptr || !t->defined())
      fail(ErrorKind::InvalidArgument,
           cat("write_safetensors(", path.string(), "): tensor ", json_quote(name), " is undefined"));
  }
  const std::string header = header_json(tensors, metadata);
  if (header.size() > kMaxSafetensorsHeader)
    fail(ErrorKind::InvalidArgument,
         cat("write_safetensors(", path.string(), "): the header would take ", header.size(),
             " bytes, more than readers accept (", kMaxSafetensorsHeader, ")"));
  unsigned char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>((std::uint64_t{header.size()} >> (8 * i)) & 0xff);

  TempFile tmp(path);
  tmp.write(length, sizeof length);
  tmp.write(header.data(), header.size());
  for (const auto& [name, t] : tensors)
    if (t->nbytes() > 0) tmp.write(t->raw_data(), t->nbytes());
  tmp.publish();
}

}  // namespace trainrt::detail

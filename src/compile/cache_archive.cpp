// compile/cache_archive.cpp — DiskCache::export_archive and import_archive: a whole cache
// directory as one file, to ship compiled kernels with an application that runs where no
// compiler exists (DESIGN decision 2). Format (declared in disk_cache.h): magic "TRTARCHV",
// version u32, entry count u64, then each entry file's bytes (cache_format.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "compile/disk_cache.h"
#include "core/error.h"
#include "core/logging.h"

namespace trainrt::detail {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kArchiveMagic = "TRTARCHV";
constexpr std::uint32_t kArchiveVersion = 1;
constexpr std::size_t kArchiveHeaderBytes = 8 + 4 + 8;

std::string archive_header(std::uint64_t count) {
  std::string out(kArchiveMagic);
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((kArchiveVersion >> (8 * i)) & 0xff));
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((count >> (8 * i)) & 0xff));
  return out;
}

/// Reads an archive from a file descriptor, entry by entry, checking each one; every
/// problem throws trainrt::Error (Io) naming the archive and the entry.
class ArchiveReader {
 public:
  ArchiveReader(int fd, const fs::path& file, std::uint64_t file_bytes)
      : fd_(fd), file_(file), file_bytes_(file_bytes) {}

  /// Checks the archive header and returns the entry count.
  std::uint64_t read_header() {
    std::string head(kArchiveHeaderBytes, '\0');
    if (!read_exact(fd_, head.data(), head.size())) damaged("truncated archive header", errno);
    if (std::string_view(head).substr(0, 8) != kArchiveMagic) damaged("not a trainrt cache archive (bad magic)", 0);
    std::uint32_t version = 0;
    for (int i = 0; i < 4; ++i) version |= std::uint32_t{static_cast<unsigned char>(head[8 + i])} << (8 * i);
    if (version != kArchiveVersion)
      damaged(cat("archive format version ", version, ", this build reads version ", kArchiveVersion), 0);
    std::uint64_t count = 0;
    for (int i = 0; i < 8; ++i) count |= std::uint64_t{static_cast<unsigned char>(head[12 + i])} << (8 * i);
    if (file_bytes_ < kArchiveHeaderBytes) damaged("the file changed while it was read", 0);
    // Every entry takes at least a header: a larger count is damage, not a huge archive.
    if (count > (file_bytes_ - kArchiveHeaderBytes) / kEntryHeaderBytes)
      damaged(cat("claims ", count, " entries, more than its ", file_bytes_, " bytes can hold"), 0);
    offset_ = kArchiveHeaderBytes;
    return count;
  }

  /// Reads and checks entry `index`: its header, then its payload (kept when `keep`).
  EntryHeader read_entry(std::uint64_t index, bool keep, std::string* payload) {
    index_ = index;
    std::string head(kEntryHeaderBytes, '\0');
    if (!read_exact(fd_, head.data(), head.size())) damaged("truncated entry header", errno);
    std::string problem;
    const auto header = decode_entry_header(head, &problem);
    if (!header) damaged(problem, 0);
    offset_ += kEntryHeaderBytes;
    if (header->payload_bytes > file_bytes_ - offset_)
      damaged(cat("truncated: its payload of ", header->payload_bytes, " bytes runs past the end of the file"), 0);
    Sha256 hash;
    std::string chunk;
    std::string* dst = keep ? payload : &chunk;
    std::uint64_t done = 0;
    while (done < header->payload_bytes) {
      const std::size_t n =
          keep ? header->payload_bytes : std::min<std::uint64_t>(header->payload_bytes - done, 1u << 20);
      dst->resize(n);
      if (!read_exact(fd_, dst->data(), n)) damaged("truncated payload", errno);
      hash.update(dst->data(), n);
      done += n;
    }
    offset_ += header->payload_bytes;
    if (hash.finish() != header->checksum) damaged("checksum mismatch: the payload is damaged", 0);
    return *header;
  }

  /// Checks that nothing follows the last entry.
  void expect_end() {
    char extra = 0;
    if (offset_ != file_bytes_ || ::read(fd_, &extra, 1) > 0)
      fail(ErrorKind::Io, cat("kernel cache archive '", file_.string(), "' is damaged: ", file_bytes_ - offset_,
                              " stray bytes after its last entry"));
  }

  /// Rewinds to the first entry.
  void rewind() {
    if (::lseek(fd_, static_cast<off_t>(kArchiveHeaderBytes), SEEK_SET) < 0)
      fail(ErrorKind::Io, cat("cannot seek in kernel cache archive '", file_.string(), "': ", errno_text(errno)));
    offset_ = kArchiveHeaderBytes;
  }

 private:
  [[noreturn]] void damaged(const std::string& problem, int err) const {
    const std::string where_in = offset_ < kArchiveHeaderBytes ? std::string("header") : cat("entry ", index_);
    fail(ErrorKind::Io, cat("kernel cache archive '", file_.string(), "' is damaged at its ", where_in, ": ", problem,
                            err != 0 ? cat(" (", errno_text(err), ")") : std::string()));
  }

  int fd_;
  const fs::path& file_;
  std::uint64_t file_bytes_;
  std::uint64_t offset_ = 0;
  std::uint64_t index_ = 0;
};

}  // namespace

std::size_t DiskCache::export_archive(const fs::path& file) const {
  const fs::path temp = file.parent_path() / temp_file_name(file.filename().string());
  const int raw = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (raw < 0)
    fail(ErrorKind::Io, cat("cannot write kernel cache archive '", file.string(), "': cannot create '", temp.string(),
                            "': ", errno_text(errno)));
  FileDescriptor fd(raw);
  auto give_up = [&](const std::string& what, int err) {
    ::unlink(temp.c_str());
    fail(ErrorKind::Io, cat("cannot write kernel cache archive '", file.string(), "': ", what, ": ", errno_text(err)));
  };
  // The count is written last, once it is known which entries read back valid.
  if (!write_all(fd.get(), archive_header(0))) give_up("write failed", errno);
  std::uint64_t count = 0;
  for (const CacheEntryInfo& info : list(false)) {
    if (!info.valid) continue;
    const EntryRead r = read_entry_file(info.path, {.kind = info.kind, .key = info.key, .read_payload = true});
    if (r.status != EntryRead::Status::ok) {
      if (r.status != EntryRead::Status::missing)
        log().warn("kernel cache: '{}' left out of the archive: {}", info.path.string(), r.problem);
      continue;
    }
    if (!write_all(fd.get(), encode_entry_header(r.header)) || !write_all(fd.get(), r.payload))
      give_up("write failed", errno);
    ++count;
  }
  const std::string head = archive_header(count);
  if (::pwrite(fd.get(), head.data(), head.size(), 0) != static_cast<ssize_t>(head.size()))
    give_up("write failed", errno);
  if (::fsync(fd.get()) != 0) give_up("fsync failed", errno);
  if (!fd.close()) give_up("close failed", errno);
  if (::rename(temp.c_str(), file.c_str()) != 0) give_up(cat("cannot rename '", temp.string(), "'"), errno);
  log().info("kernel cache: exported {} entries from '{}' to '{}'", count, dir_.string(), file.string());
  return static_cast<std::size_t>(count);
}

std::size_t DiskCache::import_archive(const fs::path& file) {
  if (!writable_)
    fail(ErrorKind::Io,
         cat("cannot import '", file.string(), "': the kernel cache directory '", dir_.string(), "' is not writable"));
  const int raw = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (raw < 0) {
    const int err = errno;
    fail(err == ENOENT ? ErrorKind::NotFound : ErrorKind::Io,
         cat("cannot open kernel cache archive '", file.string(), "': ", errno_text(err)));
  }
  FileDescriptor fd(raw);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode))
    fail(ErrorKind::Io, cat("kernel cache archive '", file.string(), "' is not a regular file"));
  const auto file_bytes = static_cast<std::uint64_t>(st.st_size);
  ArchiveReader reader(fd.get(), file, file_bytes);

  // Pass 1 validates everything, so a damaged archive installs nothing; pass 2 reads each
  // entry again (checking it again: the file may change in between) and installs it.
  const std::uint64_t count = reader.read_header();
  for (std::uint64_t i = 0; i < count; ++i) reader.read_entry(i, false, nullptr);
  reader.expect_end();

  reader.rewind();
  std::size_t installed = 0;
  std::string payload;
  for (std::uint64_t i = 0; i < count; ++i) {
    const EntryHeader header = reader.read_entry(i, true, &payload);
    if (kEntryHeaderBytes + payload.size() > cap_) {
      log().warn("kernel cache: archive entry {} ({} bytes) is larger than the cap of '{}' ({} bytes); skipped", i,
                 payload.size(), dir_.string(), cap_);
      continue;
    }
    std::string problem;
    if (!install(header, payload, &problem))
      fail(ErrorKind::Io, cat("cannot import kernel cache archive '", file.string(), "' into '", dir_.string(),
                              "': entry ", i, ": ", problem, " (", installed, " entries were installed before)"));
    ++installed;
  }
  log().info("kernel cache: imported {} entries from '{}' into '{}'", installed, file.string(), dir_.string());
  return installed;
}

}  // namespace trainrt::detail

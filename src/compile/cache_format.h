// compile/cache_format.h — the bytes of one kernel-cache entry on disk, and the file I/O
// that reads one back and publishes one atomically. DiskCache (compile/disk_cache.h) and its
// archive import/export are built on these; nothing else should need them.
//
// An entry file is a 93-byte header followed by the payload. Every number is little-endian,
// written and read field by field (never a struct dump):
//
//   offset  size  field
//        0     8  magic "TRTCACHE"
//        8     4  format version, u32 (kCacheFormatVersion)
//       12     1  kind, u8 (CacheKind)
//       13    32  key (the SHA-256 the entry is stored under)
//       45     8  payload size in bytes, u64
//       53     8  compile_seconds, f64 (IEEE-754 binary64 bits as a u64)
//       61    32  checksum: SHA-256 of the payload
//       93     …  the payload
//
// A file is valid when all of this agrees: the magic and version, the kind and key that the
// file's name promises, the file size (exactly header + payload), a finite non-negative
// compile_seconds, and (when checked) the checksum.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "core/sha256.h"

namespace trainrt::detail {

/// What an entry holds (part of the header; a get() of the wrong kind is a miss).
enum class CacheKind : std::uint8_t { cpu_module = 1, cuda_module = 2, program = 3 };

inline constexpr std::uint32_t kCacheFormatVersion = 1;
inline constexpr std::size_t kEntryHeaderBytes = 93;
inline constexpr std::string_view kEntryMagic = "TRTCACHE";

/// "cpu_module", "cuda_module", "program"; "unknown" for any other value.
const char* kind_name(CacheKind kind) noexcept;
/// The file-name extension of an entry of `kind`, without the dot: "cpu", "cuda", "prog".
const char* kind_extension(CacheKind kind) noexcept;
/// The kind whose extension is `ext` (without the dot), or nullopt.
std::optional<CacheKind> kind_from_extension(std::string_view ext) noexcept;
/// The kind whose name (kind_name) is `name`, or nullopt.
std::optional<CacheKind> kind_from_name(std::string_view name) noexcept;

/// The fields of an entry header.
struct EntryHeader {
  CacheKind kind = CacheKind::cpu_module;
  Digest key;
  std::uint64_t payload_bytes = 0;
  double compile_seconds = 0;
  Digest checksum;  // SHA-256 of the payload
};

/// The 93 header bytes of `h` (magic and kCacheFormatVersion included).
std::string encode_entry_header(const EntryHeader& h);

/// Parses the first kEntryHeaderBytes of `bytes`. nullopt with `*problem` set when the
/// bytes are too few, the magic or version differ, the kind is unknown or compile_seconds is
/// not a finite non-negative number. Never throws.
std::optional<EntryHeader> decode_entry_header(std::string_view bytes, std::string* problem);

/// What reading one entry file found.
struct EntryRead {
  enum class Status { ok, missing, damaged, io_error };
  Status status = Status::missing;
  std::string problem;  // for damaged and io_error: what was wrong
  EntryHeader header;   // valid when the header could be decoded
  std::string payload;  // filled when asked for and status is ok
  std::uint64_t file_bytes = 0;
  dev_t device = 0;  // identity of the file that was read, so that a damaged
  ino_t inode = 0;   // file is removed only if it is still the same file
};

/// What read_entry_file checks and reads.
struct EntryReadOptions {
  std::optional<CacheKind> kind;  // the kind the file must hold
  std::optional<Digest> key;      // the key the file must hold
  bool read_payload = false;      // read the payload into EntryRead::payload
  bool verify_checksum = false;   // hash the payload (implied by read_payload)
};

/// Opens `path` and checks it as described at the top of this file. A file that does not
/// exist is Status::missing; an open or read failure other than that is Status::io_error.
/// Never throws (beyond std::bad_alloc).
EntryRead read_entry_file(const std::filesystem::path& path, const EntryReadOptions& options);

/// Removes `path` only if it is still the file described by (device, inode): a concurrent
/// writer may have renamed a good entry over the damaged one since it was read. Returns true
/// when a file was removed.
bool remove_if_same_file(const std::filesystem::path& path, dev_t device, ino_t inode) noexcept;

/// Writes `header_bytes` then `payload` into a fresh temporary file in the directory of
/// `final_path` (named by temp_file_name), flushes it to the device (fsync) and renames it
/// over `final_path`, so that a reader sees the old file or the new one, never part of one.
/// The directory itself is not fsync'd: after a power failure a just-published entry may be
/// missing (a later miss), never partly written. On failure removes the temporary file and returns false with
/// `*problem` set. Never throws (beyond std::bad_alloc).
bool publish_file(const std::filesystem::path& final_path, std::string_view header_bytes, std::string_view payload,
                  std::string* problem);

/// A temporary-file name for publishing `final_name`: ".tmp-<final_name>-<pid>-<counter>",
/// unique within this host across threads and processes.
std::string temp_file_name(std::string_view final_name);
/// True for names made by temp_file_name (they start with ".tmp-").
bool is_temp_file_name(std::string_view name) noexcept;

/// Owns a POSIX file descriptor and closes it when it goes out of scope.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) noexcept : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const noexcept { return fd_; }
  /// Closes now and reports close()'s result (a delayed write error shows up here).
  bool close() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return ::close(fd) == 0;
  }

 private:
  int fd_;
};

/// Reads exactly `size` bytes, retrying short reads. False on an error (errno set) or an
/// early end of file (errno 0).
bool read_exact(int fd, void* data, std::size_t size) noexcept;
/// Writes all of `data`, retrying short writes; false on an error (errno set).
bool write_all(int fd, std::string_view data) noexcept;
/// errno_message(err) (thread-safe strerror), or "unexpected end of file" for 0 (as read_exact reports it).
std::string errno_text(int err);

/// Parses a byte count: digits with an optional suffix K, M, G or T (powers of 1024, either
/// case, an optional trailing "B" or "iB": "500M", "2G", "1.5GiB", "4096"). nullopt for
/// anything else, including overflow. Never throws.
std::optional<std::uint64_t> parse_byte_size(std::string_view text) noexcept;
/// "812 B", "3.4 KiB", "1.2 MiB", "2.0 GiB".
std::string format_bytes(std::uint64_t bytes);

}  // namespace trainrt::detail

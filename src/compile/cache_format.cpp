// compile/cache_format.cpp — encoding, reading and atomically publishing kernel-cache entry
// files (format described in cache_format.h). POSIX file descriptors are used directly: we
// need fsync before the rename and the file's identity (device, inode) after a read.
#include "compile/cache_format.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>

#include "core/error.h"

namespace trainrt::detail {
namespace {

void put_le(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint64_t get_le(std::string_view in, std::size_t offset, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= std::uint64_t{static_cast<unsigned char>(in[offset + i])} << (8 * i);
  return v;
}

Digest get_digest(std::string_view in, std::size_t offset) {
  Digest d;
  std::memcpy(d.bytes.data(), in.data() + offset, d.bytes.size());
  return d;
}

EntryRead damaged(EntryRead r, std::string problem) {
  r.status = EntryRead::Status::damaged;
  r.problem = std::move(problem);
  return r;
}

/// Per-process random bits in temporary names: two hosts sharing a directory over a network
/// file system may run processes with the same pid.
std::uint64_t process_nonce() {
  static const std::uint64_t nonce = [] {
    std::random_device rd;
    return (std::uint64_t{rd()} << 32) ^ rd();
  }();
  return nonce;
}

}  // namespace

bool read_exact(int fd, void* data, std::size_t size) noexcept {
  auto* p = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t n = ::read(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = 0;
      return false;
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

bool write_all(int fd, std::string_view data) noexcept {
  const char* p = data.data();
  std::size_t size = data.size();
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

std::string errno_text(int err) { return err == 0 ? std::string("unexpected end of file") : errno_message(err); }

const char* kind_name(CacheKind kind) noexcept {
  switch (kind) {
    case CacheKind::cpu_module: return "cpu_module";
    case CacheKind::cuda_module: return "cuda_module";
    case CacheKind::program: return "program";
  }
  return "unknown";
}

const char* kind_extension(CacheKind kind) noexcept {
  switch (kind) {
    case CacheKind::cpu_module: return "cpu";
    case CacheKind::cuda_module: return "cuda";
    case CacheKind::program: return "prog";
  }
  return "unknown";
}

std::optional<CacheKind> kind_from_extension(std::string_view ext) noexcept {
  for (CacheKind k : {CacheKind::cpu_module, CacheKind::cuda_module, CacheKind::program})
    if (ext == kind_extension(k)) return k;
  return std::nullopt;
}

std::optional<CacheKind> kind_from_name(std::string_view name) noexcept {
  for (CacheKind k : {CacheKind::cpu_module, CacheKind::cuda_module, CacheKind::program})
    if (name == kind_name(k)) return k;
  return std::nullopt;
}

std::string encode_entry_header(const EntryHeader& h) {
  std::string out;
  out.reserve(kEntryHeaderBytes);
  out.append(kEntryMagic);
  put_le(out, kCacheFormatVersion, 4);
  put_le(out, static_cast<std::uint8_t>(h.kind), 1);
  out.append(reinterpret_cast<const char*>(h.key.bytes.data()), h.key.bytes.size());
  put_le(out, h.payload_bytes, 8);
  put_le(out, std::bit_cast<std::uint64_t>(h.compile_seconds), 8);
  out.append(reinterpret_cast<const char*>(h.checksum.bytes.data()), h.checksum.bytes.size());
  check_internal(out.size() == kEntryHeaderBytes, "entry header size");
  return out;
}

std::optional<EntryHeader> decode_entry_header(std::string_view bytes, std::string* problem) {
  auto bad = [&](std::string what) -> std::optional<EntryHeader> {
    if (problem) *problem = std::move(what);
    return std::nullopt;
  };
  if (bytes.size() < kEntryHeaderBytes) return bad(cat("truncated header (", bytes.size(), " bytes)"));
  if (bytes.substr(0, kEntryMagic.size()) != kEntryMagic) return bad("not a trainrt cache entry (bad magic)");
  const auto version = static_cast<std::uint32_t>(get_le(bytes, 8, 4));
  if (version != kCacheFormatVersion)
    return bad(cat("format version ", version, ", this build reads version ", kCacheFormatVersion));
  EntryHeader h;
  const auto kind = static_cast<std::uint8_t>(get_le(bytes, 12, 1));
  if (kind < 1 || kind > 3) return bad(cat("unknown kind ", unsigned{kind}));
  h.kind = static_cast<CacheKind>(kind);
  h.key = get_digest(bytes, 13);
  h.payload_bytes = get_le(bytes, 45, 8);
  h.compile_seconds = std::bit_cast<double>(get_le(bytes, 53, 8));
  if (!std::isfinite(h.compile_seconds) || h.compile_seconds < 0)
    return bad(cat("bad compile_seconds ", h.compile_seconds));
  h.checksum = get_digest(bytes, 61);
  return h;
}

EntryRead read_entry_file(const std::filesystem::path& path, const EntryReadOptions& options) {
  EntryRead r;
  const int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (raw < 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) return r;  // Status::missing
    r.status = EntryRead::Status::io_error;
    r.problem = cat("cannot open: ", errno_text(err));
    return r;
  }
  FileDescriptor fd(raw);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    r.status = EntryRead::Status::io_error;
    r.problem = cat("cannot stat: ", errno_text(errno));
    return r;
  }
  r.device = st.st_dev;
  r.inode = st.st_ino;
  r.file_bytes = static_cast<std::uint64_t>(st.st_size);
  if (!S_ISREG(st.st_mode)) return damaged(std::move(r), "not a regular file");
  if (r.file_bytes == 0) return damaged(std::move(r), "zero-length file");
  if (r.file_bytes < kEntryHeaderBytes) {
    // The message first: an argument's order of evaluation is unspecified, so reading r.file_bytes
    // next to std::move(r) would read a moved-from object.
    std::string problem = cat("truncated: ", r.file_bytes, " bytes, shorter than the header");
    return damaged(std::move(r), std::move(problem));
  }

  std::string head(kEntryHeaderBytes, '\0');
  if (!read_exact(fd.get(), head.data(), head.size())) {
    const int err = errno;
    if (err == 0) return damaged(std::move(r), "truncated while reading the header");
    r.status = EntryRead::Status::io_error;
    r.problem = cat("read failed: ", errno_text(err));
    return r;
  }
  std::string problem;
  const auto header = decode_entry_header(head, &problem);
  if (!header) return damaged(std::move(r), problem);
  r.header = *header;
  if (options.kind && header->kind != *options.kind)
    return damaged(std::move(r),
                   cat("holds a ", kind_name(header->kind), " entry, its name says ", kind_name(*options.kind)));
  if (options.key && header->key != *options.key)
    return damaged(std::move(r), cat("holds key ", header->key.hex(), ", its name says ", options.key->hex()));
  const std::uint64_t body = r.file_bytes - kEntryHeaderBytes;
  if (body < header->payload_bytes)
    return damaged(std::move(r), cat("truncated: ", body, " of ", header->payload_bytes, " payload bytes"));
  if (body > header->payload_bytes)
    return damaged(std::move(r), cat(body - header->payload_bytes, " stray bytes after the payload"));

  if (options.read_payload || options.verify_checksum) {
    Sha256 hash;
    std::string chunk;
    if (options.read_payload) r.payload.resize(header->payload_bytes);
    std::uint64_t done = 0;
    while (done < header->payload_bytes) {
      // The whole payload at once when it is kept; 1 MiB pieces when it is only hashed.
      const std::size_t n = options.read_payload ? header->payload_bytes
                                                 : std::min<std::uint64_t>(header->payload_bytes - done, 1u << 20);
      char* dst = options.read_payload ? r.payload.data() : (chunk.resize(n), chunk.data());
      if (!read_exact(fd.get(), dst, n)) {
        const int err = errno;
        if (err == 0) return damaged(std::move(r), "truncated while reading the payload");
        r.status = EntryRead::Status::io_error;
        r.problem = cat("read failed: ", errno_text(err));
        return r;
      }
      hash.update(dst, n);
      done += n;
    }
    if (hash.finish() != header->checksum) {
      r.payload.clear();
      return damaged(std::move(r), "checksum mismatch: the payload is damaged");
    }
  }
  r.status = EntryRead::Status::ok;
  return r;
}

bool remove_if_same_file(const std::filesystem::path& path, dev_t device, ino_t inode) noexcept {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return false;
  if (st.st_dev != device || st.st_ino != inode) return false;
  return ::unlink(path.c_str()) == 0;
}

std::string temp_file_name(std::string_view final_name) {
  static std::atomic<std::uint64_t> counter{0};
  char tail[64];
  std::snprintf(tail, sizeof tail, "-%ld-%llx-%llu", static_cast<long>(::getpid()),
                static_cast<unsigned long long>(process_nonce()),
                static_cast<unsigned long long>(counter.fetch_add(1, std::memory_order_relaxed)));
  return cat(".tmp-", final_name, tail);
}

bool is_temp_file_name(std::string_view name) noexcept { return name.starts_with(".tmp-"); }

bool publish_file(const std::filesystem::path& final_path, std::string_view header_bytes, std::string_view payload,
                  std::string* problem) {
  const std::filesystem::path temp = final_path.parent_path() / temp_file_name(final_path.filename().string());
  auto fail_with = [&](const char* step, int err) {
    if (problem) *problem = cat(step, " ", temp.string(), ": ", errno_text(err));
    ::unlink(temp.c_str());
    return false;
  };
  const int raw = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (raw < 0) {
    if (problem) *problem = cat("cannot create ", temp.string(), ": ", errno_text(errno));
    return false;
  }
  FileDescriptor fd(raw);
  if (!write_all(fd.get(), header_bytes) || !write_all(fd.get(), payload)) return fail_with("cannot write", errno);
  // Flush the data before the rename makes it visible: after a crash the final name holds
  // the old file or the complete new one, never a file whose blocks were not yet written.
  if (::fsync(fd.get()) != 0) return fail_with("cannot fsync", errno);
  if (!fd.close()) return fail_with("cannot close", errno);
  if (::rename(temp.c_str(), final_path.c_str()) != 0) {
    const int err = errno;
    if (problem) *problem = cat("cannot rename ", temp.string(), " to ", final_path.string(), ": ", errno_text(err));
    ::unlink(temp.c_str());
    return false;
  }
  return true;
}

std::optional<std::uint64_t> parse_byte_size(std::string_view text) noexcept {
  std::size_t i = 0;
  while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
  const std::string_view number = text.substr(0, i);
  const std::string_view suffix = text.substr(i);
  if (number.empty() || number.front() == '.' || number.back() == '.') return std::nullopt;
  // Suffix: none, "B", or K/M/G/T (either case) optionally followed by "B" or "iB".
  int power = 0;
  if (!suffix.empty() && suffix != "B" && suffix != "b") {
    static constexpr std::string_view kLetters = "kmgt";
    const char letter = static_cast<char>(suffix.front() | 0x20);  // ASCII lower case
    const std::size_t at = kLetters.find(letter);
    if (at == std::string_view::npos) return std::nullopt;
    power = static_cast<int>(at) + 1;
    const std::string_view rest = suffix.substr(1);
    if (!rest.empty() && rest != "B" && rest != "b" && rest != "iB" && rest != "ib") return std::nullopt;
  }
  const std::uint64_t multiplier = std::uint64_t{1} << (10 * power);
  if (number.find('.') == std::string_view::npos) {
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), v);
    if (ec != std::errc() || end != number.data() + number.size()) return std::nullopt;
    if (v > UINT64_MAX / multiplier) return std::nullopt;
    return v * multiplier;
  }
  if (number.find('.') != number.rfind('.')) return std::nullopt;
  double v = 0;
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), v);
  if (ec != std::errc() || end != number.data() + number.size()) return std::nullopt;
  const double bytes = v * static_cast<double>(multiplier);
  if (!(bytes < 18446744073709551616.0)) return std::nullopt;  // 2^64
  return static_cast<std::uint64_t>(bytes);
}

std::string format_bytes(std::uint64_t bytes) {
  if (bytes < 1024) return cat(bytes, " B");
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes) / 1024;
  int unit = 0;
  while (v >= 1024 && unit < 5) {
    v /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[unit]);
  return buf;
}

}  // namespace trainrt::detail

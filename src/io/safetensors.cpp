// io/safetensors.cpp — parse_safetensors() (the strict header validation of io/safetensors.h)
// and SafetensorsFile, the memory-mapped reader. The writer is io/safetensors_write.cpp.
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "io/json.h"

namespace trainrt::detail {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; a big-endian host would need byte swapping");

namespace {

using Type = JsonValue::Type;

struct DTypeCode {
  std::string_view code;
  DType dtype;
};
constexpr DTypeCode kDTypes[] = {{"F32", DType::f32},     {"F64", DType::f64}, {"F16", DType::f16},
                                 {"BF16", DType::bf16},   {"I32", DType::i32}, {"I64", DType::i64},
                                 {"BOOL", DType::boolean}};

// Codes of the format that trainrt has no DType for (as of safetensors 0.6): valid files, but
// Unsupported here rather than damaged.
constexpr std::string_view kForeignDTypes[] = {"U8",      "I8",      "I16",     "U16",     "U32", "U64", "F8_E4M3",
                                               "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4",  "C64"};

/// Reads the fields of one tensor entry; every message names the file and the tensor.
class EntryReader {
 public:
  EntryReader(std::string_view where, const std::string& name, const JsonValue& v)
      : where_(where), name_(name), v_(v) {}

  [[noreturn]] void error(ErrorKind kind, std::size_t at, const std::string& problem) const {
    fail(kind, cat(where_, ": tensor ", json_quote(name_), " (header byte ", at, "): ", problem));
  }

  SafetensorsEntry read(std::size_t data_size) {
    if (name_.empty()) error(ErrorKind::Io, v_.offset, "an empty tensor name");
    if (v_.type != Type::object)
      error(ErrorKind::Io, v_.offset, cat("expected an object, found: ", json_type_name(v_.type)));
    const JsonValue *dtype = nullptr, *shape = nullptr, *offsets = nullptr;
    for (const auto& [key, value] : v_.members) {
      if (key == "dtype") dtype = &value;
      else if (key == "shape") shape = &value;
      else if (key == "data_offsets") offsets = &value;
      else
        error(ErrorKind::Io, value.offset,
              cat("unknown key ", json_quote(key), " (expected dtype, shape, data_offsets)"));
    }
    if (!dtype || !shape || !offsets)
      error(ErrorKind::Io, v_.offset, cat("missing key '", !dtype ? "dtype" : !shape ? "shape" : "data_offsets", "'"));
    SafetensorsEntry e;
    e.name = name_;
    e.dtype = read_dtype(*dtype);
    const std::uint64_t numel = read_shape(*shape, e.shape);
    std::uint64_t nbytes = 0;
    if (__builtin_mul_overflow(numel, std::uint64_t{size_of(e.dtype)}, &nbytes))
      error(ErrorKind::Io, shape->offset,
            cat("shape ", e.shape.to_string(), " is too large (its byte size overflows)"));
    read_offsets(*offsets, e, nbytes, data_size);
    return e;
  }

 private:
  DType read_dtype(const JsonValue& v) const {
    if (v.type != Type::string)
      error(ErrorKind::Io, v.offset, cat("dtype is a ", json_type_name(v.type), ", expected a string"));
    for (const DTypeCode& c : kDTypes)
      if (v.text == c.code) return c.dtype;
    for (std::string_view c : kForeignDTypes)
      if (v.text == c)
        error(ErrorKind::Unsupported, v.offset,
              cat("dtype ", c, " is not supported (trainrt reads F32, F64, F16, BF16, I32, I64 and BOOL)"));
    error(ErrorKind::Io, v.offset, cat("unknown dtype ", json_quote(v.text)));
  }

  // Fills `shape` and returns the element count (overflow-checked, at most INT64_MAX).
  std::uint64_t read_shape(const JsonValue& v, Shape& shape) const {
    if (v.type != Type::array)
      error(ErrorKind::Io, v.offset, cat("shape is a ", json_type_name(v.type), ", expected an array"));
    std::vector<std::int64_t> dims;
    std::uint64_t numel = 1;
    constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    for (const JsonValue& d : v.items) {
      std::uint64_t n = 0;
      if (!json_to_u64(d, n) || n > kMax)
        error(ErrorKind::Io, d.offset,
              cat("shape dimension ", dims.size(),
                  " is not an integer in [0, 2^63): ", d.type == Type::number ? d.text : json_type_name(d.type)));
      if (__builtin_mul_overflow(numel, n, &numel) || numel > kMax)
        error(ErrorKind::Io, v.offset, "the shape's element count overflows");
      dims.push_back(static_cast<std::int64_t>(n));
    }
    shape = Shape(std::move(dims));
    return numel;
  }

  void read_offsets(const JsonValue& v, SafetensorsEntry& e, std::uint64_t nbytes, std::size_t data_size) const {
    if (v.type != Type::array || v.items.size() != 2)
      error(ErrorKind::Io, v.offset, "data_offsets is not an array of two integers");
    std::uint64_t b = 0, end = 0;
    if (!json_to_u64(v.items[0], b) || !json_to_u64(v.items[1], end))
      error(ErrorKind::Io, v.offset, "data_offsets is not an array of two non-negative integers");
    if (b > end) error(ErrorKind::Io, v.offset, cat("data_offsets [", b, ", ", end, "] end before they begin"));
    if (end > data_size)
      error(ErrorKind::Io, v.offset,
            cat("data_offsets [", b, ", ", end, "] run past the end of the data section (", data_size,
                " bytes): the file is truncated or damaged"));
    if (end - b != nbytes)
      error(ErrorKind::Io, v.offset,
            cat("data_offsets [", b, ", ", end, "] hold ", end - b, " bytes, but ", safetensors_dtype(e.dtype),
                e.shape.to_string(), " needs ", nbytes));
    e.begin = static_cast<std::size_t>(b);
    e.end = static_cast<std::size_t>(end);
  }

  std::string_view where_;
  const std::string& name_;
  const JsonValue& v_;
};

void read_metadata(std::string_view where, const JsonValue& v, std::map<std::string, std::string>& out) {
  if (v.type != Type::object)
    fail(ErrorKind::Io, cat(where, ": __metadata__ (header byte ", v.offset, ") is a ", json_type_name(v.type),
                            ", expected an object of strings"));
  for (const auto& [key, value] : v.members) {
    if (value.type != Type::string)
      fail(ErrorKind::Io, cat(where, ": __metadata__ ", json_quote(key), " (header byte ", value.offset, ") is a ",
                              json_type_name(value.type), ", expected a string"));
    out.emplace(key, value.text);
  }
}

// The tensors must tile the data section exactly (see the header): sorted by offset, each
// starts where the previous ended, and the last ends at the end of the file.
void check_layout(std::string_view where, const std::vector<SafetensorsEntry>& tensors, std::size_t data_offset,
                  std::size_t data_size) {
  std::vector<const SafetensorsEntry*> order;
  order.reserve(tensors.size());
  for (const SafetensorsEntry& e : tensors) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const SafetensorsEntry* a, const SafetensorsEntry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::size_t at = 0;
  const SafetensorsEntry* prev = nullptr;
  for (const SafetensorsEntry* e : order) {
    if (e->begin < at)
      fail(ErrorKind::Io,
           cat(where, ": tensor ", json_quote(e->name), " (data bytes [", e->begin, ", ", e->end, "]) overlaps tensor ",
               json_quote(prev->name), " (data bytes [", prev->begin, ", ", prev->end, "])"));
    if (e->begin > at)
      fail(ErrorKind::Io, cat(where, ": data bytes [", at, ", ", e->begin, ") (file byte ", data_offset + at,
                              ") belong to no tensor; the next tensor is ", json_quote(e->name)));
    at = e->end;
    prev = e;
  }
  if (at != data_size)
    fail(ErrorKind::Io,
         cat(where, ": the data section has ", data_size, " bytes but the tensors end at ", at, " (file byte ",
             data_offset + at, "): ", data_size - at, " trailing bytes belong to no tensor"));
}

}  // namespace

std::string_view safetensors_dtype(DType dtype) noexcept {
  for (const DTypeCode& c : kDTypes)
    if (c.dtype == dtype) return c.code;
  return "?";
}

SafetensorsIndex parse_safetensors(std::span<const std::byte> file, std::string_view where) {
  if (file.size() < 8)
    fail(ErrorKind::Io, cat(where, ": truncated safetensors file: ", file.size(),
                            " bytes, fewer than the 8-byte header length at byte 0"));
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | std::to_integer<std::uint64_t>(file[static_cast<std::size_t>(i)]);
  if (n > kMaxSafetensorsHeader)
    fail(ErrorKind::Io, cat(where, ": the header length at byte 0 is ", n, " bytes, more than the limit of ",
                            kMaxSafetensorsHeader, " (not a safetensors file, or damaged)"));
  if (n > file.size() - 8)
    fail(ErrorKind::Io, cat(where, ": the header length at byte 0 is ", n, " bytes, beyond the end of the file (",
                            file.size(), " bytes): truncated, or not a safetensors file"));
  const std::string_view header(reinterpret_cast<const char*>(file.data()) + 8, static_cast<std::size_t>(n));
  if (header.empty() || header.front() != '{')
    fail(ErrorKind::Io,
         cat(where, ": the header at byte 8 does not start with '{' (not a safetensors file, or damaged)"));
  // Depth 3 is what the format needs (object, tensor entry, shape); a little more gives
  // "expected an array"-style messages instead of depth errors for slightly wrong headers.
  const JsonValue root =
      parse_json(header, where, {.max_depth = 8, .max_values = std::size_t{1} << 22, .base_offset = 8});
  if (root.type != Type::object)
    fail(ErrorKind::Io,
         cat(where, ": the header at byte 8 is a JSON ", json_type_name(root.type), ", expected an object"));

  SafetensorsIndex index;
  index.data_offset = 8 + static_cast<std::size_t>(n);
  const std::size_t data_size = file.size() - index.data_offset;
  index.tensors.reserve(root.members.size());
  for (const auto& [name, value] : root.members) {
    if (name == "__metadata__") read_metadata(where, value, index.metadata);
    else index.tensors.push_back(EntryReader(where, name, value).read(data_size));
  }
  check_layout(where, index.tensors, index.data_offset, data_size);
  return index;
}

// ---- SafetensorsFile ---------------------------------------------------------------------

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : where_(path.string()) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    fail(err == ENOENT ? ErrorKind::NotFound : ErrorKind::Io, cat(where_, ": cannot open: ", errno_message(err)));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    const int err = errno;
    ::close(fd);
    fail(ErrorKind::Io, cat(where_, ": cannot read: ", S_ISDIR(st.st_mode) ? "it is a directory" : errno_message(err)));
  }
  size_ = static_cast<std::size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      fail(ErrorKind::Io, cat(where_, ": cannot map ", size_, " bytes: ", errno_message(err)));
    }
    map_ = p;
  }
  ::close(fd);  // the mapping keeps the file
  try {
    index_ = parse_safetensors({static_cast<const std::byte*>(map_), size_}, where_);
  } catch (...) {
    release();
    throw;
  }
  for (std::size_t i = 0; i < index_.tensors.size(); ++i) by_name_.emplace(index_.tensors[i].name, i);
}

SafetensorsFile::~SafetensorsFile() { release(); }

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept
    : where_(std::move(other.where_)),
      map_(std::exchange(other.map_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      index_(std::move(other.index_)),
      by_name_(std::move(other.by_name_)) {}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& other) noexcept {
  if (this != &other) {
    release();
    where_ = std::move(other.where_);
    map_ = std::exchange(other.map_, nullptr);
    size_ = std::exchange(other.size_, 0);
    index_ = std::move(other.index_);
    by_name_ = std::move(other.by_name_);
  }
  return *this;
}

void SafetensorsFile::release() noexcept {
  if (map_) ::munmap(map_, size_);
  map_ = nullptr;
  size_ = 0;
}

const SafetensorsEntry* SafetensorsFile::find(std::string_view name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &index_.tensors[it->second];
}

std::span<const std::byte> SafetensorsFile::bytes(const SafetensorsEntry& entry) const {
  check_internal(index_.data_offset + entry.end <= size_, "SafetensorsFile::bytes: an entry outside the file");
  return {static_cast<const std::byte*>(map_) + index_.data_offset + entry.begin, entry.end - entry.begin};
}

Tensor SafetensorsFile::read(const SafetensorsEntry& entry) const {
  const std::span<const std::byte> src = bytes(entry);
  if (entry.dtype == DType::boolean)
    for (std::size_t i = 0; i < src.size(); ++i)
      if (std::to_integer<unsigned>(src[i]) > 1)
        fail(ErrorKind::Io, cat(where_, ": tensor ", json_quote(entry.name), ": BOOL element ", i, " is ",
                                std::to_integer<unsigned>(src[i]), ", not 0 or 1 (file byte ",
                                index_.data_offset + entry.begin + i, ")"));
  Tensor t = Tensor::empty(entry.shape, entry.dtype);
  if (!src.empty()) std::memcpy(t.raw_data(), src.data(), src.size());
  return t;
}

}  // namespace trainrt::detail

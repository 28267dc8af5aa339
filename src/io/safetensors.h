// io/safetensors.h — the safetensors file format: a strict parser, an atomic writer and a
// memory-mapped reader.
//
// The format (https://github.com/huggingface/safetensors), as read and written here:
//   bytes [0, 8)        N, the header length, unsigned 64-bit little-endian;
//   bytes [8, 8 + N)    a JSON object (UTF-8), optionally padded with trailing spaces:
//                         {"__metadata__": {"key": "value", ...},            (optional)
//                          "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]}, ...}
//   bytes [8 + N, end)  the data section; tensor `name` is its bytes [b, e), dense row-major,
//                       little-endian.
// Choices, all checked by parse_safetensors() on untrusted input:
//  - N is at most kMaxSafetensorsHeader (100 MiB) and must fit in the file; the header starts
//    with '{'; the JSON is parsed by io/json.h with depth and value-count limits;
//  - dtypes F32, F64, F16, BF16, I32, I64 and BOOL map to trainrt's DTypes. The format's other
//    dtypes (U8, I8, I16, U16, U32, U64, F8_E4M3, F8_E5M2, ...) have no DType and give an
//    Unsupported error naming the tensor and the dtype: converting them silently (U8 to I32,
//    say) would hand back a tensor of a dtype the file did not hold. Unknown codes are damage (Io);
//  - a tensor entry has exactly the keys dtype, shape and data_offsets; dimensions and
//    offsets are exact non-negative integers, and every product is overflow-checked;
//  - shape product * element size == e - b; as in the reference implementation, the tensors
//    tile the data section: sorted by offset they start at 0, do not overlap, leave no gap,
//    and the last one ends exactly at the end of the file (so a truncated or extended file
//    is detected);
//  - names are unique and non-empty; "__metadata__" must map strings to strings;
//  - BOOL bytes must be 0 or 1 (checked when a tensor is read).
// Every error is a trainrt::Error naming the file (`where`) and the tensor or byte offset.
// The writer pads the header with spaces to a multiple of 8 bytes (as Python's safetensors
// does) and lays tensors out in the order given. Hosts must be little-endian.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "trainrt/tensor.hpp"

namespace trainrt::detail {

/// The largest header parse_safetensors() accepts (100 MiB).
inline constexpr std::size_t kMaxSafetensorsHeader = std::size_t{100} << 20;

/// One tensor of a safetensors file: its bytes are file[data_offset + begin, data_offset + end)
/// (begin/end are the header's data_offsets, relative to the data section).
struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
  std::size_t begin = 0, end = 0;
};

/// The parsed header of a safetensors file: tensors in header order, the "__metadata__"
/// strings, and where the data section starts (8 + header length).
struct SafetensorsIndex {
  std::vector<SafetensorsEntry> tensors;
  std::map<std::string, std::string> metadata;
  std::size_t data_offset = 0;
};

/// Parses and validates the header of the whole file `file` (every rule listed at the top of
/// this header) without reading tensor data. `where` names the file in messages. Throws
/// trainrt::Error: Io for a damaged or malformed file, Unsupported for a dtype trainrt has no
/// DType for; each message names `where` and the tensor or the byte offset.
SafetensorsIndex parse_safetensors(std::span<const std::byte> file, std::string_view where);

/// The safetensors code of `dtype` ("F32", "F64", "F16", "BF16", "I32", "I64", "BOOL").
std::string_view safetensors_dtype(DType dtype) noexcept;

/// Writes `tensors` (name and tensor, in that order in the file) and `metadata` to `path`
/// atomically: the bytes go to a temporary file in the same directory, which is fsynced and
/// renamed over `path`, and then the directory is fsynced; a reader sees the old file or the
/// new one, never a mix. On any failure the temporary is removed and `path` is untouched.
/// Throws trainrt::Error: InvalidArgument for an undefined tensor or a name that is empty,
/// repeated or "__metadata__"; Io (naming the path and the system's reason) when a file
/// cannot be created, written, synced or renamed.
void write_safetensors(const std::filesystem::path& path,
                       const std::vector<std::pair<std::string, const Tensor*>>& tensors,
                       const std::map<std::string, std::string>& metadata);

/// A safetensors file opened for reading: mapped into memory read-only and its header parsed
/// and validated at construction. Tensor data is read on demand. The file must not be
/// truncated by another process while it is open (files written by write_safetensors() are
/// replaced by rename, which never affects an open mapping). Movable, not copyable.
class SafetensorsFile {
 public:
  /// Opens and parses `path`. Throws trainrt::Error: NotFound for a missing file, Io for a
  /// directory, a read error or a damaged file, Unsupported for a dtype without a DType
  /// (parse_safetensors()).
  explicit SafetensorsFile(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  /// The parsed header.
  const SafetensorsIndex& index() const noexcept { return index_; }
  /// The file's path as given, for messages.
  const std::string& where() const noexcept { return where_; }
  /// The entry called `name`, or nullptr.
  const SafetensorsEntry* find(std::string_view name) const;
  /// The raw bytes of `entry` (an entry of index()), valid while this object lives.
  std::span<const std::byte> bytes(const SafetensorsEntry& entry) const;
  /// A copy of `entry`'s data in an owned Tensor. Throws Io naming the tensor and element
  /// when a BOOL byte is neither 0 nor 1.
  Tensor read(const SafetensorsEntry& entry) const;

 private:
  void release() noexcept;
  std::string where_;
  void* map_ = nullptr;
  std::size_t size_ = 0;
  SafetensorsIndex index_;
  std::unordered_map<std::string_view, std::size_t> by_name_;  // views into index_ names
};

}  // namespace trainrt::detail

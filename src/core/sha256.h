// core/sha256.h — SHA-256 (FIPS 180-4), the strong content hash behind the kernel cache's
// keys and its entries' checksums (DESIGN decision 4). Our own implementation: no crypto
// library is a dependency of the core, and speed matters little next to a compile.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace trainrt::detail {

/// A SHA-256 digest: 32 bytes, ordered and compared bytewise.
struct Digest {
  std::array<std::uint8_t, 32> bytes{};

  /// The 64 lower-case hexadecimal digits of the bytes, first byte first.
  std::string hex() const;
  /// Parses exactly 64 hexadecimal digits (either case); nullopt for any other text.
  /// Never throws.
  static std::optional<Digest> from_hex(std::string_view text);

  auto operator<=>(const Digest&) const = default;
};

/// Hash functor for unordered containers keyed by Digest (the digest is already uniformly
/// distributed, so its first 8 bytes serve).
struct DigestHash {
  std::size_t operator()(const Digest& d) const noexcept;
};

/// Incremental SHA-256: update() any number of times, then finish() once. Feeding a message
/// in pieces gives the same digest as feeding it whole.
class Sha256 {
 public:
  Sha256() noexcept;
  /// Appends the bytes of `data` to the message.
  void update(std::string_view data) noexcept { update(data.data(), data.size()); }
  /// Appends `size` bytes at `data` to the message (`data` may be null when size is 0).
  void update(const void* data, std::size_t size) noexcept;
  /// Pads the message and returns its digest. The object is reset afterwards, ready for a
  /// new message.
  Digest finish() noexcept;

 private:
  void compress(const std::uint8_t* block) noexcept;
  void reset() noexcept;

  std::array<std::uint32_t, 8> state_{};
  std::array<std::uint8_t, 64> buffer_{};
  std::size_t buffered_ = 0;       // bytes waiting in buffer_
  std::uint64_t total_bytes_ = 0;  // message length so far
};

/// The SHA-256 digest of `data`.
Digest sha256(std::string_view data) noexcept;

}  // namespace trainrt::detail

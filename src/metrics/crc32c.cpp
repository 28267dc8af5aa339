// metrics/crc32c.cpp — table-driven CRC-32C, one byte per step. Event files are small (a few
// hundred bytes per step), so the byte-wise table is plenty; no SSE4.2 instruction needed.
#include "metrics/crc32c.h"

#include <array>

namespace trainrt::detail {
namespace {

// 0x82F63B78 is the Castagnoli polynomial 0x1EDC6F41 with its bits reversed (the CRC is
// computed least significant bit first, as iSCSI and TFRecord define it).
constexpr std::uint32_t kReversedPolynomial = 0x82F63B78u;

constexpr std::array<std::uint32_t, 256> make_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int bit = 0; bit < 8; ++bit) c = (c & 1u) ? (c >> 1) ^ kReversedPolynomial : c >> 1;
    table[i] = c;
  }
  return table;
}

constexpr std::array<std::uint32_t, 256> kTable = make_table();

}  // namespace

std::uint32_t crc32c(std::span<const std::uint8_t> bytes, std::uint32_t crc) noexcept {
  std::uint32_t c = ~crc;
  for (std::uint8_t b : bytes) c = kTable[(c ^ b) & 0xFFu] ^ (c >> 8);
  return ~c;
}

}  // namespace trainrt::detail

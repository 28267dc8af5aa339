// metrics/crc32c.h — CRC-32C (Castagnoli), the checksum of TFRecord framing in TensorBoard
// event files, and TensorFlow's "masked" form of it.
#pragma once

#include <cstdint>
#include <span>

namespace trainrt::detail {

/// CRC-32C (polynomial 0x1EDC6F41, reflected, initial value and final xor 0xFFFFFFFF) of
/// `bytes`, continuing from `crc` (the value returned for the bytes before; 0 to start).
/// crc32c("123456789") == 0xE3069283. Never throws.
std::uint32_t crc32c(std::span<const std::uint8_t> bytes, std::uint32_t crc = 0) noexcept;

/// TensorFlow's masked CRC: the CRC rotated right by 15 bits plus 0xA282EAD8. Storing a CRC
/// of data that itself holds CRCs makes the checksum weak; masking avoids that.
constexpr std::uint32_t mask_crc32c(std::uint32_t crc) noexcept { return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u; }

}  // namespace trainrt::detail

// scripts/clang-tidy-source-location.h — std::source_location for clang-tidy 14 over libstdc++ 12.
//
// libstdc++ 12 defines std::source_location only when the compiler has
// __builtin_source_location, which clang gained in version 15. clang-tidy 14 (Debian 12's) would
// therefore stop at the first use of std::source_location in libtrainrt. scripts/check-tidy.sh
// force-includes this header (-include) when its clang-tidy is older than 15, so that the code is
// analysed as GCC compiles it. It is never part of a build. current() is constexpr rather than
// consteval because clang 14 rejects a consteval call in a default argument (clang bug, fixed in 15).
#pragma once
#if defined(__clang__) && __clang_major__ < 15 && !__has_builtin(__builtin_source_location)
#include <cstdint>

namespace std {  // stands in for the declaration libstdc++ 12 leaves out for clang < 15

struct source_location {
  static constexpr source_location current(std::uint_least32_t line = __builtin_LINE(),
                                           std::uint_least32_t column = __builtin_COLUMN(),
                                           const char* file = __builtin_FILE(),
                                           const char* function = __builtin_FUNCTION()) noexcept {
    source_location loc;
    loc.line_ = line;
    loc.column_ = column;
    loc.file_ = file;
    loc.function_ = function;
    return loc;
  }
  constexpr source_location() noexcept = default;
  constexpr std::uint_least32_t line() const noexcept { return line_; }
  constexpr std::uint_least32_t column() const noexcept { return column_; }
  constexpr const char* file_name() const noexcept { return file_; }
  constexpr const char* function_name() const noexcept { return function_; }

 private:
  std::uint_least32_t line_ = 0;
  std::uint_least32_t column_ = 0;
  const char* file_ = "";
  const char* function_ = "";
};

}  // namespace std
#endif

# Compiler settings for libtrainrt's own targets (trainrt_set_warnings) and the build cache.

find_program(TRAINRT_CCACHE ccache)
if(TRAINRT_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_CXX_COMPILER_LAUNCHER "${TRAINRT_CCACHE}")
endif()

# libstdc++'s <source_location> (used throughout, the public API included) needs
# __builtin_source_location, which clang has from version 15: with clang 14 every file fails.
if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 15)
  message(FATAL_ERROR "clang++ ${CMAKE_CXX_COMPILER_VERSION} cannot compile libtrainrt with libstdc++: its "
                      "std::source_location needs clang 15 or later (Debian 12: apt-get install clang-16 "
                      "libclang-rt-16-dev libomp-16-dev; then CC=clang-16 CXX=clang++-16)")
endif()

# Warnings apply to our targets only, never to consumers or to third-party headers (which
# are included as SYSTEM through their imported targets).
function(trainrt_set_warnings target)
  # A local that hides another local: GCC spells it -Wshadow=local; clang's -Wshadow is the
  # closest (it also covers locals hiding globals, which we do not have).
  set(more -Wshadow=local -Wnon-virtual-dtor)
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    set(more -Wnon-virtual-dtor -Wshadow)
  endif()
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic ${more})
  # GCC 12 reports std::string operator+ at -O3 as overlapping memcpy (GCC bug 105651, a
  # false positive fixed in GCC 13).
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(${target} PRIVATE -Wno-restrict)
  endif()
  if(TRAINRT_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

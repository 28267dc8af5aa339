# TrainrtSanitizers — builds libtrainrt and every target of ours with the compiler's run-time
# checkers, and says how the fuzz targets are built.
#
#   TRAINRT_SANITIZE       a -fsanitize= list, e.g. "address,undefined" (empty: none). Applied,
#                          compile and link, to every target defined in this project (the
#                          library, tests, tools, examples, benchmarks, fuzzers) and never to
#                          consumers. Works with g++ and clang++ (15 or later). A reported error stops the
#                          program (-fno-sanitize-recover=all), so ctest sees it as a failure.
#   TRAINRT_BUILD_FUZZERS  builds fuzz/ as libFuzzer binaries (clang++ only). Without it, the
#                          fuzz entry points are still built with a small driver that replays
#                          the checked-in corpus and regression inputs as ctest tests.

set(TRAINRT_SANITIZE "" CACHE STRING "Sanitizers for libtrainrt and its tests (-fsanitize= list, e.g. address,undefined)")
option(TRAINRT_BUILD_FUZZERS "Build the libFuzzer targets in fuzz/ (clang++ only)" OFF)

if(TRAINRT_SANITIZE)
  if(NOT TRAINRT_SANITIZE MATCHES "^[a-z,_-]+$")
    message(FATAL_ERROR "TRAINRT_SANITIZE='${TRAINRT_SANITIZE}' is not a -fsanitize= list such as address,undefined")
  endif()
  # Directory scope: every target added after this include, in this directory and below,
  # gets the flags; imported targets (TBB, oneDNN, GTest) are prebuilt and unaffected.
  # -fno-omit-frame-pointer keeps the sanitizers' fast stack unwinder's traces complete.
  set(_trainrt_sanitize_flags -fsanitize=${TRAINRT_SANITIZE} -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_compile_options(${_trainrt_sanitize_flags})
  add_link_options(-fsanitize=${TRAINRT_SANITIZE})
  message(STATUS "trainrt: sanitizers ${TRAINRT_SANITIZE}")
endif()

if(TRAINRT_BUILD_FUZZERS AND NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "TRAINRT_BUILD_FUZZERS needs clang++ (libFuzzer is part of clang; this build uses "
                      "${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER}). Configure a fresh build directory with "
                      "CC=clang-16 CXX=clang++-16, or leave TRAINRT_BUILD_FUZZERS off: the corpus and regression inputs "
                      "then still run as ctest tests (fuzz.<target>.regressions).")
endif()

if(TRAINRT_BUILD_FUZZERS)
  # Coverage feedback for libFuzzer from everything of ours, the library's parsers above all
  # (the fuzz entry points only call into them). Also a link option: clang then links the
  # coverage callbacks into the binaries that are not fuzzers (tests, tools).
  add_compile_options(-fsanitize=fuzzer-no-link)
  add_link_options(-fsanitize=fuzzer-no-link)
endif()

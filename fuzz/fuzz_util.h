// fuzz/fuzz_util.h — what the fuzz entry points share: the inputs as files (the readers under
// test open paths), a scratch directory, and the rule for which exceptions are expected.
//
// Every entry point (LLVMFuzzerTestOneInput in fuzz/<target>_fuzz.cpp) feeds one input to a
// parser. A parser may reject an input only with trainrt::Error of a kind other than
// Internal; anything else that escapes (another exception, an Internal error, a failed
// property check) is a bug, and the entry point lets it abort the process so that libFuzzer
// and the replay driver (fuzz/replay_main.cpp) report it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace trainrt::detail::fuzz {

/// The bytes of one fuzz input as a string view.
inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

/// An anonymous in-memory file (memfd) holding the given bytes, reachable by path() as
/// "/proc/self/fd/<n>"; closed, and so gone, when this goes out of scope. Calls
/// std::abort (a harness failure, not a finding) when the kernel refuses the memfd.
class MemFile {
 public:
  explicit MemFile(std::string_view bytes);
  ~MemFile();
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  const std::string& path() const noexcept { return path_; }

 private:
  int fd_;
  std::string path_;
};

/// A directory of this process's own, under $TMPDIR (default /tmp), created on first use
/// and removed with everything in it when the process exits normally. Fuzzers that need
/// real directories (the kernel cache) work inside it.
const std::string& scratch_dir();

/// Runs `parse`, which feeds one input to a parser. Returns normally when it succeeds or
/// throws trainrt::Error of a kind other than Internal (a rejected input). Any other
/// exception, and an Internal error, is reported on stderr and aborts: a bug to fix.
void expect_clean(const char* target, const std::function<void()>& parse);

/// Turns the library's logger off (once; later calls do nothing): a damaged cache entry is
/// logged as a warning, and a million of them would bury the fuzzer's own output.
void quiet_library_logs();

/// Reports a broken property (`what`, for target `target`) on stderr and aborts.
[[noreturn]] void property_failed(const char* target, const std::string& what);

}  // namespace trainrt::detail::fuzz

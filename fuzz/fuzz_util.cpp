// fuzz/fuzz_util.cpp — memfd files, the scratch directory and the expected-exception rule
// shared by the fuzz entry points (see fuzz_util.h).
#include "fuzz_util.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <system_error>

#include "core/logging.h"
#include "trainrt/errors.hpp"

namespace trainrt::detail::fuzz {

MemFile::MemFile(std::string_view bytes) : fd_(::memfd_create("trainrt-fuzz-input", MFD_CLOEXEC)) {
  if (fd_ < 0) {
    std::perror("fuzz: memfd_create");
    std::abort();
  }
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n <= 0) {
      std::perror("fuzz: writing the memfd");
      std::abort();
    }
    done += static_cast<std::size_t>(n);
  }
  path_ = "/proc/self/fd/" + std::to_string(fd_);
}

MemFile::~MemFile() { ::close(fd_); }

namespace {

/// Owns the scratch directory; its destructor (at normal exit) removes it.
struct Scratch {
  std::string path;
  Scratch() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/trainrt-fuzz-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::perror(("fuzz: mkdtemp " + tmpl).c_str());
      std::abort();
    }
    path = tmpl;
  }
  ~Scratch() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

}  // namespace

const std::string& scratch_dir() {
  static const Scratch scratch;
  return scratch.path;
}

void quiet_library_logs() {
  static const bool done = [] {
    log().set_level(spdlog::level::off);
    return true;
  }();
  (void)done;
}

void property_failed(const char* target, const std::string& what) {
  std::fprintf(stderr, "fuzz %s: property broken: %s\n", target, what.c_str());
  std::abort();
}

void expect_clean(const char* target, const std::function<void()>& parse) {
  try {
    parse();
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::Internal) property_failed(target, std::string("internal error: ") + e.what());
  } catch (const std::exception& e) {
    property_failed(target, std::string("an exception other than trainrt::Error: ") + e.what());
  }
}

}  // namespace trainrt::detail::fuzz

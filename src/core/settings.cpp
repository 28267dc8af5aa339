#include "core/settings.h"

#include <cstdlib>
#include <cstring>

namespace trainrt::detail {

namespace {
bool flag(const char* name, bool fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return !(std::strcmp(v, "0") == 0 || std::strcmp(v, "false") == 0 || std::strcmp(v, "off") == 0);
}
}  // namespace

const Settings& settings() {
  static const Settings s = [] {
    Settings r;
#ifdef NDEBUG
    constexpr bool kDebug = false;
#else
    constexpr bool kDebug = true;
#endif
    r.dump_ir = flag("TRAINRT_DUMP_IR", false);
    r.time_passes = flag("TRAINRT_TIME_PASSES", false);
    r.verify = flag("TRAINRT_VERIFY", kDebug);
    r.profile = flag("TRAINRT_PROFILE", false);
    return r;
  }();
  return s;
}

}  // namespace trainrt::detail

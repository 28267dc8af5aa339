// runtime/cpu/accumulate.h — fixed-order accumulation helpers.
//
// f32 data accumulates in f64 (integers in int64). A contiguous run is summed in 8
// independent lanes combined pairwise at the end: the compiler vectorizes it, and the
// order (hence the bits) depends only on the data, never on threads.
#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>

namespace trainrt::detail::cpu {

template <class T>
using Acc = std::conditional_t<std::is_floating_point_v<T>, double, std::int64_t>;

template <class T>
inline Acc<T> lane_sum(const T* x, std::int64_t n) {
  Acc<T> lanes[8] = {};
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) lanes[j] += static_cast<Acc<T>>(x[i + j]);
  for (; i < n; ++i) lanes[i & 7] += static_cast<Acc<T>>(x[i]);
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

/// sum of (x[i] - c)^2, for variances.
template <class T>
inline double lane_sum_sq_dev(const T* x, std::int64_t n, double c) {
  double lanes[8] = {};
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) {
      const double d = static_cast<double>(x[i + j]) - c;
      lanes[j] += d * d;
    }
  for (; i < n; ++i) {
    const double d = static_cast<double>(x[i]) - c;
    lanes[i & 7] += d * d;
  }
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

/// sum of x[i] * y[i].
template <class T>
inline double lane_dot(const T* x, const T* y, std::int64_t n) {
  double lanes[8] = {};
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) lanes[j] += static_cast<double>(x[i + j]) * static_cast<double>(y[i + j]);
  for (; i < n; ++i) lanes[i & 7] += static_cast<double>(x[i]) * static_cast<double>(y[i]);
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

/// NaN-propagating maximum of a contiguous run (n >= 1).
template <class T>
inline T lane_max(const T* x, std::int64_t n) {
  T m = x[0];
  for (std::int64_t i = 1; i < n; ++i) m = (x[i] > m || x[i] != x[i]) ? x[i] : m;
  return m;
}

}  // namespace trainrt::detail::cpu

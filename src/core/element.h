// core/element.h — reading and writing single elements of any dtype as double (slow paths:
// initialization, tests, host-side checks; kernels use typed loops).
#pragma once

#include <cstdint>

#include "trainrt/dtype.hpp"

namespace trainrt::detail {

double load_as_double(const void* p, DType dtype, std::int64_t index);
void store_from_double(void* p, DType dtype, std::int64_t index, double value);

}  // namespace trainrt::detail

// data/shuffle.h — the order of an epoch: a pure function of (seed, epoch).
#pragma once

#include <cstdint>
#include <vector>

namespace trainrt::detail {

/// Fills `order` with a permutation of 0 .. n-1: the identity without `shuffle`, else
/// Fisher-Yates driven by a splitmix64 counter keyed by (seed, epoch). The generator is
/// written out (not <random>'s distributions, whose algorithms the standard leaves open), so
/// the order is the same with every compiler and standard library; tests pin it.
void epoch_order(std::vector<std::int64_t>& order, std::int64_t n, bool shuffle, std::uint64_t seed,
                 std::int64_t epoch);

}  // namespace trainrt::detail

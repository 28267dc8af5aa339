// data/shuffle.cpp — the seeded order of an epoch (moved from idx.cpp's BatchSampler, same
// generator, so orders recorded before the move are unchanged).
#include "data/shuffle.h"

#include <numeric>
#include <utility>

namespace trainrt::detail {

namespace {

constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15ull;  // 2^64 / golden ratio, splitmix64's increment

/// splitmix64's output function (Steele, Lea and Flood, "Fast splittable pseudorandom number
/// generators", 2014): a bijection of 64-bit words with good avalanche.
std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// A counter-based generator: draw i of key k is mix64(k + (i + 1) * kGolden), i.e. the
/// splitmix64 sequence started at k.
class CounterRng {
 public:
  explicit CounterRng(std::uint64_t key) : key_(key) {}
  std::uint64_t next() { return mix64(key_ + ++counter_ * kGolden); }
  /// Uniform in [0, bound), bound > 0: rejecting the lowest (2^64 mod bound) values removes
  /// the modulo bias.
  std::uint64_t below(std::uint64_t bound) {
    const std::uint64_t threshold = (0 - bound) % bound;
    for (;;) {
      const std::uint64_t r = next();
      if (r >= threshold) return r % bound;
    }
  }

 private:
  std::uint64_t key_;
  std::uint64_t counter_ = 0;
};

/// The key of epoch `epoch` under `seed`. Mixing the seed first keeps (seed, epoch) and
/// (seed + 1, epoch - 1)-style pairs from sharing a stream.
std::uint64_t epoch_key(std::uint64_t seed, std::int64_t epoch) {
  return mix64(mix64(seed ^ 0x5DA7A5A4B1E5EEDull) + static_cast<std::uint64_t>(epoch) * kGolden);
}

}  // namespace

void epoch_order(std::vector<std::int64_t>& order, std::int64_t n, bool shuffle, std::uint64_t seed,
                 std::int64_t epoch) {
  order.resize(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  if (!shuffle || n < 2) return;
  // Fisher-Yates (Durstenfeld): position i takes a uniform pick among positions [0, i].
  CounterRng rng(epoch_key(seed, epoch));
  for (std::size_t i = order.size() - 1; i > 0; --i) std::swap(order[i], order[rng.below(i + 1)]);
}

}  // namespace trainrt::detail

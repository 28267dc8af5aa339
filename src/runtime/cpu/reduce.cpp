// runtime/cpu/reduce.cpp — sum, mean and max over any set of axes.
//
// The input's axes are merged into alternating groups of kept and reduced axes. When the
// innermost group is reduced, every output element sums contiguous runs (one run per
// combination of the outer reduced groups). When it is kept, outputs come in contiguous
// runs; each tile of such a run accumulates input rows column-wise. Work is split over
// output elements (and tiles) only — or, for a whole-tensor reduction, over fixed chunks
// whose partial results are combined in order — so results do not depend on threads.
#include <algorithm>
#include <cmath>

#include "runtime/cpu/accumulate.h"
#include "runtime/cpu/kernel.h"
#include "runtime/cpu/parallel.h"
#include "runtime/cpu/types.h"

namespace trainrt::detail::cpu {

namespace {

struct Group {
  std::int64_t size, stride;  // stride in elements of the input
};

struct ReducePlan {
  std::vector<Group> kept, reduced;  // outermost first
  bool inner_reduced = false;        // the innermost group is reduced
  std::int64_t inner = 1;            // its size
  std::int64_t outputs = 1, count = 1;
};

ReducePlan make_plan(const Shape& x, const std::vector<std::int64_t>& axes) {
  std::vector<std::pair<std::int64_t, bool>> groups;  // (size, reduced)
  for (std::int64_t d = 0; d < x.rank(); ++d) {
    if (x[d] == 1) continue;
    const bool r = std::binary_search(axes.begin(), axes.end(), d);
    if (!groups.empty() && groups.back().second == r) groups.back().first *= x[d];
    else groups.emplace_back(x[d], r);
  }
  if (groups.empty()) groups.emplace_back(1, true);
  ReducePlan p;
  std::int64_t stride = 1;
  // NOLINTNEXTLINE(modernize-loop-convert): clang 14 cannot parse libstdc++ 12's ranges::reverse_view
  for (auto it = groups.rbegin(); it != groups.rend(); ++it) {
    (it->second ? p.reduced : p.kept).push_back({it->first, stride});
    stride *= it->first;
  }
  std::reverse(p.kept.begin(), p.kept.end());
  std::reverse(p.reduced.begin(), p.reduced.end());
  p.inner_reduced = groups.back().second;
  p.inner = groups.back().first;
  for (const Group& g : p.kept) p.outputs *= g.size;
  for (const Group& g : p.reduced) p.count *= g.size;
  return p;
}

/// Offset of the index `i` decomposed over `groups` (outermost first).
std::int64_t offset_of(std::int64_t i, const std::vector<Group>& groups, std::size_t limit) {
  std::int64_t off = 0;
  for (std::size_t g = limit; g-- > 0;) {
    off += (i % groups[g].size) * groups[g].stride;
    i /= groups[g].size;
  }
  return off;
}

enum class Mode { sum, mean, max };

template <class T>
class ReduceKernel final : public Kernel {
 public:
  ReduceKernel(ReducePlan plan, Mode mode) : p_(std::move(plan)), mode_(mode) {}

  std::size_t scratch_bytes() const override { return whole() ? chunks() * sizeof(Acc<T>) : 0; }

  void run(const KernelArgs& a) override {
    const T* x = static_cast<const T*>(a.in[0]);
    T* y = static_cast<T*>(a.out[0]);
    if (whole()) return run_whole(x, y, static_cast<Acc<T>*>(a.scratch));
    if (p_.inner_reduced) run_rows(x, y);
    else run_columns(x, y);
  }

 private:
  static constexpr std::int64_t kChunk = 1 << 14;
  bool whole() const { return p_.kept.empty() && mode_ != Mode::max && p_.count >= 2 * kChunk; }
  std::size_t chunks() const { return static_cast<std::size_t>((p_.count + kChunk - 1) / kChunk); }

  T finish(Acc<T> s) const {
    if (mode_ == Mode::mean) return static_cast<T>(static_cast<double>(s) / static_cast<double>(p_.count));
    return static_cast<T>(s);
  }

  /// Whole-tensor sum of a contiguous input: fixed chunks, partials combined in order.
  void run_whole(const T* x, T* y, Acc<T>* partial) const {
    const auto n = static_cast<std::int64_t>(chunks());
    parallel_for(n, 1, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t c = b; c < e; ++c)
        partial[c] = lane_sum(x + c * kChunk, std::min(kChunk, p_.count - c * kChunk));
    });
    Acc<T> s = 0;
    for (std::int64_t c = 0; c < n; ++c) s += partial[c];
    y[0] = finish(s);
  }

  /// Innermost group reduced: out[o] combines runs of p_.inner contiguous elements.
  void run_rows(const T* x, T* y) const {
    const std::size_t outer_reduced = p_.reduced.size() - 1;
    std::int64_t runs = 1;
    for (std::size_t g = 0; g < outer_reduced; ++g) runs *= p_.reduced[g].size;
    parallel_for(p_.outputs, grain_for(p_.count), [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t o = b; o < e; ++o) {
        const T* base = x + offset_of(o, p_.kept, p_.kept.size());
        if (mode_ == Mode::max) {
          T m = lane_max(base + offset_of(0, p_.reduced, outer_reduced), p_.inner);
          for (std::int64_t r = 1; r < runs; ++r) {
            const T v = lane_max(base + offset_of(r, p_.reduced, outer_reduced), p_.inner);
            m = (v > m || v != v) ? v : m;  // NOLINT(misc-redundant-expression): x != x is the NaN test
          }
          y[o] = m;
        } else {
          Acc<T> s = 0;
          for (std::int64_t r = 0; r < runs; ++r)
            s += lane_sum(base + offset_of(r, p_.reduced, outer_reduced), p_.inner);
          y[o] = finish(s);
        }
      }
    });
  }

  /// Innermost group kept: tiles of contiguous outputs accumulate input rows.
  void run_columns(const T* x, T* y) const {
    constexpr std::int64_t kTile = 256;
    const std::size_t outer_kept = p_.kept.size() - 1;
    const std::int64_t outer = p_.outputs / p_.inner;
    const std::int64_t tiles = (p_.inner + kTile - 1) / kTile;
    parallel_for(outer * tiles, grain_for(p_.count * std::min(kTile, p_.inner)), [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t w = b; w < e; ++w) {
        const std::int64_t o = w / tiles, t0 = (w % tiles) * kTile, len = std::min(kTile, p_.inner - t0);
        const T* base = x + offset_of(o, p_.kept, outer_kept) + t0;
        T* out = y + o * p_.inner + t0;
        if (mode_ == Mode::max) {
          T m[kTile];
          for (std::int64_t j = 0; j < len; ++j) m[j] = base[offset_of(0, p_.reduced, p_.reduced.size()) + j];
          for (std::int64_t r = 1; r < p_.count; ++r) {
            const T* row = base + offset_of(r, p_.reduced, p_.reduced.size());
            // NOLINTNEXTLINE(misc-redundant-expression): x != x is the NaN test
            for (std::int64_t j = 0; j < len; ++j) m[j] = (row[j] > m[j] || row[j] != row[j]) ? row[j] : m[j];
          }
          std::copy(m, m + len, out);
        } else {
          Acc<T> s[kTile] = {};
          for (std::int64_t r = 0; r < p_.count; ++r) {
            const T* row = base + offset_of(r, p_.reduced, p_.reduced.size());
            for (std::int64_t j = 0; j < len; ++j) s[j] += static_cast<Acc<T>>(row[j]);
          }
          for (std::int64_t j = 0; j < len; ++j) out[j] = finish(s[j]);
        }
      }
    });
  }

  ReducePlan p_;
  Mode mode_;
};

}  // namespace

std::unique_ptr<Kernel> make_reduce_kernel(const KernelEnv& env) {
  const auto& attrs = std::get<ReduceAttrs>(env.n().attrs);
  const Mode mode = env.n().kind == OpKind::ReduceSum    ? Mode::sum
                    : env.n().kind == OpKind::ReduceMean ? Mode::mean
                                                         : Mode::max;
  ReducePlan plan = make_plan(env.in(0).shape, attrs.axes);
  if (plan.count == 0 || env.in(0).shape.numel() == 0) plan.count = 0;
  return dispatch_numeric(env.in(0).dtype, [&](auto t) -> std::unique_ptr<Kernel> {
    return std::make_unique<ReduceKernel<decltype(t)>>(plan, mode);
  });
}

}  // namespace trainrt::detail::cpu

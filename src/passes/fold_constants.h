// passes/fold_constants.h — evaluate at compile time what depends only on constants.
//
// An elementwise op (ir/op_kind.h is_elementwise, dropout excluded), a cast, a reshape or a
// broadcast_to whose operands are all `constant` or `full` nodes is computed here and
// replaced by its result: a `full` node when the result is one value everywhere, otherwise
// a `constant`. Chains fold in one walk, since operands are looked at after their own
// folding. A `constant` leaf whose elements are all the same bits becomes a `full` node too.
//
// Folded values are the same bits the CPU kernels would compute: each op is evaluated in
// the kernel's compute type (f32 for f32/f16/bf16, as dtype legalization makes the kernels
// do; f64; i32/i64 wrapping like the kernels' two's-complement loops; bool) with the
// formulas of runtime/cpu/elementwise_ops.h, copied here because passes may not include the
// runtime (DESIGN: modules include only the ones to their left). tests/simplify_passes_test
// checks every folded op against the unfolded program bit for bit. Ops whose f32 kernels run
// the vector math of runtime/cpu/vec_math.h (exp, sigmoid, exact gelu and its backward) are
// folded only in f64, where the kernels call the C library.
//
// Never folded: ops that read inputs or variables (their operands are not constants) and
// random ops. A result that is not one value and is larger than `max_bytes` stays an op, to
// keep compile time and the size of the compiled program bounded.
#pragma once

#include <cstddef>
#include <memory>

#include "passes/rewrite.h"

namespace trainrt::detail {

/// The default cap on the bytes of a folded, non-uniform result: 1 MiB.
inline constexpr std::size_t kMaxFoldedBytes = std::size_t{1} << 20;

/// Replaces `graph` by a copy with constant subgraphs folded (dead nodes dropped) and fills
/// `map` with the new value of every live value of the old graph. The folded-away operands
/// stay in the graph, unused (eliminate_dead_code removes them). Returns true if something
/// was folded. Throws only on internal errors.
bool fold_constants(std::shared_ptr<GraphImpl>& graph, ValueMap& map, std::size_t max_bytes = kMaxFoldedBytes);

}  // namespace trainrt::detail

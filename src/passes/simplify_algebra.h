// passes/simplify_algebra.h — local rewrites that are exact in IEEE arithmetic.
//
// Each rule replaces a node by a value that has the same bits for every input the kernels
// can see (round to nearest even; the library never sets flush-to-zero), and the node's
// type. One exception throughout: a signaling NaN in user data, which the removed op would
// have made quiet, stays signaling; and for f16/bf16 (computed in f32 by the CPU kernels)
// the removed round trip would have made NaN payloads canonical. The rules and why each is
// exact (x: any value, including +-0, +-inf and NaN):
//   x + (-0), (-0) + x -> x   -0 is the additive identity: +0 + -0 = +0, -0 + -0 = -0. Not
//                              x + (+0): -0 + +0 = +0 != -0. Integers: x + 0, 0 + x.
//   x - (+0) -> x             x - +0 = x + -0. Not x - (-0) = x + +0 (x = -0 again).
//   x * 1, 1 * x, x / 1 -> x  one correctly rounded operation of an exact result.
//   x / c -> x * (1/c)        c a full node of +-2^k whose inverse is representable in the
//                              dtype: x/c and x*(1/c) are the same real number, rounded once
//                              each, so they agree everywhere (subnormal, overflow, signs).
//   pow(x, 1) -> x            the C library's pow returns x: checked for every f32 (powf,
//                              glibc 2.36) and 1e8 random f64 bit patterns; only NaN inputs
//                              differ (pow makes them quiet and may change the sign bit).
//                              Not pow(x, 2) -> x * x: glibc's powf rounds exact ties of x^2
//                              away from x*x's round-to-even (1.5 million f32 inputs, e.g.
//                              x = -0x1.05dp-3), and pow differs likewise on some f64 ties.
//   neg(neg(x)) -> x          sign flips (NaN included).
//   f(f(x)) -> f(x)           f idempotent: abs, relu, floor, sign; logical_not(logical_not(x)) -> x.
//   maximum(x, x), minimum(x, x), where(c, x, x), logical_and/or(x, x) -> x; where(true, a, b)
//                              -> a, where(false, a, b) -> b; logical_and(x, true),
//                              logical_or(x, false) -> x.
//   fma(a, b, -0) -> a * b; fma(a, 1, c), fma(1, b, c) -> a + c, b + c (the kernel rounds
//                              a * b before adding c; integers: c = 0).
//   cast(x, dtype of x) -> x; cast(cast(x, A), B) -> cast(x, B) (or x when B is x's dtype)
//                              when A holds every value of x's dtype (bool -> any; f16, bf16
//                              -> f32, f64; f32 -> f64; i32 -> i64, f64). NaN payloads may
//                              differ (as above).
//   reshape to x's shape -> x; reshape(reshape(x)) -> reshape(x); permute(permute(x)) ->
//                              one permute; a permute that keeps every axis longer than 1 in
//                              order -> reshape (same element order; identity -> x);
//                              broadcast_to x's shape -> x; broadcast_to(broadcast_to(x)) ->
//                              broadcast_to(x); a slice covering its whole axis -> x; concat
//                              of one value -> that value. Data movement copies bits.
// Not done, because not exact: x + (+0), x * 0, x - x, x / x, x * -1 -> neg(x) and
// (-0) - x -> neg(x) (a NaN operand's sign bit would differ), reductions over unit axes.
//
// Values the caller keeps (roots) and values an assignment reads (through reshapes, which
// alias) are never made aliases of an input's or a variable's storage: a step returns its
// outputs after the optimizer's assignments, so a root `w * 1` must stay a copy of w's old
// value, and the executor reads fetched values from its own buffers.
#pragma once

#include <memory>
#include <vector>

#include "passes/rewrite.h"

namespace trainrt::detail {

/// Replaces `graph` by a simplified copy (dead nodes dropped) and fills `map` with the new
/// value of every live value of the old graph. `roots` are the values of `graph` the caller
/// keeps (see above). Nodes a rule bypassed stay in the graph, unused (eliminate_dead_code
/// removes them). Returns true if a rule applied. Throws only on internal errors.
bool simplify_algebra(std::shared_ptr<GraphImpl>& graph, ValueMap& map, const std::vector<ValueId>& roots);

}  // namespace trainrt::detail

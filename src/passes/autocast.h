// passes/autocast.h — automatic mixed precision (CompileOptions::precision bf16/f16).
//
// Rewrites an f32 graph, before autodiff, so that the ops that profit from 16-bit tensor
// math compute in `low` (bf16 or f16), the ops that need the range or the accumulation of
// f32 compute in f32, and every other op follows its operands. Parameters stay f32 (the
// master weights): a 16-bit op reads them through a cast, whose gradient casts back, so the
// optimizer sees f32 gradients. The lists:
//   16-bit  matmul, conv2d, attention
//   f32     sum, mean, max (reductions), softmax, log_softmax, cross_entropy, batch_norm,
//           layer_norm, exp, log, pow, rsqrt
//   follow  everything else: with operands of one floating dtype the op keeps it; with mixed
//           16-bit and f32 operands it computes in f32 (the wider), except that a scalar
//           (0-d) operand follows the others, as a Python number does under torch.autocast.
// Assignments cast the value to the variable's dtype. Shape ops, state and casts are left
// alone. The values in `keep_dtype` (the loss, the fetched outputs) are cast back to their
// original dtype, so what a Program returns does not change type with the precision.
#pragma once

#include <memory>
#include <vector>

#include "passes/rewrite.h"

namespace trainrt::detail {

std::shared_ptr<GraphImpl> autocast(const GraphImpl& graph, DType low, const std::vector<ValueId>& keep_dtype,
                                    ValueMap& map);

}  // namespace trainrt::detail

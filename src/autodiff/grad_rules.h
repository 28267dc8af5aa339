// autodiff/grad_rules.h — what a gradient rule sees, and the rule of each op family.
//
// A rule receives the forward node (copied: appending nodes moves the node array), its
// operands and outputs as Values, the incoming gradient of each output (absent when no
// gradient flows into it) and which operands need a gradient. It returns one Value per
// operand: the gradient contribution, or an absent Value when none flows (integer operands,
// operands that do not need one, ops whose derivative is zero). Gradients have the type of
// the operand they belong to. Rules build with the public ops, so backward nodes are
// ordinary IR that every later pass and backend understands.
#pragma once

#include <vector>

#include "ir/graph_impl.h"
#include "trainrt/ops.hpp"

namespace trainrt::detail {

struct GradContext {
  OpKind kind;
  Attrs attrs;
  std::vector<Value> in;    // forward operands (absent where optional and absent)
  std::vector<Value> out;   // forward outputs
  std::vector<Value> gout;  // incoming gradient per output; absent where none flows
  std::vector<bool> needs;  // operand i needs a gradient
  Loc loc;                  // for op builders; the graph overrides it with the node's own
  SourceLoc where;          // the forward node's location, for messages
  template <class A>
  const A& a() const {
    return std::get<A>(attrs);
  }
  bool need(std::size_t i) const { return i < needs.size() && needs[i]; }
};

using GradRule = std::vector<Value> (*)(const GradContext&);

std::vector<Value> grad_elementwise(const GradContext&);
std::vector<Value> grad_shape(const GradContext&);
std::vector<Value> grad_reduce(const GradContext&);
std::vector<Value> grad_matmul(const GradContext&);
std::vector<Value> grad_conv_pool(const GradContext&);
std::vector<Value> grad_softmax_loss(const GradContext&);
std::vector<Value> grad_norm(const GradContext&);
std::vector<Value> grad_random_embedding(const GradContext&);
std::vector<Value> grad_attention(const GradContext&);

/// Throws Unsupported: `kind` has no gradient rule (backward ops: no second derivatives).
[[noreturn]] void no_gradient(OpKind kind, const GradContext& ctx);

}  // namespace trainrt::detail

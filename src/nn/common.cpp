// nn/common.cpp — the multi-head attention core and the shared argument checks of the nn
// modules (see common.h).
#include "nn/common.h"

#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"

namespace trainrt::detail {

void require_positive(std::string_view layer, const std::string& name, std::string_view what, std::int64_t v,
                      const Loc& loc) {
  if (v <= 0)
    fail(ErrorKind::InvalidArgument, cat(layer, " '", name, "' at ", where(loc), ": ", what, " must be > 0, got ", v));
}

void require_probability(std::string_view layer, const std::string& name, std::string_view what, double p,
                         const Loc& loc) {
  if (!(p >= 0.0 && p < 1.0))
    fail(ErrorKind::InvalidArgument,
         cat(layer, " '", name, "' at ", where(loc), ": ", what, " must be in [0, 1), got ", p));
}

void require_divisible(std::string_view layer, const std::string& name, std::int64_t hidden, std::int64_t heads,
                       const Loc& loc) {
  if (hidden % heads != 0)
    fail(ErrorKind::InvalidArgument, cat(layer, " '", name, "' at ", where(loc), ": the hidden size ", hidden,
                                         " is not divisible by the number of heads ", heads));
}

std::string join_name(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

void check_sequence(std::string_view layer, const std::string& name, std::string_view what, const Value& x,
                    std::int64_t embed, const Loc& loc) {
  if (!x.valid())
    fail(ErrorKind::InvalidArgument, cat(layer, " '", name, "' at ", where(loc), ": ", what, " is absent"));
  if (x.rank() != 3 || (embed > 0 && x.shape()[2] != embed))
    fail(ErrorKind::ShapeMismatch,
         cat(layer, " '", name, "' at ", where(loc), ": ", what, " must be [B, L, ",
             embed > 0 ? std::to_string(embed) : std::string("E"), "], got ", x.shape().to_string()));
  if (!is_floating(x.dtype()))
    fail(ErrorKind::DTypeMismatch,
         cat(layer, " '", name, "' at ", where(loc), ": ", what, " must be floating, got ", trainrt::name(x.dtype())));
}

Value key_mask(std::string_view layer, const std::string& name, const Value& mask, std::int64_t batch,
               std::int64_t keys, const Loc& loc) {
  if (!mask.valid()) return {};
  if (mask.dtype() != boolean)
    fail(ErrorKind::DTypeMismatch,
         cat(layer, " '", name, "' at ", where(loc), ": the attention mask must be bool (true = attend), got ",
             trainrt::name(mask.dtype())));
  if (mask.rank() != 2 || mask.shape()[0] != batch || mask.shape()[1] != keys)
    fail(ErrorKind::ShapeMismatch, cat(layer, " '", name, "' at ", where(loc), ": the attention mask must be [", batch,
                                       ", ", keys, "] ([batch, keys]), got ", mask.shape().to_string()));
  return reshape(mask, {batch, 1, 1, keys}, loc);
}

namespace {

/// x[B, L, E] -> [B, heads, L, E / heads].
Value split_heads(const Value& x, std::int64_t heads, const Loc& loc) {
  const Shape& s = x.shape();
  return permute(reshape(x, {s[0], s[1], heads, s[2] / heads}, loc), {0, 2, 1, 3}, loc);
}

/// The most negative finite value of a floating dtype (what Hugging Face adds to masked scores).
double lowest(DType dtype) {
  if (dtype == f64) return std::numeric_limits<double>::lowest();
  if (dtype == f16) return -65504.0;
  if (dtype == bf16) return -3.3895313892515355e38;
  return std::numeric_limits<float>::lowest();
}

/// A constant bool [lq, lk]: true where key j <= query i.
Value causal_mask(Graph graph, std::int64_t lq, std::int64_t lk, const Loc& loc) {
  std::vector<bool> bits(static_cast<std::size_t>(lq * lk));
  for (std::int64_t i = 0; i < lq; ++i)
    for (std::int64_t j = 0; j < lk; ++j) bits[static_cast<std::size_t>(i * lk + j)] = j <= i;
  return graph.constant(Tensor::from_bools({lq, lk}, bits), loc);
}

}  // namespace

Value multi_head_attention(const Value& q, const Value& k, const Value& v, std::int64_t heads, const Value& mask4,
                           bool causal, double dropout_p, const Loc& loc) {
  const std::int64_t batch = q.shape()[0], lq = q.shape()[1], embed = q.shape()[2];
  const Value qh = split_heads(q, heads, loc), kh = split_heads(k, heads, loc), vh = split_heads(v, heads, loc);
  Value out;
  if (dropout_p == 0.0) {
    out = scaled_dot_product_attention(qh, kh, vh, {.mask = mask4, .causal = causal}, loc);
  } else {
    // Explicit weights, so that dropout can act on them as in PyTorch and Hugging Face.
    const double scale = 1.0 / std::sqrt(static_cast<double>(embed) / static_cast<double>(heads));
    Value scores = mul(matmul(qh, kh, {.transpose_a = false, .transpose_b = true}, loc),
                       q.graph().scalar(scale, q.dtype(), loc), loc);
    Value allow = mask4;
    if (causal) {
      const Value tri = causal_mask(q.graph(), lq, k.shape()[1], loc);
      allow = allow.valid() ? logical_and(allow, tri, loc) : tri;
    }
    if (allow.valid()) scores = where(allow, scores, q.graph().scalar(lowest(q.dtype()), q.dtype(), loc), loc);
    out = matmul(dropout(softmax(scores, -1, loc), dropout_p, loc), vh, {}, loc);
  }
  return reshape(permute(out, {0, 2, 1, 3}, loc), {batch, lq, embed}, loc);
}

}  // namespace trainrt::detail

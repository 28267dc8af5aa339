// trainrt/ops.hpp — ops as free functions over Values.
//
// Every op infers its output shape and dtype when it is added and throws trainrt::Error
// (ShapeMismatch, DTypeMismatch or InvalidArgument) naming the op, its operands and the
// caller's file:line. Tensor-tensor ops need equal dtypes (no implicit promotion; use
// cast()); a double operand takes the tensor's dtype. Broadcasting follows numpy. Axes may
// be negative (counted from the end). Every op has a gradient rule (see gradients()).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "trainrt/graph.hpp"

namespace trainrt {

/// The caller's source location, the defaulted last argument of every op.
using Loc = SourceLocation;
/// A list of axes of a reduction; negative axes count from the end.
using Axes = std::vector<std::int64_t>;

// ---- elementwise, unary (floating dtypes unless stated) --------------------------------
Value neg(const Value& x, Loc loc = Loc::current());      ///< any numeric dtype
Value abs(const Value& x, Loc loc = Loc::current());      ///< any numeric dtype
Value sign(const Value& x, Loc loc = Loc::current());     ///< -1, 0 or 1; any numeric dtype
Value exp(const Value& x, Loc loc = Loc::current());      ///< e^x
Value log(const Value& x, Loc loc = Loc::current());      ///< natural logarithm
Value sqrt(const Value& x, Loc loc = Loc::current());     ///< square root
Value rsqrt(const Value& x, Loc loc = Loc::current());    ///< 1 / sqrt(x)
Value sin(const Value& x, Loc loc = Loc::current());      ///< sine (radians)
Value cos(const Value& x, Loc loc = Loc::current());      ///< cosine (radians)
Value floor(const Value& x, Loc loc = Loc::current());    ///< gradient is zero
Value tanh(const Value& x, Loc loc = Loc::current());     ///< hyperbolic tangent
Value sigmoid(const Value& x, Loc loc = Loc::current());  ///< 1 / (1 + e^-x)
Value relu(const Value& x, Loc loc = Loc::current());     ///< any numeric dtype
/// Which form of GELU gelu() computes.
enum class GeluApproximation {
  none,  ///< exact: x * (1 + erf(x / sqrt(2))) / 2
  tanh,  ///< PyTorch's approximate="tanh"
};
/// x * Phi(x) with the exact erf form, or PyTorch's tanh approximation.
Value gelu(const Value& x, GeluApproximation approximation = GeluApproximation::none, Loc loc = Loc::current());

// ---- elementwise, binary (numpy broadcasting) ------------------------------------------
Value add(const Value& a, const Value& b, Loc loc = Loc::current());  ///< a + b
Value sub(const Value& a, const Value& b, Loc loc = Loc::current());  ///< a - b
Value mul(const Value& a, const Value& b, Loc loc = Loc::current());  ///< a * b
/// Floating dtypes only (integer division is not defined here: cast first).
Value div(const Value& a, const Value& b, Loc loc = Loc::current());
/// a raised to the power b (floating dtypes).
Value pow(const Value& a, const Value& b, Loc loc = Loc::current());
/// a raised to a constant power (floating dtypes).
Value pow(const Value& a, double exponent, Loc loc = Loc::current());
/// Elementwise max/min; where a == b the gradient is split evenly, as in PyTorch.
Value maximum(const Value& a, const Value& b, Loc loc = Loc::current());
/// Elementwise min; where a == b the gradient is split evenly, as in PyTorch.
Value minimum(const Value& a, const Value& b, Loc loc = Loc::current());
/// a * b + c in one op.
Value fma(const Value& a, const Value& b, const Value& c, Loc loc = Loc::current());
/// minimum(maximum(x, low), high).
Value clamp(const Value& x, double low, double high, Loc loc = Loc::current());

// ---- comparisons and logic (result dtype bool; no gradient flows) -----------------------
Value eq(const Value& a, const Value& b, Loc loc = Loc::current());           ///< a == b
Value ne(const Value& a, const Value& b, Loc loc = Loc::current());           ///< a != b
Value lt(const Value& a, const Value& b, Loc loc = Loc::current());           ///< a < b
Value le(const Value& a, const Value& b, Loc loc = Loc::current());           ///< a <= b
Value gt(const Value& a, const Value& b, Loc loc = Loc::current());           ///< a > b
Value ge(const Value& a, const Value& b, Loc loc = Loc::current());           ///< a >= b
Value logical_and(const Value& a, const Value& b, Loc loc = Loc::current());  ///< a && b for bool a and b
Value logical_or(const Value& a, const Value& b, Loc loc = Loc::current());   ///< a || b for bool a and b
Value logical_not(const Value& x, Loc loc = Loc::current());                  ///< !x for bool x
/// cond ? a : b, broadcasting all three; cond is bool.
Value where(const Value& cond, const Value& a, const Value& b, Loc loc = Loc::current());
/// Converts to `dtype` (float to int truncates toward zero; to bool tests != 0).
Value cast(const Value& x, DType dtype, Loc loc = Loc::current());

// ---- shapes ------------------------------------------------------------------------------
/// Same elements, new shape; one dimension may be -1 (inferred).
Value reshape(const Value& x, const std::vector<std::int64_t>& shape, Loc loc = Loc::current());
/// Output axis i is input axis perm[i].
Value permute(const Value& x, const std::vector<std::int64_t>& perm, Loc loc = Loc::current());
/// Swaps two axes.
Value transpose(const Value& x, std::int64_t axis0, std::int64_t axis1, Loc loc = Loc::current());
/// Elements start, start+step, ... < end along `axis` (python semantics for negative or
/// out-of-range start/end; step >= 1).
Value slice(const Value& x, std::int64_t axis, std::int64_t start, std::int64_t end, std::int64_t step = 1,
            Loc loc = Loc::current());
/// Joins values of equal dtype and equal shape except along `axis`.
Value concat(const std::vector<Value>& values, std::int64_t axis, Loc loc = Loc::current());
/// Numpy broadcast to `shape`.
Value broadcast_to(const Value& x, const Shape& shape, Loc loc = Loc::current());
/// Inserts a size-1 axis at `axis` (which may equal rank).
Value unsqueeze(const Value& x, std::int64_t axis, Loc loc = Loc::current());
/// Removes the size-1 axis `axis`.
Value squeeze(const Value& x, std::int64_t axis, Loc loc = Loc::current());
/// Merges axes start..end (inclusive) into one.
Value flatten(const Value& x, std::int64_t start = 1, std::int64_t end = -1, Loc loc = Loc::current());

// ---- reductions (empty axes = all axes) -------------------------------------------------
/// Sum over `axes`; keepdims keeps them as size-1 axes.
Value sum(const Value& x, const Axes& axes = {}, bool keepdims = false, Loc loc = Loc::current());
/// Mean over `axes` (floating dtypes); keepdims keeps them as size-1 axes.
Value mean(const Value& x, const Axes& axes = {}, bool keepdims = false, Loc loc = Loc::current());
/// Maximum; the gradient is split evenly between tied maxima.
Value max(const Value& x, const Axes& axes = {}, bool keepdims = false, Loc loc = Loc::current());

// ---- linear algebra ----------------------------------------------------------------------
/// Options of matmul().
struct MatmulOptions {
  bool transpose_a = false;  ///< use a's last two axes swapped
  bool transpose_b = false;  ///< use b's last two axes swapped
};
/// a[..., M, K] @ b[..., K, N] -> [..., M, N]; batch axes broadcast. A rank-1 operand is a
/// vector as in numpy (its axis is removed from the result).
Value matmul(const Value& a, const Value& b, const MatmulOptions& options = {}, Loc loc = Loc::current());

// ---- neural-network ops ------------------------------------------------------------------
/// e^x / sum(e^x) along `axis` (computed stably, subtracting the maximum).
Value softmax(const Value& x, std::int64_t axis = -1, Loc loc = Loc::current());
/// log(softmax(x)) along `axis`, computed without forming softmax.
Value log_softmax(const Value& x, std::int64_t axis = -1, Loc loc = Loc::current());

/// Options of cross_entropy().
struct CrossEntropyOptions {
  std::int64_t ignore_index = -100;  ///< labels equal to this contribute nothing
  double label_smoothing = 0.0;      ///< in [0, 1), as in torch.nn.CrossEntropyLoss
};
/// Mean cross-entropy of logits[..., C] (classes along the last axis) against integer
/// labels[...] (i32 or i64). The mean is over labels that are not ignore_index; if every
/// label is ignored the result is NaN, as in PyTorch. A label outside [0, C) that is not
/// ignore_index makes the step throw trainrt::Error.
Value cross_entropy(const Value& logits, const Value& labels, const CrossEntropyOptions& options = {},
                    Loc loc = Loc::current());

/// Rows of table[V, D] picked by integer indices[...] -> [..., D]. An index outside [0, V)
/// makes the step throw trainrt::Error.
Value embedding(const Value& table, const Value& indices, Loc loc = Loc::current());

/// A (height, width) pair of a 2-D op: kernel size, stride, padding, dilation.
using Pair = std::array<std::int64_t, 2>;
/// Options of conv2d() and nn::Conv2d.
struct Conv2dOptions {
  Pair stride{1, 1};        ///< step between windows, each >= 1
  Pair padding{0, 0};       ///< zeros added on both sides of H and W
  Pair dilation{1, 1};      ///< spacing between kernel taps, each >= 1
  std::int64_t groups = 1;  ///< channel groups; C and O must be multiples of it
};
/// x[N, C, H, W] (*) weight[O, C/groups, KH, KW] (+ bias[O] if valid) -> [N, O, H', W'].
Value conv2d(const Value& x, const Value& weight, const Value& bias = {}, const Conv2dOptions& options = {},
             Loc loc = Loc::current());

/// Options of max_pool2d() and avg_pool2d().
struct Pool2dOptions {
  Pair kernel{2, 2};              ///< window size
  std::optional<Pair> stride{};   ///< defaults to kernel
  Pair padding{0, 0};             ///< added on both sides of H and W, at most half the kernel
  bool ceil_mode = false;         ///< round the output size up rather than down, as in PyTorch
  bool count_include_pad = true;  ///< avg_pool2d only
};
/// Max over windows of x[N, C, H, W]; padding acts as -infinity.
Value max_pool2d(const Value& x, const Pool2dOptions& options = {}, Loc loc = Loc::current());
/// Mean over windows of x[N, C, H, W]; count_include_pad says whether padding counts.
Value avg_pool2d(const Value& x, const Pool2dOptions& options = {}, Loc loc = Loc::current());
/// Mean over H and W: x[N, C, H, W] -> [N, C].
Value global_avg_pool2d(const Value& x, Loc loc = Loc::current());

/// Options of batch_norm() and nn::BatchNorm2d.
struct BatchNormOptions {
  double momentum = 0.1;  ///< running = (1 - momentum) * running + momentum * batch statistic
  double eps = 1e-5;      ///< added to the variance before the square root
};
/// Batch normalization over every axis but 1 of x[N, C, ...]. While training (Program::step)
/// it uses the batch's statistics and updates running_mean/running_var (state tensors of
/// shape [C], the variance unbiased as in PyTorch); while evaluating it uses the running
/// statistics. gamma and beta ([C]) may be absent.
Value batch_norm(const Value& x, const Value& gamma, const Value& beta, const Value& running_mean,
                 const Value& running_var, const BatchNormOptions& options = {}, Loc loc = Loc::current());

/// Options of layer_norm() and nn::LayerNorm.
struct LayerNormOptions {
  std::int64_t normalized_axes = 1;  ///< how many trailing axes are normalized together
  double eps = 1e-5;                 ///< added to the variance before the square root
};
/// Layer normalization over the trailing axes; gamma and beta (the trailing shape) may be absent.
Value layer_norm(const Value& x, const Value& gamma, const Value& beta, const LayerNormOptions& options = {},
                 Loc loc = Loc::current());

/// Zeroes each element with probability p and scales the rest by 1/(1-p) while training; the
/// identity while evaluating. The mask comes from Philox keyed by (seed, step, node), so it
/// is the same on every backend and after a restart.
Value dropout(const Value& x, double p, Loc loc = Loc::current());

/// Options of scaled_dot_product_attention().
struct AttentionOptions {
  Value mask{};                   ///< optional bool, broadcastable to [..., Lq, Lk]; true = attend
  bool causal = false;            ///< query i attends to keys j <= i (aligned at the start)
  std::optional<double> scale{};  ///< defaults to 1/sqrt(D)
};
/// softmax(q k^T * scale + masks) v for q[..., Lq, D], k[..., Lk, D], v[..., Lk, Dv];
/// the leading axes must be equal. A query row with no key to attend to yields zeros.
Value scaled_dot_product_attention(const Value& q, const Value& k, const Value& v, const AttentionOptions& options = {},
                                   Loc loc = Loc::current());

// ---- autodiff ------------------------------------------------------------------------------
/// Appends reverse-mode gradients of the scalar `loss` with respect to `wrt` to the graph and
/// returns them (same shapes and dtypes as `wrt`). A value that `loss` does not depend on
/// gets a zero gradient. Throws if loss is not a floating scalar, or if a value is from
/// another graph or is an integer tensor.
std::vector<Value> gradients(const Value& loss, const std::vector<Value>& wrt, Loc loc = Loc::current());

// ---- operators -----------------------------------------------------------------------------
/// `a + b`, `a - b`, `a * b`, `a / b` and `-a` are add(), sub(), mul(), div() and neg(), with
/// errors naming the line of the expression; a double operand becomes a scalar of the
/// tensor's dtype.
Value operator-(const Located& x);                  ///< neg(x)
Value operator+(const Located& a, const Value& b);  ///< add(a, b)
Value operator-(const Located& a, const Value& b);  ///< sub(a, b)
Value operator*(const Located& a, const Value& b);  ///< mul(a, b)
Value operator/(const Located& a, const Value& b);  ///< div(a, b)
Value operator+(const Located& a, double b);        ///< a + scalar b
Value operator-(const Located& a, double b);        ///< a - scalar b
Value operator*(const Located& a, double b);        ///< a * scalar b
Value operator/(const Located& a, double b);        ///< a / scalar b
Value operator+(double a, const Located& b);        ///< scalar a + b
Value operator-(double a, const Located& b);        ///< scalar a - b
Value operator*(double a, const Located& b);        ///< scalar a * b
Value operator/(double a, const Located& b);        ///< scalar a / b

}  // namespace trainrt

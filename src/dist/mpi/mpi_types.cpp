// dist/mpi/mpi_types.cpp — MPI datatypes and the user-defined f16/bf16 reductions.
#include "dist/mpi/mpi_types.h"

#include <cstdint>

#include "core/error.h"
#include "core/half.h"
#include "dist/mpi/mpi_env.h"

namespace trainrt::detail {

namespace {

struct HalfCodec {
  static float load(std::uint16_t v) noexcept { return half_to_float(v); }
  static std::uint16_t store(float f) noexcept { return float_to_half(f); }
};
struct BFloat16Codec {
  static float load(std::uint16_t v) noexcept { return bf16_to_float(v); }
  static std::uint16_t store(float f) noexcept { return float_to_bf16(f); }
};

struct Sum {
  static float apply(float a, float b) noexcept { return a + b; }
};
// max/min compare like MPI_MAX/MPI_MIN on floats: a NaN on the left side is kept.
struct Max {
  static float apply(float a, float b) noexcept { return b > a ? b : a; }
};
struct Min {
  static float apply(float a, float b) noexcept { return b < a ? b : a; }
};

/// MPI_User_function: inout[i] = Op(inout[i], in[i]) for 16-bit floats, computed in f32.
// `len` is not const: the signature is MPI_User_function's.
template <class Codec, class Op>
void combine_16bit(void* in, void* inout, int* len, MPI_Datatype*) {  // NOLINT(readability-non-const-parameter)
  const auto* a = static_cast<const std::uint16_t*>(in);
  auto* b = static_cast<std::uint16_t*>(inout);
  for (int i = 0, n = *len; i < n; ++i) b[i] = Codec::store(Op::apply(Codec::load(b[i]), Codec::load(a[i])));
}

template <class Codec>
std::array<MPI_Op, 3> create_ops() {
  std::array<MPI_Op, 3> ops{MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL};
  MPI_User_function* functions[3] = {combine_16bit<Codec, Sum>, combine_16bit<Codec, Max>, combine_16bit<Codec, Min>};
  for (int i = 0; i < 3; ++i) {
    const int code = MPI_Op_create(functions[i], /*commute=*/1, &ops[static_cast<std::size_t>(i)]);
    if (code != MPI_SUCCESS) {
      for (MPI_Op& op : ops)
        if (op != MPI_OP_NULL) MPI_Op_free(&op);
      check_mpi(code, "MPI_Op_create", "dist::mpi_communicator");
    }
  }
  return ops;
}

std::size_t op_index(dist::ReduceOp op) {
  switch (op) {
    case dist::ReduceOp::sum: return 0;
    case dist::ReduceOp::max: return 1;
    case dist::ReduceOp::min: return 2;
  }
  fail(ErrorKind::InvalidArgument, cat("dist::mpi: ReduceOp value ", static_cast<int>(op), " is not sum, max or min"));
}

}  // namespace

MPI_Datatype mpi_datatype(DType dtype) {
  switch (dtype) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    case DType::f16:
    case DType::bf16: return MPI_UINT16_T;
    case DType::i32: return MPI_INT32_T;
    case DType::i64: return MPI_INT64_T;
    case DType::boolean: return MPI_C_BOOL;
  }
  fail(ErrorKind::InvalidArgument, cat("dist::mpi: DType value ", static_cast<int>(dtype), " is not an element type"));
}

const char* reduce_op_name(dist::ReduceOp op) noexcept {
  switch (op) {
    case dist::ReduceOp::sum: return "sum";
    case dist::ReduceOp::max: return "max";
    case dist::ReduceOp::min: return "min";
  }
  return "unknown-op";
}

MpiReduceOps::MpiReduceOps() : half_(create_ops<HalfCodec>()) {
  try {
    bfloat_ = create_ops<BFloat16Codec>();
  } catch (...) {
    for (MPI_Op& op : half_) MPI_Op_free(&op);
    throw;
  }
}

MpiReduceOps::~MpiReduceOps() {
  if (released_ || mpi_finalized()) return;
  for (MPI_Op& op : half_) MPI_Op_free(&op);
  for (MPI_Op& op : bfloat_) MPI_Op_free(&op);
}

MPI_Op MpiReduceOps::get(DType dtype, dist::ReduceOp op) const {
  const std::size_t index = op_index(op);
  switch (dtype) {
    case DType::f16: return half_[index];
    case DType::bf16: return bfloat_[index];
    case DType::boolean: return op == dist::ReduceOp::min ? MPI_LAND : MPI_LOR;
    default:
      mpi_datatype(dtype);  // rejects values outside DType
      return index == 0 ? MPI_SUM : index == 1 ? MPI_MAX : MPI_MIN;
  }
}

}  // namespace trainrt::detail

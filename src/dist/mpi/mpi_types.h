// dist/mpi/mpi_types.h — trainrt element types and reductions as MPI datatypes and operations.
//
// f32, f64, i32, i64 map to MPI's own types and MPI_SUM/MAX/MIN. boolean is MPI_C_BOOL with
// logical or (sum, max) and logical and (min). f16 and bf16 travel as MPI_UINT16_T and are
// combined by user-defined operations that compute in f32 and round to nearest even.
#pragma once

#include <mpi.h>

#include <array>

#include "trainrt/dist.hpp"
#include "trainrt/dtype.hpp"

namespace trainrt::detail {

/// The MPI datatype of one element of `dtype`. Throws InvalidArgument for a value outside
/// the DType enumeration.
MPI_Datatype mpi_datatype(DType dtype);

/// Short name of `op`: "sum", "max", "min".
const char* reduce_op_name(dist::ReduceOp op) noexcept;

/// The reduction operations of one communicator: MPI's predefined ones plus six
/// user-defined ones (sum, max, min for f16 and bf16), created after MPI_Init.
class MpiReduceOps {
 public:
  /// Creates the user-defined operations. Throws Runtime when MPI_Op_create fails.
  MpiReduceOps();
  /// Frees the user-defined operations unless MPI is finalized or release() was called.
  ~MpiReduceOps();
  MpiReduceOps(const MpiReduceOps&) = delete;
  MpiReduceOps& operator=(const MpiReduceOps&) = delete;

  /// The MPI operation combining `dtype` elements with `op`. Throws InvalidArgument for a
  /// value outside the ReduceOp enumeration.
  MPI_Op get(DType dtype, dist::ReduceOp op) const;

  /// Gives up the user-defined operations without freeing them: a pending collective that
  /// will never complete may still refer to them.
  void release() noexcept { released_ = true; }

 private:
  std::array<MPI_Op, 3> half_{MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL};
  std::array<MPI_Op, 3> bfloat_{MPI_OP_NULL, MPI_OP_NULL, MPI_OP_NULL};
  bool released_ = false;
};

}  // namespace trainrt::detail

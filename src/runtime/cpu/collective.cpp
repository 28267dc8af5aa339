// runtime/cpu/collective.cpp — kernels of the collective ops: gradient buckets go through the
// Program's Communicator (host memory; MPI or in-process ranks).
//
// A bucket's tensors are copied into one flat scratch buffer, combined over the ranks in one
// call, and written back scaled (1/world averages). The copies cost a few memory passes over
// the gradients, small beside the transfer they save (one call per bucket, not per tensor).
#include <cstring>

#include "core/element.h"
#include "core/error.h"
#include "ir/internal_ops.h"
#include "runtime/cpu/kernel.h"
#include "trainrt/dist.hpp"

namespace trainrt::detail::cpu {

namespace {

/// data[0, count) *= scale.
void scale_in_place(void* data, DType dtype, std::int64_t count, double scale) {
  if (scale == 1.0) return;
  switch (dtype) {
    case DType::f32: {
      auto* p = static_cast<float*>(data);
      const auto s = static_cast<float>(scale);
      for (std::int64_t i = 0; i < count; ++i) p[i] *= s;
      return;
    }
    case DType::f64: {
      auto* p = static_cast<double*>(data);
      for (std::int64_t i = 0; i < count; ++i) p[i] *= scale;
      return;
    }
    default:
      for (std::int64_t i = 0; i < count; ++i)
        store_from_double(
            data, dtype, i,
            static_cast<double>(static_cast<float>(load_as_double(data, dtype, i)) * static_cast<float>(scale)));
  }
}

class CollectiveKernel final : public Kernel {
 public:
  explicit CollectiveKernel(const KernelEnv& env)
      : comm_(*env.comm), kind_(env.n().kind), attrs_(std::get<CollectiveAttrs>(env.n().attrs)) {
    const Node& n = env.n();
    dtype_ = env.in(0).dtype;
    elem_ = size_of(dtype_);
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      sizes_.push_back(env.in(i).shape.numel());
      total_ += sizes_.back();
    }
    if (attrs_.world != comm_.size())
      fail(ErrorKind::InvalidArgument, cat(op_name(kind_), " at ", where(n.loc.file, n.loc.line), ": built for ",
                                           attrs_.world, " ranks but the communicator has ", comm_.size()));
    if (attrs_.scale != 1.0 && !is_floating(dtype_))
      fail(ErrorKind::Unsupported,
           cat(op_name(kind_), ": a scaled collective needs a floating dtype, got ", name(dtype_)));
    block_ = collective_block(total_, attrs_.world);
    what_ = cat(op_name(kind_), " of bucket ", attrs_.bucket, " (", n.inputs.size(), " tensors, ", total_, " ",
                name(dtype_), " elements)");
  }

  std::size_t scratch_bytes() const override {
    switch (kind_) {
      case OpKind::AllReduce: return sizes_.size() == 1 ? 0 : static_cast<std::size_t>(total_) * elem_;
      case OpKind::ReduceScatter: return static_cast<std::size_t>(block_ * attrs_.world) * elem_;
      default: return 0;
    }
  }

  void run(const KernelArgs& a) override {
    try {
      switch (kind_) {
        case OpKind::AllReduce: return all_reduce(a);
        case OpKind::ReduceScatter: return reduce_scatter(a);
        case OpKind::AllGather:
          comm_.all_gather(a.in[0], a.out[0], static_cast<std::size_t>(total_), dtype_, comm_.default_timeout());
          return;
        default: check_internal(false, "collective kernel of another op");
      }
    } catch (const Error& e) {
      fail(e.kind(), cat(what_, ": ", e.what()));
    }
  }

 private:
  /// Concatenates the inputs into `flat`.
  void gather_inputs(const KernelArgs& a, std::byte* flat) const {
    for (std::size_t i = 0; i < sizes_.size(); ++i) {
      const std::size_t bytes = static_cast<std::size_t>(sizes_[i]) * elem_;
      if (a.in[i] != flat) std::memcpy(flat, a.in[i], bytes);
      flat += bytes;
    }
  }

  void all_reduce(const KernelArgs& a) {
    if (sizes_.size() == 1) {  // one tensor: in place in its output
      if (a.out[0] != a.in[0]) std::memcpy(a.out[0], a.in[0], static_cast<std::size_t>(total_) * elem_);
      comm_.all_reduce(a.out[0], static_cast<std::size_t>(total_), dtype_, dist::ReduceOp::sum,
                       comm_.default_timeout());
      scale_in_place(a.out[0], dtype_, total_, attrs_.scale);
      return;
    }
    auto* flat = static_cast<std::byte*>(a.scratch);
    gather_inputs(a, flat);
    comm_.all_reduce(flat, static_cast<std::size_t>(total_), dtype_, dist::ReduceOp::sum, comm_.default_timeout());
    scale_in_place(flat, dtype_, total_, attrs_.scale);
    for (std::size_t i = 0; i < sizes_.size(); ++i) {
      const std::size_t bytes = static_cast<std::size_t>(sizes_[i]) * elem_;
      std::memcpy(a.out[i], flat, bytes);
      flat += bytes;
    }
  }

  void reduce_scatter(const KernelArgs& a) {
    auto* flat = static_cast<std::byte*>(a.scratch);
    gather_inputs(a, flat);
    const std::size_t padded = static_cast<std::size_t>(block_ * attrs_.world) * elem_;
    const std::size_t used = static_cast<std::size_t>(total_) * elem_;
    std::memset(flat + used, 0, padded - used);
    comm_.reduce_scatter(flat, a.out[0], static_cast<std::size_t>(block_), dtype_, dist::ReduceOp::sum,
                         comm_.default_timeout());
    scale_in_place(a.out[0], dtype_, block_, attrs_.scale);
  }

  dist::Communicator& comm_;
  OpKind kind_;
  CollectiveAttrs attrs_;
  DType dtype_;
  std::size_t elem_ = 0;
  std::vector<std::int64_t> sizes_;
  std::int64_t total_ = 0, block_ = 0;
  std::string what_;
};

}  // namespace

std::unique_ptr<Kernel> make_collective_kernel(const KernelEnv& env) {
  if (env.comm == nullptr)
    fail(ErrorKind::InvalidArgument, cat(op_name(env.n().kind),
                                         ": the graph holds collectives but the Program has no "
                                         "communicator (CompileOptions::data_parallel)"));
  return std::make_unique<CollectiveKernel>(env);
}

}  // namespace trainrt::detail::cpu

// dist/nccl/nccl_unavailable.cpp — dist::nccl_communicator() in a build without the CUDA
// headers (TRAINRT_CUDA=OFF or no toolkit found): the function exists and says why it cannot.
#include "core/error.h"
#include "trainrt/dist_nccl.hpp"

namespace trainrt::dist {

namespace {

[[noreturn]] void unavailable(const Communicator& bootstrap, int device) {
  detail::fail(ErrorKind::Unsupported,
               detail::cat("nccl_communicator (rank ", bootstrap.rank(), ", device ", device,
                           "): this libtrainrt was built without CUDA support (configure with TRAINRT_CUDA=ON and "
                           "the CUDA toolkit's headers)"));
}

}  // namespace

std::shared_ptr<Communicator> nccl_communicator(Communicator& bootstrap, int device, std::chrono::milliseconds) {
  unavailable(bootstrap, device);
}

std::shared_ptr<Communicator> nccl_communicator(Communicator& bootstrap, int device, void*, std::chrono::milliseconds) {
  unavailable(bootstrap, device);
}

}  // namespace trainrt::dist

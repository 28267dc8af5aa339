// runtime/cuda/module.cpp — cuModuleLoadData, cuModuleGetFunction and cuLaunchKernel.
#include "runtime/cuda/module.h"

#include <utility>

#include "core/error.h"

namespace trainrt::detail {

std::string device_image(const CudaDevice& device, const std::string& source, const std::string& name) {
  return build_cuda_image(source, name, device.target());
}

CudaModule::CudaModule(const CudaDevice& device, const std::string& image, std::string label)
    : device_(device), label_(std::move(label)) {
  const CudaDriver& d = device_.driver();
  const ScopedContext scope(d, device_.context());
  // std::string keeps a NUL after its bytes, which PTX text needs and a CUBIN ignores.
  d.check(d.module_load_data(&module_, image.c_str()), cat("loading ", label_, " on ", device_.name()));
}

CudaModule::~CudaModule() {
  release_in_context(device_, [&](const CudaDriver& d) { (void)d.module_unload(module_); });
}

void* CudaModule::function(const std::string& name) const {
  const CudaDriver& d = device_.driver();
  void* f = nullptr;
  const int status = d.module_get_function(&f, module_, name.c_str());
  if (status != kCudaSuccess)
    fail(ErrorKind::NotFound, cat("kernel '", name, "' is not in ", label_, ": ", d.describe(status)));
  return f;
}

void CudaModule::launch(void* function, const LaunchShape& s, void* stream, void** params,
                        const std::vector<CudaAccess>& accesses) const {
  const CudaDriver& d = device_.driver();
  const ScopedContext scope(d, device_.context());
  if (!accesses.empty()) d.declare(stream, accesses.data(), accesses.size(), label_.c_str());
  d.check(d.launch_kernel(function, s.grid_x, s.grid_y, s.grid_z, s.block_x, s.block_y, s.block_z, s.shared_bytes,
                          stream, params, nullptr),
          cat("launching a kernel of ", label_, " on ", device_.name()));
}

}  // namespace trainrt::detail

#include "core/error.h"
#include "kernels/kernels.h"

namespace chart::kernels {

bool cuda_kernels_built() {
#ifdef CHART_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

std::string cuda_kernel_archs() {
#ifdef CHART_CUDA_ARCHS
  return CHART_CUDA_ARCHS;
#else
  return "";
#endif
}

#ifndef CHART_HAVE_CUDA
void fill_cuda(float*, float, long) {
  throw Error("this chart was built without CUDA kernels (no nvcc at configure time)",
              "rebuild on a machine with the CUDA toolkit: scripts/setup.sh");
}
#endif

}  // namespace chart::kernels

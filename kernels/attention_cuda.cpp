// The CUDA side of kernels::attention and decode_attention: the flash attention kernels (kernels/flash_attention_*.cu)
// behind the autograd wrapper of kernels/flash_autograd.h, launched on the current CUDA stream of
// the inputs' device, and the decode kernel. Built only when nvcc was found.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "kernels/attention_dispatch.h"
#include "kernels/decode_launch.h"
#include "kernels/flash_attention.h"
#include "kernels/flash_autograd.h"

namespace chart::kernels {
namespace {

struct CudaLauncher {
  static const char* forward(const AttnParams& p, bool sm90, const torch::Tensor& on) {
    c10::cuda::CUDAGuard guard(on.device());
    void* stream = at::cuda::getCurrentCUDAStream().stream();
    return sm90 ? flash_attention_forward_sm90(p, stream) : flash_attention_forward(p, stream);
  }
  static const char* backward(const AttnParams& p, const torch::Tensor& on) {
    c10::cuda::CUDAGuard guard(on.device());
    return flash_attention_backward(p, at::cuda::getCurrentCUDAStream().stream());
  }
};

}  // namespace

int cuda_compute_capability(torch::Device device) {
  const auto* props = at::cuda::getDeviceProperties(device.has_index() ? device.index() : c10::cuda::current_device());
  return props->major * 10 + props->minor;
}

torch::Tensor attention_cuda(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& segments, const torch::Tensor& ages, const torch::Tensor& slopes,
                             AttentionPath::Kind kind) {
  TORCH_CHECK(kind != AttentionPath::kReference, "attention_cuda: called for the reference path");
  return flash_attention<CudaLauncher>(q, k, v, segments, ages, slopes, kind == AttentionPath::kCudaSm90);
}

torch::Tensor decode_attention_cuda(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                    const torch::Tensor& positions, int64_t end, const torch::Tensor& valid,
                                    const torch::Tensor& ages, const torch::Tensor& slopes) {
  c10::cuda::CUDAGuard guard(q.device());
  const int sms = at::cuda::getDeviceProperties(c10::cuda::current_device())->multiProcessorCount;
  DecodeTensors t = decode_inputs(q, k, v, positions, end, valid, ages, slopes, torch::Tensor(), 0, sms);
  check_launch(decode_attention(decode_params(t), at::cuda::getCurrentCUDAStream().stream()), "decode attention");
  return t.o;
}

}  // namespace chart::kernels

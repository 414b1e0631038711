// Built with CHART_SIMT_EMULATION, so flash_attention.h declares the emulated kernels
// (kernels/flash_attention_emulated.cpp).
#include "kernels/attention_emulated.h"

#include "kernels/flash_attention.h"
#include "kernels/flash_autograd.h"

namespace chart::kernels {
namespace {

struct EmulatedLauncher {
  static const char* forward(const AttnParams& p, bool sm90, const torch::Tensor& on) {
    TORCH_CHECK(on.is_cpu(), "attention_emulated: the emulator runs on CPU tensors");
    return sm90 ? flash_attention_forward_sm90(p, nullptr) : flash_attention_forward(p, nullptr);
  }
  static const char* backward(const AttnParams& p, const torch::Tensor& on) {
    TORCH_CHECK(on.is_cpu(), "attention_emulated: the emulator runs on CPU tensors");
    return flash_attention_backward(p, nullptr);
  }
};

}  // namespace

torch::Tensor attention_emulated(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                 const torch::Tensor& segments, const torch::Tensor& ages, const torch::Tensor& slopes,
                                 bool sm90) {
  return flash_attention<EmulatedLauncher>(q, k, v, segments, ages, slopes, sm90);
}

}  // namespace chart::kernels

// Built with CHART_SIMT_EMULATION, so flash_attention.h declares the emulated kernels
// (kernels/flash_attention_emulated.cpp).
#include "kernels/attention_emulated.h"

#include <limits>

#include "kernels/decode_launch.h"
#include "kernels/flash_attention.h"
#include "kernels/flash_autograd.h"
#include "kernels/flash_launch.h"

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

torch::Tensor decode_attention_emulated(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                        const torch::Tensor& positions, int64_t end, const torch::Tensor& valid,
                                        const torch::Tensor& ages, const torch::Tensor& slopes,
                                        const torch::Tensor& block_table, int64_t splits) {
  TORCH_CHECK(q.is_cpu(), "decode_attention_emulated: the emulator runs on CPU tensors");
  DecodeTensors t = decode_inputs(q, k, v, positions, end, valid, ages, slopes, block_table, splits, 132);
  t.o.fill_(std::numeric_limits<float>::quiet_NaN());  // a row or head the kernel forgets shows
  if (t.o_split.defined()) t.o_split.fill_(std::numeric_limits<float>::quiet_NaN());
  check_launch(decode_attention(decode_params(t), nullptr), "decode attention (emulated)");
  return t.o;
}

}  // namespace chart::kernels

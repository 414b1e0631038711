// The start-up self-check of the attention kernels: on a GPU, before the first step trusts them,
// the kernels and the reference run on a slice of the real batch (forward and backward) and must
// agree within the dtype's tolerance. The candidate is a parameter so that the check itself is
// tested on a CPU with the emulated kernels (tests/test_attention_emulated.cpp).
#pragma once
#include <torch/types.h>

#include <functional>
#include <string>

namespace chart::kernels {

using AttentionFn = std::function<torch::Tensor(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                                const torch::Tensor& segments, const torch::Tensor& ages,
                                                const torch::Tensor& slopes)>;

struct AttentionCheck {
  double output_error = 0;    // max |candidate - reference| / max |reference|, over the output
  double gradient_error = 0;  // the same, worst over dq, dk, dv (and dslopes with a time bias)
  double tolerance = 0;       // of the output, for the inputs' dtype
  double gradient_tolerance = 0;
  bool ok() const { return output_error <= tolerance && gradient_error <= gradient_tolerance; }
  // "output error 3.1e-03 (tolerance 3.0e-02), gradient error 5.2e-03 (tolerance 1.2e-01)"
  std::string describe() const;
};

// Runs `candidate` and the fp32 reference on the first row and at most max_len positions of the
// inputs (attention's arguments, as the model passes them), with the same upstream gradient.
AttentionCheck compare_attention(const AttentionFn& candidate, const torch::Tensor& q, const torch::Tensor& k,
                                 const torch::Tensor& v, const torch::Tensor& segments, const torch::Tensor& ages,
                                 const torch::Tensor& slopes, int64_t max_len = 256);

// Throws chart::Error naming both errors and what to do when the check fails.
void require_attention_agrees(const AttentionCheck& check, const std::string& path_name);

}  // namespace chart::kernels

// Which implementation kernels::attention() runs, and why: one decision (choose_attention_path)
// from the inputs, the build, the GPU, the mode asked for (model.attention: auto, kernels,
// reference) and two environment variables, each "1" or "0" (or unset):
//   CHART_ATTENTION_REFERENCE=1   the LibTorch reference even where the kernels apply
//   CHART_ATTENTION_SM90=1        the wgmma forward on sm_90 GPUs (opt-in until a Hopper GPU has
//                                 run its tests); the backward is the mma.sync kernel either way
// Both builds see this header; only a CUDA build can choose a CUDA path.
#pragma once
#include <torch/types.h>

#include <cstdlib>
#include <functional>
#include <string>

namespace chart::kernels {

// model.attention. kKernels where the kernels cannot run is an error saying why, not a fallback.
enum class AttentionMode { kAuto, kKernels, kReference };
AttentionMode attention_mode(const std::string& name);  // "auto" | "kernels" | "reference"

struct AttentionPath {
  enum Kind { kReference, kCudaSm80, kCudaSm90 };
  Kind kind = kReference;
  std::string reason;  // why, e.g. "fp32; the kernels take bf16/fp16"
  bool cuda() const { return kind != kReference; }
};

// "LibTorch reference", "CUDA kernels, mma.sync forward and backward", ...
const char* path_name(AttentionPath::Kind kind);

// The environment switches above; anything but unset, "0" or "1" throws chart::Error naming the
// variable. getenv is a parameter for the tests.
struct AttentionSwitches {
  bool reference = false;  // CHART_ATTENTION_REFERENCE=1
  bool sm90 = false;       // CHART_ATTENTION_SM90=1
};
AttentionSwitches attention_switches(const std::function<const char*(const char*)>& getenv = ::getenv);

// Everything the choice depends on, so that every branch can be tested on any machine.
struct AttentionFacts {
  torch::Device device = torch::kCPU;  // q's
  torch::ScalarType dtype = torch::kFloat32;
  int64_t head_dim = 0;
  bool kernels_built = false;  // this binary has the CUDA kernels
  int compute_capability = 0;  // of device's GPU, 10 * major + minor (80, 90); 0 for a CPU tensor
  AttentionSwitches switches;
  AttentionMode mode = AttentionMode::kAuto;
};
// Throws chart::Error (naming the reason) when mode is kKernels and the kernels cannot run.
AttentionPath choose_attention_path(const AttentionFacts& facts);

// The facts of this machine now (build, GPU, environment) for queries of this device, dtype and
// head dim.
AttentionFacts machine_facts(torch::Device device, torch::ScalarType dtype, int64_t head_dim, AttentionMode mode);

// The path attention() takes for queries of this device, dtype and head dim, on this machine now;
// the second form reads them from q [B, H, L, D].
AttentionPath attention_path(torch::Device device, torch::ScalarType dtype, int64_t head_dim,
                             AttentionMode mode = AttentionMode::kAuto);
AttentionPath attention_path(const torch::Tensor& q, AttentionMode mode = AttentionMode::kAuto);
// One line for the log, e.g. "attention: LibTorch reference, for fp32 head dim 64 on cpu (cpu tensor)".
std::string describe_attention_path(torch::Device device, torch::ScalarType dtype, int64_t head_dim,
                                    AttentionMode mode = AttentionMode::kAuto);

// The path decode_attention() takes for one query token per row: the same facts, and the query
// heads per KV head the decode kernel is built for (1, 2, 4, 8). kKernels where it cannot run
// throws, saying why. describe_decode_path is its line for the log.
AttentionPath choose_decode_path(const AttentionFacts& facts, int64_t n_heads, int64_t n_kv_heads);
AttentionPath decode_path(torch::Device device, torch::ScalarType dtype, int64_t head_dim, int64_t n_heads,
                          int64_t n_kv_heads, AttentionMode mode = AttentionMode::kAuto);
std::string describe_decode_path(torch::Device device, torch::ScalarType dtype, int64_t head_dim, int64_t n_heads,
                                 int64_t n_kv_heads, AttentionMode mode = AttentionMode::kAuto);

#ifdef CHART_HAVE_CUDA
// The CUDA build's side (kernels/attention_cuda.cpp).
int cuda_compute_capability(torch::Device device);
// The kernels behind autograd; kind is kCudaSm80 or kCudaSm90 (which forward).
torch::Tensor attention_cuda(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const torch::Tensor& segments, const torch::Tensor& ages, const torch::Tensor& slopes,
                             AttentionPath::Kind kind);
// The decode kernel on the current stream (kernels/decode_attention.h; arguments as
// decode_attention's).
torch::Tensor decode_attention_cuda(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                    const torch::Tensor& positions, int64_t end, const torch::Tensor& valid,
                                    const torch::Tensor& ages, const torch::Tensor& slopes);
#endif

}  // namespace chart::kernels

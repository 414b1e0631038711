#include "kernels/attention_dispatch.h"

#include <fmt/format.h>

#include "core/error.h"
#include "kernels/decode_attention.h"
#include "kernels/flash_attention.h"
#include "kernels/kernels.h"

namespace chart::kernels {
namespace {

std::string dtype_name(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return "fp32";
    case torch::kFloat64: return "fp64";
    case torch::kBFloat16: return "bf16";
    case torch::kFloat16: return "fp16";
    default: return c10::toString(t);
  }
}

// Unset: false; "1" or "0"; anything else is a mistake worth stopping for, not a guess.
bool env_switch(const std::function<const char*(const char*)>& getenv, const char* name, const char* when_on,
                const char* when_off) {
  const char* v = getenv(name);
  if (v == nullptr) return false;
  const std::string s = v;
  if (s == "1" || s == "0") return s == "1";
  throw Error(fmt::format("{}='{}': expected 1 or 0", name, s),
              fmt::format("set {}=1 for {}, or 0 (or unset it) for {}", name, when_on, when_off));
}

}  // namespace

const char* path_name(AttentionPath::Kind kind) {
  switch (kind) {
    case AttentionPath::kCudaSm80: return "CUDA kernels, mma.sync forward and backward";
    case AttentionPath::kCudaSm90: return "CUDA kernels, wgmma forward and mma.sync backward";
    default: return "LibTorch reference";
  }
}

AttentionMode attention_mode(const std::string& name) {
  if (name == "auto") return AttentionMode::kAuto;
  if (name == "kernels") return AttentionMode::kKernels;
  if (name == "reference") return AttentionMode::kReference;
  throw Error(fmt::format("model.attention: '{}' is not one of auto, kernels, reference", name));
}

AttentionSwitches attention_switches(const std::function<const char*(const char*)>& getenv) {
  AttentionSwitches s;
  s.reference = env_switch(getenv, "CHART_ATTENTION_REFERENCE", "the LibTorch reference attention",
                           "the CUDA kernels where they apply");
  s.sm90 = env_switch(getenv, "CHART_ATTENTION_SM90", "the wgmma forward on sm_90 GPUs", "the mma.sync forward");
  return s;
}

namespace {

AttentionPath choose_by_facts(const AttentionFacts& f) {
  using P = AttentionPath;
  if (!f.device.is_cuda()) return {P::kReference, fmt::format("{} tensor", c10::DeviceTypeName(f.device.type()))};
  if (!f.kernels_built) return {P::kReference, "a build without the CUDA kernels: no nvcc at configure time"};
  if (f.switches.reference) return {P::kReference, "CHART_ATTENTION_REFERENCE=1"};
  if (f.dtype != torch::kBFloat16 && f.dtype != torch::kFloat16)
    return {P::kReference, dtype_name(f.dtype) + "; the kernels take bf16/fp16"};
  if (!flash_head_dim_supported(f.head_dim))
    return {P::kReference, fmt::format("head dim {}; the kernels take 64 and 128", f.head_dim)};
  const std::string arch = fmt::format("sm_{}", f.compute_capability);
  if (f.compute_capability < 80) return {P::kReference, arch + "; the kernels need sm_80 or newer"};
  // The wgmma kernel is sm_90a machine code, which runs on compute capability 9.0 alone.
  if (f.compute_capability == 90)
    return f.switches.sm90 ? P{P::kCudaSm90, "sm_90 with CHART_ATTENTION_SM90=1"}
                           : P{P::kCudaSm80, "sm_90 without CHART_ATTENTION_SM90=1 (the wgmma forward is opt-in)"};
  if (f.switches.sm90) return {P::kCudaSm80, arch + "; CHART_ATTENTION_SM90=1 applies to sm_90 only"};
  return {P::kCudaSm80, arch};
}

}  // namespace

AttentionPath choose_attention_path(const AttentionFacts& f) {
  if (f.mode == AttentionMode::kReference) return {AttentionPath::kReference, "model.attention=reference"};
  AttentionPath p = choose_by_facts(f);
  if (f.mode == AttentionMode::kKernels && !p.cuda())
    throw Error(fmt::format("model.attention=kernels, but the CUDA kernels cannot run here: {}", p.reason),
                "set model.attention=auto to run the LibTorch reference where the kernels do not apply");
  return p;
}

AttentionFacts machine_facts(torch::Device device, torch::ScalarType dtype, int64_t head_dim, AttentionMode mode) {
  AttentionFacts f;
  f.mode = mode;
  f.device = device;
  f.dtype = dtype;
  f.head_dim = head_dim;
  f.kernels_built = cuda_kernels_built();
  f.switches = attention_switches();
#ifdef CHART_HAVE_CUDA
  if (device.is_cuda()) f.compute_capability = cuda_compute_capability(device);
#endif
  return f;
}

AttentionPath attention_path(torch::Device device, torch::ScalarType dtype, int64_t head_dim, AttentionMode mode) {
  return choose_attention_path(machine_facts(device, dtype, head_dim, mode));
}

AttentionPath attention_path(const torch::Tensor& q, AttentionMode mode) {
  return attention_path(q.device(), q.scalar_type(), q.dim() > 0 ? q.size(-1) : 0, mode);
}

std::string describe_attention_path(torch::Device device, torch::ScalarType dtype, int64_t head_dim,
                                    AttentionMode mode) {
  const AttentionPath p = attention_path(device, dtype, head_dim, mode);
  return fmt::format("attention: {}, for {} head dim {} on {} ({})", path_name(p.kind), dtype_name(dtype), head_dim,
                     device.str(), p.reason);
}

AttentionPath choose_decode_path(const AttentionFacts& f, int64_t n_heads, int64_t n_kv_heads) {
  AttentionPath p = choose_attention_path(f);  // throws for kKernels that cannot run
  const int64_t g = n_kv_heads > 0 && n_heads % n_kv_heads == 0 ? n_heads / n_kv_heads : 0;
  if (!p.cuda() || decode_group_supported(g)) return p;
  const std::string why = fmt::format("{} query heads over {} KV heads; the decode kernel takes 1, 2, 4 or 8 per KV head",
                                      n_heads, n_kv_heads);
  if (f.mode == AttentionMode::kKernels)
    throw Error("model.attention=kernels, but the decode kernel cannot run here: " + why,
                "set model.attention=auto to decode on the LibTorch reference");
  return {AttentionPath::kReference, why};
}

AttentionPath decode_path(torch::Device device, torch::ScalarType dtype, int64_t head_dim, int64_t n_heads,
                          int64_t n_kv_heads, AttentionMode mode) {
  return choose_decode_path(machine_facts(device, dtype, head_dim, mode), n_heads, n_kv_heads);
}

std::string describe_decode_path(torch::Device device, torch::ScalarType dtype, int64_t head_dim, int64_t n_heads,
                                 int64_t n_kv_heads, AttentionMode mode) {
  const AttentionPath p = decode_path(device, dtype, head_dim, n_heads, n_kv_heads, mode);
  return fmt::format("decode attention: {}, for {} head dim {}, {} query heads over {} KV heads on {} ({})",
                     p.cuda() ? "CUDA decode kernel (split-K)" : "LibTorch reference", dtype_name(dtype), head_dim,
                     n_heads, n_kv_heads, device.str(), p.reason);
}

}  // namespace chart::kernels

// The attention kernels' own source (flash attention and decode), compiled as C++ for the CPU SIMT emulator
// (CHART_SIMT_EMULATION; kernels/simt_emulator.h) so that tests run them without a GPU.
#include "kernels/flash_attention_fwd.cu"
#include "kernels/flash_attention_bwd.cu"
#include "kernels/flash_attention_fwd_sm90.cu"
#include "kernels/decode_attention.cu"

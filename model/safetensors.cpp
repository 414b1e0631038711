#include "model/safetensors.h"
#include "model/safetensors_layout.h"

#include <torch/torch.h>

#include <cstring>
#include <fstream>
#include <limits>
#include <set>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"

namespace chart {
namespace {

struct DtypeInfo {
  const char* name;
  torch::ScalarType type;
  size_t bytes;
};
const DtypeInfo kDtypes[] = {
    {"F64", torch::kFloat64, 8}, {"F32", torch::kFloat32, 4}, {"F16", torch::kFloat16, 2},
    {"BF16", torch::kBFloat16, 2}, {"I64", torch::kInt64, 8}, {"I32", torch::kInt32, 4},
    {"I16", torch::kInt16, 2}, {"I8", torch::kInt8, 1}, {"U8", torch::kUInt8, 1},
    {"BOOL", torch::kBool, 1}};

const DtypeInfo* dtype_by_type(torch::ScalarType t) {
  for (const auto& d : kDtypes)
    if (d.type == t) return &d;
  return nullptr;
}
const DtypeInfo* dtype_by_name(const std::string& n) {
  for (const auto& d : kDtypes)
    if (n == d.name) return &d;
  return nullptr;
}

}  // namespace

std::string safetensors_header(const NamedTensors& tensors, std::map<std::string, std::string> metadata) {
  metadata["format"] = "pt";
  Json h;  // compact: the metadata, then the tensors in the order given
  h["__metadata__"] = metadata;
  std::set<std::string> names = {"__metadata__"};
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (!names.insert(name).second) fail("safetensors: two tensors named '{}' (or one named like the metadata)", name);
    const DtypeInfo* d = dtype_by_type(t.scalar_type());
    if (!d) fail("safetensors: tensor '{}' has unsupported dtype {}", name, c10::toString(t.scalar_type()));
    uint64_t bytes = static_cast<uint64_t>(t.numel()) * d->bytes;
    Json& e = h[name];
    e["dtype"] = d->name;
    e["shape"] = t.sizes().vec();
    e["data_offsets"] = {offset, offset + bytes};
    offset += bytes;
  }
  std::string header = h.dump(-1, ' ', false, Json::error_handler_t::replace);
  while ((header.size() + 8) % 8 != 0) header += ' ';  // align the data to 8 bytes
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header;
}

std::string safetensors_bytes(const NamedTensors& tensors, std::map<std::string, std::string> metadata) {
  std::string out = safetensors_header(tensors, std::move(metadata));
  for (const auto& [name, t] : tensors) {
    auto c = t.detach().to(torch::kCPU).contiguous();
    out.append(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
  }
  return out;
}

void save_safetensors(const std::filesystem::path& path, const NamedTensors& tensors,
                      std::map<std::string, std::string> metadata) {
  write_file_atomic(path, safetensors_bytes(tensors, std::move(metadata)));
}

Safetensors parse_safetensors(const std::string& bytes, const std::string& name) {
  SafetensorsLayout layout = parse_safetensors_layout(bytes, name);
  Safetensors out;
  out.metadata = std::move(layout.metadata);
  const char* data = bytes.data() + layout.data_start;
  for (const auto& e : layout.tensors) {
    auto t = torch::empty(e.shape, torch::dtype(dtype_by_name(e.dtype)->type));
    if (e.numel) std::memcpy(t.data_ptr(), data + e.begin, e.end - e.begin);
    out.tensors[e.name] = t;
  }
  return out;
}

Safetensors load_safetensors(const std::filesystem::path& path) {
  return parse_safetensors(read_file(path), path.string());
}

SafetensorsLayout read_safetensors_layout(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open {}", path.string());
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) fail("cannot stat {}: {}", path.string(), ec.message());
  std::string head(8, '\0');
  in.read(head.data(), 8);
  uint64_t n = 0;
  for (int i = 0; i < 8 && in; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(head[i])) << (8 * i);
  if (in && size >= 8 && n <= size - 8 && n <= (100u << 20)) {  // else the layout check below names the problem
    head.resize(8 + n);
    in.read(head.data() + 8, static_cast<std::streamsize>(n));
  }
  if (!in) head.resize(static_cast<size_t>(std::max<std::streamsize>(0, in.gcount())));
  return parse_safetensors_layout(head, size, path.string());
}

torch::Tensor read_safetensors_elements(const std::filesystem::path& path, const SafetensorsLayout& layout,
                                        const SafetensorsEntry& e, int64_t from, int64_t to) {
  if (from < 0 || to < from || static_cast<uint64_t>(to) > e.numel)
    fail("{}: elements [{}, {}) of tensor '{}' ({} elements) do not exist", path.string(), from, to, e.name, e.numel);
  auto t = torch::empty({to - from}, torch::dtype(dtype_by_name(e.dtype)->type));
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(layout.data_start + e.begin + static_cast<uint64_t>(from) * e.element_size));
  in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>((to - from) * e.element_size));
  if (!in) fail("{}: cannot read elements [{}, {}) of tensor '{}' (truncated?)", path.string(), from, to, e.name);
  return t;
}

}  // namespace chart

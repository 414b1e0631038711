#include "train/distributed/launch_env.h"

#include <cstdlib>
#include <string>

#include "core/error.h"

namespace chart {
namespace {

int env_int(const std::function<const char*(const char*)>& getenv, const char* name, const char* launcher) {
  const char* v = getenv(name);
  if (!v || !*v)
    throw Error(fmt::format("{} is not set, but {} launched this process", name, launcher),
                "torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; srun sets SLURM_PROCID, "
                "SLURM_NTASKS, SLURM_LOCALID: set the missing one, or launch as docs/scaling.md shows");
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  if (*end || n < 0 || n > (1 << 24)) fail("{}={} is not a non-negative integer", name, v);
  return static_cast<int>(n);
}

}  // namespace

std::string first_slurm_host(const std::string& nodelist) {
  // The first entry ends at a comma outside brackets.
  size_t end = 0;
  int depth = 0;
  for (; end < nodelist.size(); ++end) {
    if (nodelist[end] == '[') ++depth;
    if (nodelist[end] == ']') --depth;
    if (nodelist[end] == ',' && depth == 0) break;
  }
  std::string first = nodelist.substr(0, end);
  auto open = first.find('[');
  if (open == std::string::npos) return first;
  // prefix[003-005,9]suffix -> prefix003suffix
  auto close = first.find(']', open);
  if (close == std::string::npos) fail("SLURM_JOB_NODELIST={}: unbalanced '['", nodelist);
  std::string range = first.substr(open + 1, close - open - 1);
  range = range.substr(0, range.find(','));
  range = range.substr(0, range.find('-'));
  return first.substr(0, open) + range + first.substr(close + 1);
}

LaunchEnv launch_env(const std::function<const char*(const char*)>& getenv) {
  LaunchEnv e;
  auto has = [&](const char* n) { return getenv(n) && *getenv(n); };
  if (has("RANK") || has("WORLD_SIZE") || has("LOCAL_RANK")) {
    e.launcher = "torchrun";
    e.rank = env_int(getenv, "RANK", "torchrun (RANK, WORLD_SIZE or LOCAL_RANK is set)");
    e.world_size = env_int(getenv, "WORLD_SIZE", "torchrun (RANK, WORLD_SIZE or LOCAL_RANK is set)");
    e.local_rank = has("LOCAL_RANK") ? env_int(getenv, "LOCAL_RANK", "torchrun") : 0;
    if (!has("MASTER_ADDR"))
      throw Error("MASTER_ADDR is not set, but RANK/WORLD_SIZE are",
                  "set MASTER_ADDR to the host of rank 0 (torchrun sets it), e.g. MASTER_ADDR=127.0.0.1");
    e.master_addr = getenv("MASTER_ADDR");
    e.master_port = env_int(getenv, "MASTER_PORT", "torchrun (RANK, WORLD_SIZE or LOCAL_RANK is set)");
    // torchrun's agent serves a TCPStore on MASTER_PORT itself; workers join it as clients.
    e.agent_store = has("TORCHELASTIC_USE_AGENT_STORE") &&
                    std::string(getenv("TORCHELASTIC_USE_AGENT_STORE")) == "True";
    e.store_prefix = std::string("chart/") + (has("TORCHELASTIC_RESTART_COUNT") ? getenv("TORCHELASTIC_RESTART_COUNT") : "0");
  } else if (has("SLURM_PROCID") && (has("SLURM_STEP_NUM_TASKS") || has("SLURM_NTASKS"))) {
    // srun: one task per rank. (A batch script run without srun has no SLURM_STEP_NUM_TASKS and
    // SLURM_NTASKS of the whole allocation; it is started as one process, so a world of 1.)
    e.launcher = "slurm";
    e.rank = env_int(getenv, "SLURM_PROCID", "srun");
    e.world_size = env_int(getenv, has("SLURM_STEP_NUM_TASKS") ? "SLURM_STEP_NUM_TASKS" : "SLURM_NTASKS", "srun");
    if (!has("SLURM_STEP_NUM_TASKS") && e.world_size > 1 && e.rank == 0 && !has("SLURM_STEP_ID")) {
      e = LaunchEnv{};  // the batch script itself, not an srun task
      return e;
    }
    e.local_rank = has("SLURM_LOCALID") ? env_int(getenv, "SLURM_LOCALID", "srun") : 0;
    if (has("MASTER_ADDR")) {
      e.master_addr = getenv("MASTER_ADDR");
    } else if (has("SLURM_JOB_NODELIST") || has("SLURM_NODELIST")) {
      e.master_addr = first_slurm_host(getenv(has("SLURM_JOB_NODELIST") ? "SLURM_JOB_NODELIST" : "SLURM_NODELIST"));
    } else {
      throw Error("neither MASTER_ADDR nor SLURM_JOB_NODELIST is set under srun",
                  "export MASTER_ADDR=<host of rank 0> (scripts/launch_slurm.sh does)");
    }
    e.master_port = has("MASTER_PORT") ? env_int(getenv, "MASTER_PORT", "srun") : 29500;
    e.store_prefix = std::string("chart/") + (has("SLURM_STEP_ID") ? getenv("SLURM_STEP_ID") : "0");
  } else {
    return e;
  }
  if (e.world_size < 1) fail("WORLD_SIZE is {}: it must be at least 1", e.world_size);
  if (e.rank >= e.world_size)
    throw Error(fmt::format("RANK={} is not below WORLD_SIZE={}", e.rank, e.world_size),
                "ranks are numbered 0 .. WORLD_SIZE-1");
  if (e.master_port < 1 || e.master_port > 65535) fail("MASTER_PORT={} is not a TCP port (1-65535)", e.master_port);
  return e;
}

}  // namespace chart

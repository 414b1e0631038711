// Who this process is (rank) among how many (world size), read from the environment torchrun
// or SLURM's srun sets. A process started without those variables is world size 1.
#pragma once
#include <cstdlib>
#include <functional>
#include <string>

namespace chart {

// What the launcher told this process.
struct LaunchEnv {
  std::string launcher = "none";  // none | torchrun | slurm
  int rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr;
  int master_port = 0;
  bool agent_store = false;  // torchrun's agent already serves the store at master_addr:port
  std::string store_prefix;  // keys of this attempt (torchrun restarts reuse the agent's store)
};

// From torchrun's RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT, or else srun's
// SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID with MASTER_ADDR defaulting to the first host of
// SLURM_JOB_NODELIST (and MASTER_PORT to 29500). getenv is a parameter for the tests. Throws
// chart::Error naming a missing or malformed variable.
LaunchEnv launch_env(const std::function<const char*(const char*)>& getenv = ::getenv);

// The first host of a SLURM host list: "gpu[003-005,9],cpu1" -> "gpu003".
std::string first_slurm_host(const std::string& nodelist);

}  // namespace chart

#!/usr/bin/env bash
# Data-parallel pretraining under SLURM: one task per GPU, every task runs build/chart directly
# (no torchrun); chart reads SLURM_PROCID, SLURM_NTASKS and SLURM_LOCALID (docs/scaling.md).
#
#   sbatch --nodes=4 --ntasks-per-node=8 --gpus-per-node=8 scripts/launch_slurm.sh \
#       configs/base.yaml --set data.dir=/shared/tokens --set run.dir=/shared/runs/base
#   sbatch ... scripts/launch_slurm.sh configs/base.yaml ... --resume auto   # after a preemption
#
# run.dir must be on storage every node shares. Extra sbatch options (partition, account, time)
# go on the sbatch command line. Inside an existing allocation, `bash scripts/launch_slurm.sh ...`
# does the same.
#SBATCH --job-name=chart-train
#SBATCH --signal=USR1@120
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
[ -n "${SLURM_JOB_ID:-}" ] || { echo "launch_slurm.sh: not inside a SLURM job (use sbatch or salloc)" >&2; exit 2; }
[ $# -ge 1 ] || { echo "usage: sbatch [options] scripts/launch_slurm.sh CONFIG [--set k=v]... [--resume auto]" >&2; exit 2; }

# Rank 0 runs on the first node of the allocation and serves the rendezvous store there.
export MASTER_ADDR=${MASTER_ADDR:-$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)}
# A port derived from the job id, so two jobs sharing a node do not collide.
export MASTER_PORT=${MASTER_PORT:-$(( 20000 + SLURM_JOB_ID % 20000 ))}
chart=${CHART_BINARY:-build/chart}
echo "launch_slurm.sh: ${SLURM_NTASKS:-?} ranks on ${SLURM_JOB_NUM_NODES:-?} node(s), rendezvous $MASTER_ADDR:$MASTER_PORT" >&2

# SIGUSR1 (sent 120 s before the time limit by --signal above) reaches every task: each rank
# saves and all stop at the same step; resume with --resume auto.
# --kill-on-bad-exit ends the others at once when one rank fails; chart's own watchdog
# (dist.timeout_s) covers a rank that hangs.
srun --kill-on-bad-exit=1 --cpu-bind=none "$chart" train "$@" &
wait $!

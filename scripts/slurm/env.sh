# Settings of axcenter's Slurm test cluster (scripts/slurm), sourced by install.sh,
# start.sh and stop.sh. Every knob can be set in the environment first.
#
# One host, AXC_SLURM_NODES slurmd daemons with AXC_SLURM_GPUS fake GPUs each, a
# slurmdbd on a private MariaDB (so sacct answers, as at a site), a private munged: all
# under AXC_SLURM_DIR, all bound to 127.0.0.1, none of it in /etc. Modelled on
# ../shared/peers/slurm (which has no accounting).

: "${AXC_SLURM_DIR:=/tmp/axc-slurm}"
: "${AXC_SLURM_NODES:=4}"
: "${AXC_SLURM_GPUS:=8}"          # fake GPUs per node
: "${AXC_SLURM_CPUS:=32}"         # per node (a config override: the host has fewer)
: "${AXC_SLURM_MEM_MB:=16000}"    # per node
# ports apart from the peer harness (16817, 16900+) and from a system Slurm
: "${AXC_SLURM_CTLD_PORT:=17817}"
: "${AXC_SLURM_DBD_PORT:=17819}"
: "${AXC_SLURM_DB_PORT:=17306}"
: "${AXC_SLURM_SLURMD_PORT_BASE:=17900}"   # node i listens on BASE+i
# SchedulerParameters (empty = Slurm's defaults)
: "${AXC_SLURM_SCHED_PARAMS:=}"
# seconds between the SIGTERM and SIGKILL of a job at its time limit (Slurm's KillWait)
: "${AXC_SLURM_KILL_WAIT:=5}"

export AXC_SLURM_DIR AXC_SLURM_NODES AXC_SLURM_GPUS AXC_SLURM_CPUS AXC_SLURM_MEM_MB \
  AXC_SLURM_CTLD_PORT AXC_SLURM_DBD_PORT AXC_SLURM_DB_PORT AXC_SLURM_SLURMD_PORT_BASE \
  AXC_SLURM_SCHED_PARAMS AXC_SLURM_KILL_WAIT
# the client commands (sbatch, squeue, sacct, scontrol) find this cluster through it
export SLURM_CONF="$AXC_SLURM_DIR/etc/slurm.conf"

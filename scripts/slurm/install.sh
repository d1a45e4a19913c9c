#!/usr/bin/env bash
# install.sh - install Debian's Slurm (slurmctld, slurmd, slurmdbd, client, munge) and
# MariaDB if missing, then write this cluster's configuration under $AXC_SLURM_DIR
# (slurm.conf, slurmdbd.conf, gres.conf with fake GPUs, a munge key). Idempotent.
# apt-get runs only where /usr/sbin/policy-rc.d denies service starts (exit 101): the
# packages would otherwise start system daemons with the /etc configuration.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=env.sh
source "$HERE/env.sh"

missing=()
for pair in slurmctld:slurmctld slurmd:slurmd slurmdbd:slurmdbd sbatch:slurm-client \
            munged:munge mariadbd:mariadb-server; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || [[ -x "/usr/sbin/${pair%%:*}" ]] \
    || missing+=("${pair#*:}")
done
if ((${#missing[@]})); then
  rc=0; /usr/sbin/policy-rc.d munge start >/dev/null 2>&1 || rc=$?
  if ((rc != 101)); then
    echo "install.sh: /usr/sbin/policy-rc.d does not deny service starts (rc=$rc):" \
      "install ${missing[*]} by hand, or add one that exits 101" >&2
    exit 1
  fi
  SUDO=""; [[ "$(id -u)" -eq 0 ]] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 || {
    $SUDO apt-get update -qq >&2
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; }
fi

D="$AXC_SLURM_DIR"
mkdir -p "$D"/{etc,state,spool,log,run,munge,db}
chmod 0755 "$D"
chmod 0711 "$D/munge"   # munged wants o+x on its socket's directory
[[ -s "$D/munge/munge.key" ]] || dd if=/dev/urandom of="$D/munge/munge.key" bs=1024 count=1 status=none
chmod 0400 "$D/munge/munge.key"

HOST="$(hostname -s)"
N="$AXC_SLURM_NODES"; G="$AXC_SLURM_GPUS"
{
cat <<CONF
# Written by axcenter's scripts/slurm/install.sh: a one-host cluster with fake GPUs.
ClusterName=axc
SlurmctldHost=${HOST}(127.0.0.1)
SlurmctldPort=${AXC_SLURM_CTLD_PORT}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=${D}/munge/munge.socket
CredType=cred/munge
StateSaveLocation=${D}/state
SlurmdSpoolDir=${D}/spool/slurmd.%n
SlurmctldPidFile=${D}/run/slurmctld.pid
SlurmdPidFile=${D}/run/slurmd.%n.pid
SlurmctldLogFile=${D}/log/slurmctld.log
SlurmdLogFile=${D}/log/slurmd.%n.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# listen on 127.0.0.1 only (start.sh checks)
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
# no delegated cgroups here: processes tracked by parent, no binding, no device fence
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
PriorityType=priority/multifactor
CONF
[[ -n "$AXC_SLURM_SCHED_PARAMS" ]] && echo "SchedulerParameters=${AXC_SLURM_SCHED_PARAMS}"
cat <<CONF
# accounting through slurmdbd (sacct), comments kept (they carry axcenter's run id)
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=${AXC_SLURM_DBD_PORT}
# munge socket of this cluster for the connections to slurmdbd
AccountingStoragePass=${D}/munge/munge.socket
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MaxJobCount=100000
MaxArraySize=100001
KillWait=${AXC_SLURM_KILL_WAIT}
# a node set DOWN by hand stays down until resumed (one that stopped answering comes back)
ReturnToService=1
SlurmdParameters=config_overrides
GresTypes=gpu
CONF
for ((i = 1; i <= N; i++)); do
  echo "NodeName=n$i NodeHostname=${HOST} NodeAddr=127.0.0.1 Port=$((AXC_SLURM_SLURMD_PORT_BASE + i)) CPUs=${AXC_SLURM_CPUS} RealMemory=${AXC_SLURM_MEM_MB} Gres=gpu:${G} State=UNKNOWN"
done
echo "PartitionName=axc Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
} > "$D/etc/slurm.conf"

# fake GPUs: Slurm 22.05 wants a device file per GPU; symlinks to /dev/null do
rm -rf "$D/fakegpu"
{
  echo "AutoDetect=off"
  for ((i = 1; i <= N; i++)); do
    mkdir -p "$D/fakegpu/n$i"
    for ((g = 0; g < G; g++)); do ln -sfn /dev/null "$D/fakegpu/n$i/nvidia$g"; done
    echo "NodeName=n$i Name=gpu File=$D/fakegpu/n$i/nvidia[0-$((G - 1))]"
  done
} > "$D/etc/gres.conf"
echo "CgroupPlugin=cgroup/v1" > "$D/etc/cgroup.conf"

[[ -s "$D/db/password" ]] || head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$D/db/password"
chmod 0600 "$D/db/password"
umask 077
cat > "$D/etc/slurmdbd.conf" <<CONF
AuthType=auth/munge
AuthInfo=socket=${D}/munge/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=${AXC_SLURM_DBD_PORT}
SlurmUser=root
PidFile=${D}/run/slurmdbd.pid
LogFile=${D}/log/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=${AXC_SLURM_DB_PORT}
StorageUser=slurm
StoragePass=$(cat "$D/db/password")
StorageLoc=slurm_acct_db
CONF
chmod 0600 "$D/etc/slurmdbd.conf"
echo "install.sh: $(slurmctld -V), configuration in $D/etc ($N nodes x $G GPUs)" >&2

#!/usr/bin/env bash
# stop.sh - stop what start.sh started: cancel this cluster's jobs, then SIGTERM
# (SIGKILL after 15 s) the daemons whose PIDs are in $AXC_SLURM_DIR/run/*.pid, each
# checked against /proc/PID/comm, and any slurmstepd of this cluster (found by the
# SLURM_CONF in its environment).
#
#   ./stop.sh --ctld-only   # slurmctld alone (it saves its state; jobs go on), for
#                           # `AXC_SLURM_COLD=0 ./start.sh` to bring it back
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=env.sh
source "$HERE/env.sh"
D="$AXC_SLURM_DIR"

pid_of() {  # pid_of PIDFILE COMM
  local pid
  [[ -s "$1" ]] || return 1
  pid="$(cat "$1")"
  [[ -r "/proc/$pid/comm" && "$(cat "/proc/$pid/comm")" == "$2"* ]] || return 1
  echo "$pid"
}
WAIT_TENTHS=150
term_wait() {  # term_wait NAME PID...
  local name="$1" i p left
  shift
  (($#)) || return 0
  kill -TERM "$@" 2>/dev/null
  for ((i = 0; i < WAIT_TENTHS; i++)); do
    left=()
    for p in "$@"; do [[ -d "/proc/$p" ]] && left+=("$p"); done
    ((${#left[@]})) || return 0
    sleep 0.1
  done
  echo "stop.sh: SIGKILL $name (${left[*]})" >&2
  kill -KILL "${left[@]}" 2>/dev/null
}
our_stepds() {
  local p
  for p in /proc/[0-9]*; do
    [[ "$(cat "$p/comm" 2>/dev/null)" == slurmstepd ]] || continue
    tr '\0' '\n' < "$p/environ" 2>/dev/null | grep -qx "SLURM_CONF=$SLURM_CONF" && echo "${p#/proc/}"
  done
}

if [[ "${1:-}" == --ctld-only ]]; then
  WAIT_TENTHS=600
  p="$(pid_of "$D/run/slurmctld.pid" slurmctld)" && term_wait slurmctld "$p"
  exit 0
fi

if pid_of "$D/run/slurmctld.pid" slurmctld >/dev/null; then
  squeue -h -o %i 2>/dev/null | xargs -r scancel 2>/dev/null || true
  for ((i = 0; i < 40; i++)); do
    [[ -z "$(squeue -h -o %i 2>/dev/null | head -1)" ]] && break
    sleep 0.5
  done
fi
pids=()
for f in "$D"/run/slurmd.*.pid; do
  [[ -e "$f" ]] || continue
  p="$(pid_of "$f" slurmd)" && pids+=("$p")
done
term_wait slurmd "${pids[@]}"
mapfile -t steps < <(our_stepds)
term_wait slurmstepd "${steps[@]}"
p="$(pid_of "$D/run/slurmctld.pid" slurmctld)" && term_wait slurmctld "$p"
p="$(pid_of "$D/run/slurmdbd.pid" slurmdbd)" && term_wait slurmdbd "$p"
p="$(pid_of "$D/run/mariadb.pid" mariadbd)" && term_wait mariadbd "$p"
p="$(pid_of "$D/run/munged.pid" munged)" && term_wait munged "$p"
rm -f "$D"/run/*.pid
exit 0

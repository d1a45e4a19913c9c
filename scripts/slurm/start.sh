#!/usr/bin/env bash
# start.sh - start this cluster (install.sh first): munged, MariaDB, slurmdbd,
# slurmctld and one slurmd per node, all as root and bound to 127.0.0.1, each with a
# PID file under $AXC_SLURM_DIR/run (stop.sh signals only those). Waits until every
# node is idle. Already running daemons are left alone.
#
#   AXC_SLURM_COLD=0 ./start.sh   # keep slurmctld's saved jobs (default: a cold start)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=env.sh
source "$HERE/env.sh"
D="$AXC_SLURM_DIR"
[[ -f "$SLURM_CONF" ]] || { echo "start.sh: no $SLURM_CONF: run install.sh" >&2; exit 1; }
mapfile -t NODES < <(sed -n 's/^NodeName=\([^ ]*\) .*/\1/p' "$SLURM_CONF")

alive() {  # alive PIDFILE COMM: the pid in PIDFILE runs COMM
  local pid
  [[ -s "$1" ]] || return 1
  pid="$(cat "$1")"
  [[ -r "/proc/$pid/comm" && "$(cat "/proc/$pid/comm")" == "$2"* ]]
}
wait_for() {  # wait_for WHAT COMMAND...: up to 30 s
  local i
  for ((i = 0; i < 300; i++)); do "${@:2}" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "start.sh: $1 did not come up (see $D/log)" >&2; return 1
}

if ! alive "$D/run/munged.pid" munged; then
  munged -f --socket="$D/munge/munge.socket" --key-file="$D/munge/munge.key" \
    --pid-file="$D/run/munged.pid" --log-file="$D/log/munged.log" \
    --seed-file="$D/munge/munged.seed" --num-threads=4
  wait_for munged alive "$D/run/munged.pid" munged
fi

SOCK="$D/run/mariadb.sock"
if ! alive "$D/run/mariadb.pid" mariadbd; then
  if [[ ! -d "$D/db/data/mysql" ]]; then
    mariadb-install-db --no-defaults --user=root --datadir="$D/db/data" \
      --auth-root-authentication-method=socket >"$D/log/mariadb-install.log" 2>&1
  fi
  setsid mariadbd --no-defaults --user=root --datadir="$D/db/data" --socket="$SOCK" \
    --port="$AXC_SLURM_DB_PORT" --bind-address=127.0.0.1 --pid-file="$D/run/mariadb.pid" \
    --log-error="$D/log/mariadb.log" --innodb-buffer-pool-size=64M \
    --innodb-flush-log-at-trx-commit=2 </dev/null >/dev/null 2>&1 &
  wait_for mariadb mariadb --no-defaults --socket="$SOCK" -u root -e 'select 1'
  pw="$(cat "$D/db/password")"
  mariadb --no-defaults --socket="$SOCK" -u root <<SQL
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '${pw}';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '${pw}';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL
fi

if ! alive "$D/run/slurmdbd.pid" slurmdbd; then
  slurmdbd
  wait_for slurmdbd sacctmgr -n list cluster
fi
sacctmgr -n -P list cluster format=cluster | grep -qx axc || sacctmgr -i add cluster axc >/dev/null

if ! alive "$D/run/slurmctld.pid" slurmctld; then
  flags=()
  [[ "${AXC_SLURM_COLD:-1}" == 1 ]] && flags+=(-c)
  slurmctld -i "${flags[@]}"
  wait_for slurmctld alive "$D/run/slurmctld.pid" slurmctld
fi
for n in "${NODES[@]}"; do
  mkdir -p "$D/spool/slurmd.$n"
  if ! alive "$D/run/slurmd.$n.pid" slurmd; then
    slurmd -N "$n"
    wait_for "slurmd $n" alive "$D/run/slurmd.$n.pid" slurmd
  fi
done

# every node idle (or running jobs) within 60 s; nodes left down from an earlier run
# are resumed
up=0 bad=""
for ((i = 0; i < 120; i++)); do
  if scontrol ping >/dev/null 2>&1; then
    bad="$(sinfo -h -N -o '%N %t' 2>/dev/null | awk '$2 !~ /^(idle|alloc|mix)$/ {print $1}' | sort -u | paste -sd, -)"
    if [[ -z "$bad" && -n "$(sinfo -h -N -o %N 2>/dev/null)" ]]; then up=1; break; fi
    if [[ -n "$bad" ]] && ((i > 0 && i % 10 == 0)); then
      scontrol update NodeName="$bad" State=RESUME >/dev/null 2>&1 || true
    fi
  fi
  sleep 0.5
done
((up)) || { echo "start.sh: nodes not idle after 60 s: ${bad:-no answer}" >&2; exit 1; }

# slurmdbd 22.05 cannot be told to bind one address (no NoInAddrAny for it): it may
# listen on all, answering only requests signed with this cluster's munge key
pids="$(cat "$D"/run/*.pid | grep -vx "$(cat "$D/run/slurmdbd.pid")" | paste -sd'|' -)"
exposed="$(ss -Hltnup | grep -E "pid=($pids)," | awk '$5 !~ /^127\.0\.0\.1:/')" || true
if [[ -n "$exposed" ]]; then
  echo "start.sh: listening beyond 127.0.0.1, stopping:" >&2
  echo "$exposed" >&2
  "$HERE/stop.sh"; exit 1
fi
echo "start.sh: up ($(sinfo -h -o '%D nodes, %G')). export SLURM_CONF=$SLURM_CONF" >&2

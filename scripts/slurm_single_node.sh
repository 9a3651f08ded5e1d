#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for `pytest -m slurm` (tests/test_slurm.py): Debian's slurmctld and slurmd
# on localhost, munge for authentication, no accounting database (job status through squeue).
#
#   apt-get install -y slurm-wlm munge        # once (Debian 12: Slurm 22.05)
#   scripts/slurm_single_node.sh start        # writes /etc/slurm/slurm.conf, starts munged, slurmctld, slurmd
#   scripts/slurm_single_node.sh stop
# The config goes to Slurm's default path: job steps (srun inside a batch job) look for it there.
set -euo pipefail
DIR=/tmp/repro-slurm
CONF=/etc/slurm/slurm.conf

stop() {
  pkill -x slurmd 2>/dev/null || true
  pkill -x slurmctld 2>/dev/null || true
  pkill -x munged 2>/dev/null || true
}

start() {
  command -v slurmctld >/dev/null || { echo "slurmctld not found: apt-get install -y slurm-wlm munge" >&2; exit 1; }
  stop
  [ ! -e "$CONF" ] || grep -q "^ClusterName=repro$" "$CONF" || { echo "$CONF exists and is not ours; not touching it" >&2; exit 1; }
  mkdir -p "$DIR/state" "$DIR/spool" /etc/slurm /run/munge /var/log/munge /var/lib/munge /etc/munge
  [ -s /etc/munge/munge.key ] || { command -v mungekey >/dev/null && mungekey --create --force || \
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
  chmod 400 /etc/munge/munge.key
  munged --force
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 2048 ))
  cat > "$CONF" <<EOF
ClusterName=repro
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  slurmctld -f "$CONF"
  slurmd -f "$CONF"
  for _ in $(seq 1 30); do
    if sinfo -h -o %T 2>/dev/null | grep -qE "idle|mixed|alloc"; then
      echo "single-node SLURM cluster up ($CONF); sinfo shows it"
      return 0
    fi
    sleep 1
  done
  echo "the cluster did not come up; see $DIR/slurmctld.log and $DIR/slurmd.log" >&2
  exit 1
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac

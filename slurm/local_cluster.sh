#!/usr/bin/env bash
# A one-node Slurm cluster on localhost for tests and demos: munged + slurmctld + slurmd, run as root,
# without systemd, cgroups or slurmdbd (an `sacct` stand-in answers submitit's state queries from scontrol).
#
# Usage:  bash slurm/local_cluster.sh up       install Debian's packages when missing, configure, start, wait idle
#         bash slurm/local_cluster.sh down     stop exactly the daemons this script started
#         bash slurm/local_cluster.sh status   exit 0 when the cluster answers and its node is usable
# Env:    FOUNDATION_SLURM_STATE (default /tmp/foundation-slurm) holds pid files, logs and the generated slurm.conf.
set -euo pipefail

STATE=${FOUNDATION_SLURM_STATE:-/tmp/foundation-slurm}
SACCT_SHIM=/usr/local/bin/sacct
SHIM_TAG="foundation sacct stand-in"

die() { echo "local_cluster.sh: $*" >&2; exit 1; }

stop_pidfile() {  # stop exactly the daemon whose pid is recorded in $1
  local file=$1 pid
  [ -s "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then kill "$pid"; fi
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$file"
}

node_state() { sinfo -h -N -o '%t' 2>/dev/null | head -n1 || true; }

cluster_ok() {  # the controller answers and the node takes jobs
  command -v sinfo >/dev/null || return 1
  case "$(node_state)" in idle|mix|alloc|comp) return 0 ;; *) return 1 ;; esac
}

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
     && command -v sbatch >/dev/null; then
    return 0
  fi
  echo "installing slurmctld slurmd slurm-client munge (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
}

start_munge() {
  install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
  install -d -o munge -g munge -m 0755 /run/munge
  [ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
  rm -f /run/munge/munged.pid
  runuser -u munge -- /usr/sbin/munged   # daemonizes, writes /run/munge/munged.pid
  cp /run/munge/munged.pid "$STATE/munged.pid"
  for _ in $(seq 1 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "munged did not start"
}

write_conf() {
  local node cpus mem_mb
  node=$(hostname -s)
  cpus=$(nproc)
  mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))   # leave 1 GiB to the system
  install -d -m 0755 /etc/slurm /var/spool/slurmctld /var/spool/slurmd
  cat > /etc/slurm/slurm.conf <<EOF
# written by foundation slurm/local_cluster.sh: a one-node test cluster on localhost
ClusterName=foundation-local
SlurmctldHost=${node}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# a requeued job may start again cred_expire seconds after it ended (default 120)
AuthInfo=cred_expire=10
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
JobRequeue=1
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=${STATE}/slurmctld.pid
SlurmdPidFile=${STATE}/slurmd.pid
SlurmctldLogFile=${STATE}/slurmctld.log
SlurmdLogFile=${STATE}/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=3600
KillWait=20
Waittime=0
SchedulerParameters=sched_interval=2
DefMemPerCPU=1024
NodeName=${node} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

# submitit polls `sacct -o JobID,State,NodeList --parsable2 -j ID...`; without slurmdbd the real sacct fails.
# The stand-in answers from slurmctld's memory, so a job stays visible for MinJobAge seconds after it ends.
install_sacct_shim() {
  if [ -e "$SACCT_SHIM" ] && ! grep -q "$SHIM_TAG" "$SACCT_SHIM"; then
    die "$SACCT_SHIM exists and is not ours; refusing to overwrite it"
  fi
  cat > "$SACCT_SHIM" <<'SHIM'
#!/bin/bash
# foundation sacct stand-in for a Slurm cluster without slurmdbd (AccountingStorageType=none).
# Supports what submitit calls: sacct -o JobID,State,NodeList --parsable2 -j ID [-j ID ...]
ids=()
while [ $# -gt 0 ]; do
  case "$1" in
    -j|--jobs) IFS=, read -ra a <<<"$2"; ids+=("${a[@]}"); shift 2 ;;
    --jobs=*) IFS=, read -ra a <<<"${1#--jobs=}"; ids+=("${a[@]}"); shift ;;
    *) shift ;;
  esac
done
echo "JobID|State|NodeList"
for id in "${ids[@]}"; do scontrol show job -o "$id" 2>/dev/null; done | awk '
{
  delete f
  for (i = 1; i <= NF; i++) { p = index($i, "="); if (p) f[substr($i, 1, p-1)] = substr($i, p+1) }
  id = f["JobId"]
  if (("ArrayTaskId" in f) && f["ArrayTaskId"] != "(null)") {
    t = f["ArrayTaskId"]; if (t ~ /[-,%]/) t = "[" t "]"
    id = f["ArrayJobId"] "_" t
  }
  nl = f["NodeList"]; if (nl == "" || nl == "(null)") nl = "None assigned"
  print id "|" f["JobState"] "|" nl
}'
SHIM
  chmod 0755 "$SACCT_SHIM"
}

up() {
  [ "$(id -u)" = 0 ] || die "needs root (installs packages and runs slurmctld/slurmd as root)"
  if cluster_ok && [ -s "$STATE/slurmctld.pid" ]; then echo "slurm already up"; sinfo; return 0; fi
  local t0; t0=$(date +%s)
  mkdir -p "$STATE"
  install_packages
  start_munge
  write_conf
  stop_pidfile "$STATE/slurmd.pid"
  stop_pidfile "$STATE/slurmctld.pid"
  /usr/sbin/slurmctld -i   # -i: ignore unreadable old state; daemonizes and writes its pid file
  /usr/sbin/slurmd         # daemonizes and writes its pid file
  install_sacct_shim
  for _ in $(seq 1 150); do cluster_ok && break; sleep 0.2; done
  if [ "$(node_state)" = "down" ] || [ "$(node_state)" = "drain" ]; then
    scontrol update NodeName="$(hostname -s)" State=RESUME || true
    for _ in $(seq 1 50); do cluster_ok && break; sleep 0.2; done
  fi
  cluster_ok || die "node not idle after start (state '$(node_state)'); see $STATE/slurmctld.log and $STATE/slurmd.log"
  sinfo
  echo "slurm up in $(( $(date +%s) - t0 )) s (state in $STATE)"
}

down() {
  stop_pidfile "$STATE/slurmd.pid"
  stop_pidfile "$STATE/slurmctld.pid"
  stop_pidfile "$STATE/munged.pid"   # only when this script started munged
  if [ -e "$SACCT_SHIM" ] && grep -q "$SHIM_TAG" "$SACCT_SHIM"; then rm -f "$SACCT_SHIM"; fi
  echo "slurm down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) cluster_ok && sinfo ;;
  *) echo "usage: bash slurm/local_cluster.sh up|down|status" >&2; exit 2 ;;
esac

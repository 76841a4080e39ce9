#!/usr/bin/env bash
# A Slurm cluster on this machine for tests and demos, run as root, without systemd, cgroups or slurmdbd (an
# `sacct` stand-in answers submitit's state queries from scontrol).
#
# One node (the default): munged + slurmctld + slurmd on localhost, configured in /etc/slurm/slurm.conf.
# N nodes (--nodes N, 2 <= N <= 8): slurmctld on this host plus one slurmd per node (`slurmd -N fnodeK`), each in
#   its own network namespace `fnodeK` (address 10.213.0.(10+K) on eth0, a veth pair on the bridge fnode-br whose
#   host side is 10.213.0.1; no route anywhere else) and its own UTS namespace (hostname fnodeK); /etc/hosts names
#   the nodes. Its slurm.conf lives in the state directory (SLURM_CONF selects it), its ports differ from the
#   one-node cluster's, so both can run at once. Each node gets nproc/N CPU slots (at least one).
#
# Usage:  bash slurm/local_cluster.sh up [--nodes N]       install Debian's packages when missing, configure, start,
#                                                          wait until every node is idle
#         bash slurm/local_cluster.sh down [--nodes N]     remove exactly what `up` made (daemons, namespaces,
#                                                          links, hosts entries)
#         bash slurm/local_cluster.sh status [--nodes N]   exit 0 when the cluster answers and every node is usable
# Env:    FOUNDATION_SLURM_STATE (default /tmp/foundation-slurm; N nodes: that path + "-Nnode") holds pid files,
#         logs, the list of what `up` made and (N nodes) slurm.conf. FOUNDATION_SLURM_REGISTER_S (default 60): how
#         long `up` waits for the nodes to register.
set -euo pipefail

usage() { echo "usage: bash slurm/local_cluster.sh up|down|status [--nodes N]" >&2; exit 2; }
COMMAND=${1:-}
[ $# -gt 0 ] && shift
NODES=1
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) [ $# -ge 2 ] || usage; NODES=$2; shift 2 ;;
    --nodes=*) NODES=${1#--nodes=}; shift ;;
    *) usage ;;
  esac
done
bad_nodes() { echo "local_cluster.sh: --nodes must be a number from 1 to 8, got '$NODES'" >&2; exit 2; }
case "$NODES" in ''|*[!0-9]*) bad_nodes ;; esac
{ [ "$NODES" -ge 1 ] && [ "$NODES" -le 8 ]; } || bad_nodes

STATE=${FOUNDATION_SLURM_STATE:-/tmp/foundation-slurm}
SACCT_SHIM=/usr/local/bin/sacct
SHIM_TAG="foundation sacct stand-in"
SUBNET=10.213.0          # the private range of the N-node cluster: .1 this host, .(10+K) node K
BRIDGE=fnode-br
HOSTS_TAG="# foundation local_cluster.sh"
REGISTER_S=${FOUNDATION_SLURM_REGISTER_S:-60}
if [ "$NODES" -gt 1 ]; then
  STATE=$STATE-${NODES}node
  export SLURM_CONF=$STATE/slurm.conf
else
  export SLURM_CONF=/etc/slurm/slurm.conf   # not another cluster's, should the caller's SLURM_CONF name one
fi
MADE=$STATE/made         # one line per thing `up` made, undone in reverse order by `down`

die() { echo "local_cluster.sh: $*" >&2; exit 1; }

stop_pidfile() {  # stop exactly the daemon whose pid is recorded in $1
  local file=$1 pid
  [ -s "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then kill "$pid"; fi
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$file"
}

node_states() { sinfo -h -N -o '%N %t' 2>/dev/null || true; }

cluster_ok() {  # the controller answers and every node takes jobs
  command -v sinfo >/dev/null || return 1
  [ "$(node_states | awk '$2 ~ /^(idle|mix|alloc|comp)$/' | wc -l)" -eq "$NODES" ]
}

made() { echo "$*" >> "$MADE"; }   # record one thing `up` made, for `down`

other_cluster_running() { pgrep -x slurmctld >/dev/null; }   # called once this cluster's slurmctld is stopped

install_packages() {  # what is missing of Debian's slurm and munge, and iproute2 for a multi-node cluster
  local missing=()
  command -v slurmctld >/dev/null || missing+=(slurmctld)
  command -v slurmd >/dev/null || missing+=(slurmd)
  command -v sbatch >/dev/null || missing+=(slurm-client)
  command -v munged >/dev/null || missing+=(munge)
  [ "$NODES" = 1 ] || command -v ip >/dev/null || missing+=(iproute2)
  [ ${#missing[@]} -gt 0 ] || return 0
  echo "installing ${missing[*]} (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
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
  made pid "$STATE/munged.pid"
  for _ in $(seq 1 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "munged did not start"
}

common_conf() {  # the settings both cluster shapes share
  cat <<EOF
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
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=3600
KillWait=20
Waittime=0
SchedulerParameters=sched_interval=2
DefMemPerCPU=1024
EOF
}

total_mem_mb() { echo $(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 )); }   # leave 1 GiB

write_conf() {  # one node: /etc/slurm/slurm.conf, this host on 127.0.0.1
  local node
  node=$(hostname -s)
  install -d -m 0755 /etc/slurm /var/spool/slurmctld /var/spool/slurmd
  {
    echo "# written by foundation slurm/local_cluster.sh: a one-node test cluster on localhost"
    echo "ClusterName=foundation-local"
    echo "SlurmctldHost=${node}(127.0.0.1)"
    common_conf
    cat <<EOF
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=${STATE}/slurmctld.pid
SlurmdPidFile=${STATE}/slurmd.pid
SlurmctldLogFile=${STATE}/slurmctld.log
SlurmdLogFile=${STATE}/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
NodeName=${node} NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$(total_mem_mb) State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  } > /etc/slurm/slurm.conf
}

node_name() { echo "fnode$1"; }
node_addr() { echo "$SUBNET.$(( 10 + $1 ))"; }

write_multinode_conf() {  # N nodes: $SLURM_CONF; slurmctld on the bridge address, one slurmd per namespace
  local k cpus mem_mb
  cpus=$(( $(nproc) / NODES )); [ "$cpus" -ge 1 ] || cpus=1
  mem_mb=$(( $(total_mem_mb) / NODES ))
  rm -rf "$STATE/ctld"   # a fresh controller state: every node must register anew
  install -d -m 0755 "$STATE/ctld"
  {
    echo "# written by foundation slurm/local_cluster.sh: a $NODES-node test cluster in network namespaces"
    echo "ClusterName=foundation-local${NODES}"
    echo "SlurmctldHost=$(hostname -s)($SUBNET.1)"
    common_conf
    cat <<EOF
StateSaveLocation=${STATE}/ctld
SlurmdSpoolDir=${STATE}/spool-%n
SlurmctldPidFile=${STATE}/slurmctld.pid
SlurmdPidFile=${STATE}/slurmd-%n.pid
SlurmctldLogFile=${STATE}/slurmctld.log
SlurmdLogFile=${STATE}/slurmd-%n.log
SlurmctldPort=6837
SlurmdPort=6818
EOF
    for k in $(seq 1 "$NODES"); do
      echo "NodeName=$(node_name "$k") NodeAddr=$(node_addr "$k") CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN"
    done
    echo "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO"
  } > "$SLURM_CONF"
}

make_network() {  # the bridge, one namespace per node with eth0 on it, and the hosts entries
  local k name err
  err=$(ip link add "$BRIDGE" type bridge 2>&1) || die "cannot create the bridge $BRIDGE (ip link add: $err)"
  made link "$BRIDGE"
  ip addr add "$SUBNET.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  for k in $(seq 1 "$NODES"); do
    name=$(node_name "$k")
    err=$(ip netns add "$name" 2>&1) || die "cannot create the network namespace $name (ip netns add: $err)"
    made netns "$name"
    ip link add "$name-h" type veth peer name "$name-n"
    made link "$name-h"
    ip link set "$name-n" netns "$name"
    ip -n "$name" link set "$name-n" name eth0
    ip link set "$name-h" master "$BRIDGE"
    ip link set "$name-h" up
    ip -n "$name" addr add "$(node_addr "$k")/24" dev eth0
    ip -n "$name" link set eth0 up
    ip -n "$name" link set lo up
  done
  for k in $(seq 1 "$NODES"); do echo "$(node_addr "$k") $(node_name "$k") $HOSTS_TAG $NODES-node"; done >> /etc/hosts
  made hosts
}

start_node() {  # slurmd -N NAME inside the node's network namespace, with the node's name as its hostname
  local name=$1     # (nsenter, not `ip netns exec`: that remounts /sys, hiding the cgroup file system slurmd reads)
  install -d -m 0755 "$STATE/spool-$name"
  nsenter --net="/run/netns/$name" unshare --uts sh -c "hostname $name && exec /usr/sbin/slurmd -f '$SLURM_CONF' -N $name"
  made pid "$STATE/slurmd-$name.pid"
}

wait_registered() {  # every node idle, or one line naming the node that did not register
  local end state k name log
  end=$(( $(date +%s) + REGISTER_S ))
  while ! cluster_ok && [ "$(date +%s)" -lt "$end" ]; do
    node_states | awk '$2 ~ /^(down|drain)/ {print $1}' | while read -r name; do
      scontrol update NodeName="$name" State=RESUME 2>/dev/null || true
    done
    sleep 0.5
  done
  cluster_ok && return 0
  for k in $(seq 1 "$NODES"); do
    [ "$NODES" -gt 1 ] && name=$(node_name "$k") || name=$(hostname -s)
    state=$(node_states | awk -v n="$name" '$1 == n {print $2}')
    case "$state" in idle|mix|alloc|comp) ;; *)
      if [ "$NODES" -gt 1 ]; then log=$STATE/slurmd-$name.log; else log=$STATE/slurmd.log; fi
      die "node $name did not register with slurmctld within $REGISTER_S s (state '${state:-unknown}'); see $log and $STATE/slurmctld.log" ;;
    esac
  done
  die "slurmctld does not answer (see $STATE/slurmctld.log)"
}

# submitit polls `sacct -o JobID,State,NodeList --parsable2 -j ID...`; without slurmdbd the real sacct fails.
# The stand-in answers from slurmctld's memory, so a job stays visible for MinJobAge seconds after it ends.
install_sacct_shim() {
  if [ -e "$SACCT_SHIM" ]; then
    grep -q "$SHIM_TAG" "$SACCT_SHIM" || die "$SACCT_SHIM exists and is not ours; refusing to overwrite it"
    return 0   # installed by the other local cluster, which shares it
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
  made shim
}

UP_DONE=0
undo_partial_up() {  # an `up` that failed leaves nothing behind
  if [ "$UP_DONE" = 0 ] && [ -s "$MADE" ]; then teardown >/dev/null 2>&1 || true; fi
}

up() {
  [ "$(id -u)" = 0 ] || die "needs root (installs packages, runs slurmctld/slurmd as root$([ "$NODES" -gt 1 ] && echo ', makes network namespaces'))"
  if cluster_ok && [ -s "$STATE/slurmctld.pid" ]; then echo "slurm already up"; sinfo -N; return 0; fi
  [ -s "$MADE" ] && teardown >/dev/null 2>&1   # the remains of an earlier cluster of this shape
  if [ "$NODES" -gt 1 ] && ip link show "$BRIDGE" >/dev/null 2>&1; then
    die "network bridge $BRIDGE exists already (a multi-node local cluster is up, or its remains: bash slurm/local_cluster.sh down --nodes N)"
  fi
  local t0; t0=$(date +%s)
  mkdir -p "$STATE"
  : > "$MADE"
  trap undo_partial_up EXIT
  install_packages
  start_munge
  if [ "$NODES" = 1 ]; then
    write_conf
    stop_pidfile "$STATE/slurmd.pid"       # daemons of a cluster whose `up` kept no list
    stop_pidfile "$STATE/slurmctld.pid"
    /usr/sbin/slurmctld -i   # -i: ignore unreadable old state; daemonizes and writes its pid file
    made pid "$STATE/slurmctld.pid"
    /usr/sbin/slurmd         # daemonizes and writes its pid file
    made pid "$STATE/slurmd.pid"
  else
    write_multinode_conf
    make_network
    /usr/sbin/slurmctld -f "$SLURM_CONF" -i
    made pid "$STATE/slurmctld.pid"
    for k in $(seq 1 "$NODES"); do start_node "$(node_name "$k")"; done
  fi
  install_sacct_shim
  wait_registered
  UP_DONE=1
  sinfo -N
  echo "slurm up in $(( $(date +%s) - t0 )) s (state in $STATE)"
}

undo() {  # undo one line of $MADE
  local kind=$1 what=${2:-} pid
  case "$kind" in
    pid)
      if [ "$what" = "$STATE/munged.pid" ] && other_cluster_running; then return 0; fi   # the other cluster uses it
      stop_pidfile "$what" ;;
    netns)  # the processes a node ran (its job steps outlive slurmd), then the namespace and its eth0
      for pid in $(ip netns pids "$what" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
      ip netns del "$what" 2>/dev/null || true ;;
    link) ip link del "$what" 2>/dev/null || true ;;
    hosts)
      grep -vF "$HOSTS_TAG $NODES-node" /etc/hosts > "$STATE/hosts" || true
      cat "$STATE/hosts" > /etc/hosts   # in place: /etc/hosts may be a mount point
      rm -f "$STATE/hosts" ;;
    shim)
      if ! other_cluster_running && [ -e "$SACCT_SHIM" ] && grep -q "$SHIM_TAG" "$SACCT_SHIM"; then rm -f "$SACCT_SHIM"; fi ;;
  esac
}

teardown() {  # daemons first (slurmd before slurmctld), then the network, then the shared pieces
  local lines=() i
  [ -s "$MADE" ] || return 0
  mapfile -t lines < <(tac "$MADE")
  for i in "${lines[@]}"; do case "$i" in "pid $STATE/munged.pid") ;; pid*) undo $i ;; esac; done
  for i in "${lines[@]}"; do case "$i" in pid*) ;; *) undo $i ;; esac; done
  for i in "${lines[@]}"; do case "$i" in "pid $STATE/munged.pid") undo $i ;; esac; done
  undo shim
  rm -f "$MADE"
}

down() {
  if [ -s "$MADE" ]; then
    teardown
  else  # a cluster started before `up` kept a list of what it made
    stop_pidfile "$STATE/slurmd.pid"
    stop_pidfile "$STATE/slurmctld.pid"
    undo pid "$STATE/munged.pid"
    undo shim
  fi
  echo "slurm down"
}

case "$COMMAND" in
  up) up ;;
  down) down ;;
  status) cluster_ok && sinfo -N ;;
  *) usage ;;
esac

#!/usr/bin/env bash
# The GPU check: bf16 vs fp32 E/F/S agreement, atoms/s per scalable size at the largest batch that fits, the
# neighbour list on the GPU, one DeepSpeed run's throughput and data wait, MACE's atoms/s; at most ~8 minutes on
# one GPU. Each section of bench/gpu.py runs in its own process under its own time limit, so one failure or
# overrun costs only its section; MACE's process alone gets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 (its e3nn import).
# Writes gpu.json, gpu.md and gpu.log into OUT_DIR.
#
#   bash bench/gpu.sh [OUT_DIR] [--cpu-smoke]      # OUT_DIR defaults to $OUT, else /tmp/gpu_out
#
# Real frames: .gpu_data/dft/*.xyz (a copy of ../shared/data/dft; ignored by git, carried to a device machine).
# Wheels in .whl/ (for a machine without a package registry) are installed into /tmp/site first.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-/tmp/gpu_out}}
smoke=${2:-}
mkdir -p "$out"
log="$out/gpu.log"
parts=$(mktemp -d)
began=$(date +%s)
if [ -z "$smoke" ] && compgen -G ".whl/*.whl" >/dev/null; then  # (the smoke test uses this Python as it is)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    >>"$log" 2>&1 || { echo "wheel install failed (see $log)"; exit 1; }
  # foundation itself (its package-dir mapping needs an install; no build isolation: nothing to fetch)
  python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target /tmp/site . >>"$log" 2>&1 \
    || { echo "foundation install failed (see $log)"; exit 1; }
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD/bench:${PYTHONPATH:-} PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
[ -d .gpu_data/dft ] || [ -n "$smoke" ] || { echo "no .gpu_data/dft: copy ../shared/data/dft there"; exit 1; }
data=.gpu_data
[ -d .gpu_data/dft ] || data=../shared/data
python3 - "$parts/meta.json" <<'EOF'
import datetime, json, sys, torch
name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (smoke test)"
json.dump({"device": name, "torch": torch.__version__, "date": datetime.date.today().isoformat()}, open(sys.argv[1], "w"))
EOF

section() {  # name, time limit (s), extra environment
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit} s, at $(( $(date +%s) - began )) s)" | tee -a "$log"
  [ -n "$smoke" ] && limit=$(( limit * 6 ))  # a shared, loaded CPU
  timeout "$limit" env "$@" python3 bench/gpu.py --section "$name" --parts "$parts" --data "$data" $smoke >>"$log" 2>&1 \
    || echo "$name: exit $? (see $log)" | tee -a "$log"
}
section agreement 60
section throughput 150
section neighbours 60
section deepspeed 100 DS_ACCELERATOR="$([ -n "$smoke" ] && echo cpu || echo cuda)"
section mace 70 TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1
python3 bench/gpu.py --report "$parts" --out "$out" >>"$log" 2>&1 || echo "report failed (see $log)"
echo "GPU check done in $(( $(date +%s) - began )) s: $out/gpu.json, $out/gpu.md" | tee -a "$log"
cat "$out/gpu.md" 2>/dev/null

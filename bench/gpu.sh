#!/usr/bin/env bash
# The GPU check: bf16 vs fp32 E/F/S agreement, atoms/s per scalable size at the largest batch that fits, the
# neighbour list on the GPU, end-to-end efficiency (DeepSpeed runs at 1, 4 and 8 loader workers with graphs built
# in the workers and on the device: atoms/s over the bare step's, data wait), MACE's atoms/s; at most 8 minutes on
# one GPU. Each section of bench/gpu.py runs in its own process under its own time limit (cut to what is left of
# the 8 minutes), so one failure or overrun costs only its section; MACE's process alone gets
# TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 (its e3nn import). Then the CUDA-only tests (which skip without a GPU), within
# the same 8 minutes. Writes gpu.json, gpu.md, efficiency.json, cuda-tests.txt and gpu.log into OUT_DIR.
#
#   bash bench/gpu.sh [OUT_DIR] [--cpu-smoke]      # OUT_DIR defaults to $OUT, else /tmp/gpu_out
#   bash bench/gpu.sh --cpu-smoke                  # every section on the CPU with tiny sizes: the script's own test
#
# Real frames: .gpu_data/dft/*.xyz (a copy of ../shared/data/dft; ignored by git, carried to a device machine).
# Wheels in .whl/ (for a machine without a package registry) are installed into /tmp/site first.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/gpu_out}
smoke=
for arg in "$@"; do
  case $arg in
    --cpu-smoke) smoke=--cpu-smoke ;;
    -*) echo "unknown option $arg (usage: bash bench/gpu.sh [OUT_DIR] [--cpu-smoke])"; exit 2 ;;
    *) out=$arg ;;
  esac
done
total=430  # s for every section together: 8 minutes less the CUDA tests (40 s) and the report
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
python3 - <<'EOF' 2>&1 | tee -a "$log"  # say at once what a section will miss
import importlib.util
need = ("deepspeed", "ase", "lmdb", "matscipy", "vesin", "vesin_torch", "mace", "e3nn")
missing = [name for name in need if importlib.util.find_spec(name) is None]
print("Python packages missing (the sections that import them will fail):", ", ".join(missing) or "none")
EOF
python3 - "$parts/meta.json" <<'EOF'
import datetime, json, sys, torch
name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (smoke test)"
json.dump({"device": name, "torch": torch.__version__, "date": datetime.date.today().isoformat()}, open(sys.argv[1], "w"))
EOF

section() {  # name, time limit (s), extra environment
  local name=$1 limit=$2 left
  shift 2
  if [ -n "$smoke" ]; then
    limit=$(( limit * 6 ))  # a shared, loaded CPU
  else
    left=$(( total - ($(date +%s) - began) ))
    [ "$left" -lt "$limit" ] && limit=$left
    [ "$limit" -lt 10 ] && { echo "$name: skipped, no time left" | tee -a "$log"; return; }
  fi
  echo "== $name (limit ${limit} s, at $(( $(date +%s) - began )) s)" | tee -a "$log"
  timeout "$limit" env "$@" python3 bench/gpu.py --section "$name" --parts "$parts" --data "$data" $smoke >>"$log" 2>&1 \
    || echo "$name: exit $? (see $log)" | tee -a "$log"
}
section agreement 40
section throughput 110
section neighbours 40
section efficiency 190 DS_ACCELERATOR="$([ -n "$smoke" ] && echo cpu || echo cuda)"
section mace 50 TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1
python3 bench/gpu.py --report "$parts" --out "$out" >>"$log" 2>&1 || echo "report failed (see $log)"

cuda_tests=(
  tests/test_calculator.py::test_on_a_gpu_graphs_are_built_there_and_results_match_the_cpu
  tests/data/test_graph.py::test_gpu_graph_equals_cpu_graph
  tests/data/test_batch.py::test_pin_memory_and_to_cuda
  tests/train/test_device_feed.py::test_on_a_gpu_items_arrive_one_ahead_and_equal_the_host_ones
)
links=()
if [ -z "$smoke" ]; then  # the tests import the repository's foundation: give it the folders an install maps in
  for name in configs data_prep evals studies slurm; do
    [ -e "foundation/$name" ] || { ln -s "../$name" "foundation/$name" && links+=("foundation/$name"); }
  done
fi
echo "== CUDA-only tests (limit 40 s, at $(( $(date +%s) - began )) s)" | tee -a "$log"
timeout 40 python3 -m pytest -o addopts="" -q -p no:cacheprovider "${cuda_tests[@]}" >"$out/cuda-tests.txt" 2>&1
echo "CUDA-only tests: exit $?, $(tail -n 1 "$out/cuda-tests.txt")" | tee -a "$log"
[ ${#links[@]} -eq 0 ] || rm -f "${links[@]}"
echo "GPU check done in $(( $(date +%s) - began )) s: $out/gpu.json, $out/gpu.md, $out/efficiency.json" | tee -a "$log"
cat "$out/gpu.md" 2>/dev/null

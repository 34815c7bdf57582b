#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser graft runs on untrusted bytes (fuzz/targets.cc):
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# builds the libFuzzer targets with clang, AddressSanitizer and UndefinedBehaviorSanitizer into
# build-fuzz/, seeds each target's corpus (build-fuzz/corpus/TARGET) from the test data and the
# targets' own code-made seeds, and runs each target for SECONDS (default 60), two at a time.
# A finding (crash, sanitizer report, leak, timeout, out-of-memory) is copied to
# tests/fuzz/TARGET/, where CTest replays it (fuzz_regression_inputs) once fixed, and the
# script exits 1. Targets: onnx npy idx image keras_hdf5 keras_zip keras_json request codec
# adapter_spec layer_ref.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
secs=${1:-60}
[ $# -gt 0 ] && shift
all=(onnx npy idx image keras_hdf5 keras_zip keras_json request codec adapter_spec layer_ref)
targets=("${@:-${all[@]}}")
command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ is missing (apt-get install clang)" >&2; exit 2; }

out=build-fuzz
flags="-fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=all -fno-omit-frame-pointer"
cmake -S . -B "$out" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DGRAFT_FUZZ=ON \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build "$out" -j "${GRAFT_BUILD_JOBS:-2}" --target graft_fuzz_replay $(printf 'fuzz_%s ' "${targets[@]}")

# Corpora: code-made seeds, then the test data each parser reads.
"$out/graft_fuzz_replay" --seeds "$out/seeds"
for t in "${targets[@]}"; do
  c="$out/corpus/$t"
  mkdir -p "$c" "$out/findings/$t"
  cp -n "$out/seeds/$t"/* "$c"/ 2>/dev/null || true
  case $t in
    onnx)  # ONNX's operator conformance models (libonnx-testdata), under 64 KiB
      for f in /usr/share/libonnx-testdata/data/node/*/model.onnx; do
        if [ -f "$f" ] && [ "$(stat -c %s "$f")" -lt 65536 ]; then cp -n "$f" "$c/$(basename "$(dirname "$f")").onnx"; fi
      done ;;
    keras_hdf5) cp -n tests/data/keras/*.h5 "$c"/ ;;
    keras_zip)  cp -n tests/data/keras/*.keras "$c"/ ;;
    keras_json) cp -n tests/data/keras/*.json "$c"/ ;;
  esac
done

# Two at a time (this machine has two cores); each in its own scratch folder.
run() {
  local t=$1 scratch="$out/tmp/$1"
  mkdir -p "$scratch"
  TMPDIR="$scratch" ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1" \
    "$out/fuzz_$t" "$out/corpus/$t" -max_total_time="$secs" -timeout=60 -rss_limit_mb=4096 \
      -artifact_prefix="$out/findings/$t/" -print_final_stats=1 >"$out/$t.log" 2>&1 || true
  echo "$t: $(grep -E '^stat::number_of_executed_units' "$out/$t.log" | awk '{print $2}') runs," \
       "$(ls "$out/corpus/$t" | wc -l) corpus inputs, $(ls "$out/findings/$t" | grep -vc '^slow-unit-') findings"
}
pids=()
for t in "${targets[@]}"; do
  run "$t" &
  pids+=($!)
  if [ ${#pids[@]} -ge 2 ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
wait

found=0
for t in "${targets[@]}"; do
  for f in "$out/findings/$t"/*; do
    [ -e "$f" ] || continue
    case $(basename "$f") in slow-unit-*) echo "slow input (not a finding): $f"; continue ;; esac
    found=1
    mkdir -p "tests/fuzz/$t"
    cp "$f" "tests/fuzz/$t/"
    echo "finding: $f (log: $out/$t.log) -> tests/fuzz/$t/$(basename "$f")"
  done
done
exit $found

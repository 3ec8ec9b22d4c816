#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo fuzz, libFuzzer, nightly) of the broker's metadata and gateway
# request handling and of the key-file parser. Installs the nightly toolchain and cargo-fuzz when missing.
# Each target runs FUZZ_SECONDS (default 60) from the committed corpus (fuzz/corpus/TARGET, read
# only); new inputs go to a scratch corpus, crashes to fuzz/artifacts/TARGET/. Prints executions
# and crashes per target; exits non-zero on a crash.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
seconds=${FUZZ_SECONDS:-60}
scratch="${CARGO_TARGET_DIR:-$root/fuzz/target}/fuzz-corpus"
status=0
summary=()
for target in metadata_request gateway_request key_parse; do
  mkdir -p "$scratch/$target"
  log="$scratch/$target.log"
  echo "==> fuzzing $target for ${seconds}s"
  set +e
  cargo +nightly fuzz run "$target" "$scratch/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1
  s=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  crashes=$(ls "artifacts/$target" 2>/dev/null | wc -l)
  summary+=("$target: ${runs:-?} executions in ${seconds}s, exit $s, $crashes crash file(s) in fuzz/artifacts/$target")
  if [ "$s" -ne 0 ]; then tail -40 "$log"; status=$s; fi
done
printf '%s\n' "${summary[@]}"
exit "$status"

#!/usr/bin/env bash
# Fuzz smoke runs: builds every cargo-fuzz target in fuzz/ once and runs each
# for a short while from its committed seed corpus (fuzz/seeds/<target>/).
# Fails if any target crashes, hangs or stops early; prints one summary line
# per target. Works on the STABLE toolchain: no sanitizer (`--sanitizer
# none`), which is the only cargo-fuzz mode that needs no -Z flag; libFuzzer's
# coverage instrumentation (sancov) is stable.
#
#   ./scripts/fuzz-smoke.sh                       # every target, 20 s each
#   SHOMEI_FUZZ_SECONDS=300 ./scripts/fuzz-smoke.sh cms apdu
#
# Environment:
#   SHOMEI_FUZZ_SECONDS  seconds per target (default 20)
#   SHOMEI_FUZZ_JOBS     targets run at the same time (default: CPU count, at most 4)
#   SHOMEI_FUZZ_CODEGEN_UNITS  rustc codegen units (default 16; cargo-fuzz's own default is 1)
#
# Scratch corpora go to fuzz/corpus/<target>/ (recreated from the seeds on
# every run), crashing inputs to fuzz/artifacts/<target>/, libFuzzer logs to
# fuzz/artifacts/logs/; all three and fuzz/target/ are gitignored. Reproduce a
# crash with: cargo fuzz run --sanitizer none <target> fuzz/artifacts/<target>/crash-…
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FUZZ=$ROOT/fuzz
SECONDS_PER_TARGET=${SHOMEI_FUZZ_SECONDS:-20}
export CARGO_TARGET_DIR=$FUZZ/target
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
log() { printf '\n== %s\n' "$*"; }
start=$(date +%s)

# ---------------------------------------------------------------- cargo-fuzz
if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz (cargo install cargo-fuzz --locked)"
  cargo install cargo-fuzz --locked
fi

# ---------------------------------------------------------------- build
cd "$FUZZ"
if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi
# codegen-units: cargo-fuzz defaults to 1, which makes a cold build about
# twice as slow on two cores for no gain in a smoke run.
log "building ${#targets[@]} fuzz targets (cargo fuzz build --sanitizer none)"
cargo fuzz build --sanitizer none --codegen-units "${SHOMEI_FUZZ_CODEGEN_UNITS:-16}"
host=$(rustc -vV | sed -n 's/^host: //p')
bindir=$CARGO_TARGET_DIR/$host/release
build_done=$(date +%s)

# ---------------------------------------------------------------- run
jobs=${SHOMEI_FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
[ "$jobs" -gt 4 ] && jobs=4
[ "$jobs" -lt 1 ] && jobs=1
mkdir -p "$FUZZ/artifacts/logs"
log "running ${#targets[@]} targets for ${SECONDS_PER_TARGET}s each, $jobs at a time"

run_one() {
  local t=$1 corpus=$FUZZ/corpus/$1
  [ -x "$bindir/$t" ] || { echo "no binary $bindir/$t" >"$FUZZ/artifacts/logs/$t.log"; return 1; }
  [ -d "$FUZZ/seeds/$t" ] || { echo "no seeds in fuzz/seeds/$t" >"$FUZZ/artifacts/logs/$t.log"; return 1; }
  rm -rf "$corpus"
  mkdir -p "$corpus" "$FUZZ/artifacts/$t"
  cp "$FUZZ/seeds/$t"/* "$corpus/"
  # -timeout: one input taking 10 s is a hang.
  "$bindir/$t" "$corpus" \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$FUZZ/artifacts/$t/" \
    >"$FUZZ/artifacts/logs/$t.log" 2>&1
}

marker=$FUZZ/artifacts/logs/.started
touch "$marker"
declare -A pid_of=()
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run_one "$t" &
  pid_of[$t]=$!
done
failed=()
for t in "${targets[@]}"; do
  wait "${pid_of[$t]}" || failed+=("$t")
done

# ---------------------------------------------------------------- summary
fstat() { sed -n "s/^stat::$2: *//p" "$FUZZ/artifacts/logs/$1.log" | tail -n 1; }
field() { # last value of "<name>: N" on a libFuzzer status line
  grep -E "^#[0-9]+[[:space:]]+$2" "$FUZZ/artifacts/logs/$1.log" | tail -n 1 \
    | sed -nE "s/.* $3: ([0-9]+).*/\1/p"
}
log "fuzz summary (${SECONDS_PER_TARGET}s per target)"
for t in "${targets[@]}"; do
  result=ok
  [[ " ${failed[*]-} " == *" $t "* ]] && result=FAILED
  printf 'fuzz %-16s %-6s execs=%-9s exec/s=%-7s cov=%-5s (seeds: %-5s) ft=%-5s corpus=%s\n' \
    "$t" "$result" "$(fstat "$t" number_of_executed_units)" "$(fstat "$t" average_exec_per_sec)" \
    "$(field "$t" '(DONE|pulse|NEW|REDUCE)' cov)" "$(field "$t" INITED cov)" \
    "$(field "$t" '(DONE|pulse|NEW|REDUCE)' ft)" "$(find "$FUZZ/corpus/$t" -type f 2>/dev/null | wc -l)"
done
end=$(date +%s)
echo "build $((build_done - start))s, runs $((end - build_done))s, total $((end - start))s"

if [ ${#failed[@]} -gt 0 ]; then
  for t in "${failed[@]}"; do
    log "fuzz target $t FAILED — fuzz/artifacts/logs/$t.log"
    # The panic message first (the backtrace after it is long), then the end.
    grep -A 3 -m 1 'panicked at' "$FUZZ/artifacts/logs/$t.log" >&2 || true
    echo "[...]" >&2
    tail -n 15 "$FUZZ/artifacts/logs/$t.log" >&2 || true
    find "$FUZZ/artifacts/$t" -type f -newer "$marker" | while read -r a; do
      echo "artifact: ${a#"$ROOT"/} ($(wc -c <"$a") bytes) hex: $(head -c 512 "$a" | od -An -tx1 -v | tr -d ' \n')" >&2
    done
  done
  exit 1
fi

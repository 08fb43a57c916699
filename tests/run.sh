#!/usr/bin/env bash
# Runs zhida's whole test suite: unit tests (release build with -Werror), the same unit tests
# and the integration tests under ASan+UBSan (real redis-server and zhidad on 127.0.0.1),
# and each libFuzzer target for a bounded time. Ends with "N passed, N failed".
#
#   tests/run.sh              everything (what CI runs)
#   FUZZ_SECONDS=60 tests/run.sh
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
JOBS=${JOBS:-$(nproc)}
passed=0
failed=0
failures=()

note() { printf '\n== %s\n' "$*"; }
record() { # name status
  if [[ $2 -eq 0 ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$1"); fi
}

deploy/install-deps.sh || { echo "dependency install failed"; echo "0 passed, 1 failed"; exit 1; }

# meson test prints "Ok: N ... Fail: N"; fold those into the totals.
run_meson_tests() { # builddir label
  local out
  out=$(meson test -C "$1" --suite unit --print-errorlogs 2>&1)
  local rc=$?
  echo "$out" | grep -E "^ *[0-9]+/[0-9]+ |^(Ok|Fail|Expected Fail|Unexpected Pass|Skipped|Timeout):" 
  local ok fail to
  ok=$(echo "$out" | awk '/^Ok:/{print $2}')
  fail=$(echo "$out" | awk '/^Fail:/{print $2}')
  to=$(echo "$out" | awk '/^Timeout:/{print $2}')
  passed=$((passed + ${ok:-0}))
  failed=$((failed + ${fail:-0} + ${to:-0}))
  if [[ $rc -ne 0 ]]; then
    echo "$out" | tail -60
    failures+=("$2 unit tests")
    [[ -z "$fail$to" || "${fail:-0}${to:-0}" == "00" ]] && failed=$((failed + 1))
  fi
}

note "format (clang-format, .clang-format)"
# The C sources: from git when this is a checkout, else every .c/.h outside build trees (a
# tarball); never an empty list, which would make clang-format read stdin and check nothing.
sources() {
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then git ls-files '*.c' '*.h'
  else find . -name '*.[ch]' -not -path './build*' -not -path './var/*' | sed 's|^\./||'; fi
}
srcs=$(sources)
if [[ -n $srcs ]] && clang-format --dry-run --Werror $srcs >format.log 2>&1; then
  echo "format: ok"; record "format" 0
else
  head -30 format.log; record "format" 1
fi

note "layering (docs/DESIGN.md: folders and the ways data may flow)"
tests/check_layers.sh
record "layering" $?

note "release build (-Werror)"
if [[ ! -d build ]]; then meson setup build -Dwerror=true >/dev/null; fi
if ninja -C build -j "$JOBS" >build.log 2>&1; then
  record "release build" 0
  run_meson_tests build release
  note "deployment (systemd units, redis.conf, meson install)"
  tests/check_deploy.sh build
  record "deploy" $?
else
  tail -40 build.log; record "release build" 1
fi

note "ASan+UBSan build"
if [[ ! -d build-asan ]]; then
  meson setup build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dbuildtype=debug >/dev/null
fi
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS=detect_leaks=1
if ninja -C build-asan -j "$JOBS" >build-asan.log 2>&1; then
  record "asan build" 0
  run_meson_tests build-asan asan
else
  tail -40 build-asan.log; record "asan build" 1
fi

note "fuzz targets (${FUZZ_SECONDS}s each)"
# Built by meson like everything else (-Dfuzz=true instruments every library), with clang.
if [[ ! -d build-fuzz/meson-info ]]; then
  rm -rf build-fuzz
  CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dbuildtype=debugoptimized >/dev/null
fi
fuzzers=()
for src in tests/fuzz/fuzz_*.c; do fuzzers+=("tests/$(basename "$src" .c)"); done
if ninja -C build-fuzz -j "$JOBS" "${fuzzers[@]}" >build-fuzz.log 2>&1; then
  for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    corpus="build-fuzz/corpus-$name"
    mkdir -p "$corpus"
    seeds="tests/fuzz/seeds/${name#fuzz_}"
    dict="tests/fuzz/${name#fuzz_}.dict"
    if "build-fuzz/tests/$name" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
        $( [[ -f $dict ]] && echo "-dict=$dict" ) \
        -print_final_stats=0 "$corpus" $( [[ -d $seeds ]] && echo "$seeds" ) \
        >"build-fuzz/$name.run.log" 2>&1; then
      echo "$name: ok ($(grep -c . "build-fuzz/$name.run.log") log lines)"
      record "$name" 0
    else
      tail -40 "build-fuzz/$name.run.log"; record "$name" 1
    fi
  done
else
  tail -30 build-fuzz.log; record "fuzz build" 1
fi

note "integration tests (ASan zhidad, real redis-server)"
export ZHIDAD="$ROOT/build-asan/zhidad/zhidad" ZHIDA="$ROOT/build-asan/client/zhida"
out=$(/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration 2>&1)
rc=$?
echo "$out" | tail -40
summary=$(echo "$out" | tail -1)
ip=$(echo "$summary" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')
if_=$(echo "$summary" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+')
ie=$(echo "$summary" | grep -oE '[0-9]+ error' | grep -oE '[0-9]+')
passed=$((passed + ${ip:-0}))
failed=$((failed + ${if_:-0} + ${ie:-0}))
if [[ $rc -ne 0 && -z "$if_$ie" ]]; then failed=$((failed + 1)); failures+=("pytest rc=$rc"); fi

note "summary"
((${#failures[@]})) && printf 'failed: %s\n' "${failures[@]}"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]

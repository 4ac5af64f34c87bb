#!/bin/sh
# Run every atheris target for SECONDS (default 150), one after another; logs in WORK.
# Usage: fuzz/run.sh [SECONDS] [WORK]   (WORK default: a new temporary directory)
set -u
seconds=${1:-150}
work=${2:-$(mktemp -d -t connscale-fuzz.XXXXXX)}
python=${PYTHON:-.venv/bin/python}
status=0
for corpus in framing jsonrpc http session; do
  target=fuzz/fuzz_$corpus.py
  [ "$corpus" = session ] && target=fuzz/fuzz_session_codec.py
  mkdir -p "$work/$corpus"
  echo "== $target ($seconds s), log: $work/$corpus.log"
  "$python" "$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len=4096 -print_final_stats=1 -artifact_prefix="$work/$corpus-" \
    "$work/$corpus" "fuzz/corpus/$corpus" >"$work/$corpus.log" 2>&1 || status=1
  grep -E "DONE|Uncaught|crash-" "$work/$corpus.log"
done
exit $status

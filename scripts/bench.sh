#!/usr/bin/env bash
# The switch load benchmark of `make bench`: a throwaway durable PostgreSQL
# (shared_buffers sized to the card base, checkpoints every 15 minutes),
# CARDS cards, pgbench -N as the reference, the switch in-process and the
# load generator, after an unmeasured warm-up of 30 s per million cards
# (-warmup), for DURATION of approvals, then DURATION of the realistic
# mix (-mix realistic: completions, reversals, refunds, advices, declines;
# -mixed-duration changes it, negative skips it), then `ledger verify`. Each
# run ends with
#   bench: approved_per_s=<n> p99_ms=<x> pgbench_tps=<y> ratio=<n/y> mixed_per_s=<m> mixed_p99_ms=<z> mixed_ratio=<m/y>
# where mixed_per_s counts the realistic mix's answered money messages.
# With RUNS > 1 the last line is the median of the runs, field by field.
# Extra arguments go to `loadtest bench` (e.g. -profile iso87 -conns 16
# -inflight 32 -cpuprofile cpu.prof).
set -euo pipefail
CARDS=${CARDS:-100000}
DURATION=${DURATION:-20s}
RUNS=${RUNS:-1}
GO=${GO:-go}

bin=$(mktemp -d)/loadtest
trap 'rm -rf "$(dirname "$bin")"' EXIT
"$GO" build -o "$bin" ./cmd/loadtest

lines=()
for i in $(seq 1 "$RUNS"); do
  echo "bench run $i of $RUNS: $CARDS cards, $DURATION of load" >&2
  line=$("$bin" bench -quiet -cards "$CARDS" -duration "$DURATION" "$@" | grep '^bench: ')
  lines+=("$line")
  [ "$RUNS" -gt 1 ] && echo "run $i: $line" >&2
done

if [ "$RUNS" -eq 1 ]; then
  echo "${lines[0]}"
  exit 0
fi
# Median of each field over the runs.
printf '%s\n' "${lines[@]}" | awk '
  { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1], NR] = kv[2]; if (NR == 1) keys[i] = kv[1] } n = NR; nf = NF }
  END {
    out = "bench:"
    for (i = 2; i <= nf; i++) {
      k = keys[i]; m = 0
      for (r = 1; r <= n; r++) a[r] = v[k, r] + 0
      for (x = 1; x <= n; x++) for (y = x + 1; y <= n; y++) if (a[y] < a[x]) { t = a[x]; a[x] = a[y]; a[y] = t }
      med = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
      out = out sprintf(" %s=%s", k, (k == "approved_per_s" || k == "pgbench_tps" || k == "mixed_per_s") ? sprintf("%.0f", med) : sprintf("%.2f", med))
    }
    print out
  }'

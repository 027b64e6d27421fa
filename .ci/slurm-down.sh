#!/usr/bin/env bash
# Stop the daemons .ci/slurm-up.sh STATE_DIR started, by their pids (a munged it found running is left alone).
set -uo pipefail
state=$(realpath -m "${1:?usage: slurm-down.sh STATE_DIR}")
for name in slurmd slurmctld munged; do
    pidfile="$state/$name.pid"
    [ -s "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    rm -f "$pidfile"
done
exit 0

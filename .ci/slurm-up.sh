#!/usr/bin/env bash
# Start a single-node Slurm cluster on localhost (munged, slurmctld, slurmd) for the tests.
# Installs nothing: needs root and Debian's slurm-wlm + munge (see .ci/run).
# Usage: .ci/slurm-up.sh STATE_DIR   -> prints `export SLURM_CONF=STATE_DIR/slurm.conf`
# Everything Slurm keeps (config, spool, state, logs, pid files) lives in STATE_DIR;
# .ci/slurm-down.sh STATE_DIR stops exactly the daemons started here, by pid.
set -euo pipefail
state=$(realpath -m "${1:?usage: slurm-up.sh STATE_DIR}")
[ "$(id -u)" = 0 ] || { echo "slurm-up: needs root" >&2; exit 1; }
for cmd in munged munge unmunge slurmctld slurmd sinfo; do
    command -v "$cmd" >/dev/null || { echo "slurm-up: $cmd not found (apt-get install -y slurm-wlm munge)" >&2; exit 1; }
done
mkdir -p "$state/ctld" "$state/d"
rm -f "$state/slurmctld.log" "$state/slurmd.log"  # a reused DIR: only this start's errors count

# 1. munge: reuse a running munged, else start one as user munge (key created if missing).
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    install -d -o munge -g munge -m 700 /etc/munge /var/lib/munge /var/log/munge
    install -d -o munge -g munge -m 755 /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        (umask 077; head -c 1024 /dev/urandom > /etc/munge/munge.key)
        chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
    fi
    runuser -u munge -- munged --force
    cp /run/munge/munged.pid "$state/munged.pid"
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n | unmunge | grep -q 'STATUS: *Success' || { echo "slurm-up: munged does not answer" >&2; exit 1; }
fi

# 2. slurm.conf for this host.
host=$(hostname -s)
cpus=$(nproc)
mem=$(free -m | awk '/^Mem:/ {print int($2 * 0.9)}')
cat > "$state/slurm.conf" <<CONF
ClusterName=local
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
SlurmUser=root
ReturnToService=2
MpiDefault=none
KillWait=10
DefMemPerCPU=$((mem / cpus))
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$state/slurm.conf"

# 3. slurmctld, then slurmd; wait until the node is idle.
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
ours() {  # our own daemons are alive (not another cluster answering on the same ports)
    for name in slurmctld slurmd; do
        [ -s "$state/$name.pid" ] && kill -0 "$(cat "$state/$name.pid")" 2>/dev/null || return 1
    done
}
for _ in $(seq 100); do
    sleep 0.2
    if grep -qs fatal "$state/slurmctld.log" "$state/slurmd.log"; then
        echo "slurm-up: $(grep -hs fatal "$state/slurmctld.log" "$state/slurmd.log" | head -1) (another Slurm running here?)" >&2
        exit 1
    fi
    ours && [ "$(sinfo -h -N -o %t 2>/dev/null)" = idle ] && { echo "export SLURM_CONF=$SLURM_CONF"; exit 0; }
done
echo "slurm-up: node not idle after 20 s: $(sinfo -N 2>&1 | tail -1); see $state/*.log" >&2
exit 1

#!/bin/sh
# Runs a command under a CPU quota, as a pod's CPU limit does (CFS bandwidth, 100 ms periods):
#   bench/cpu-quota.sh CPUS COMMAND [ARGS...]
# For signet under the bench, its deployment manifest's limit of one CPU:
#   bench/run.sh --only s --signet-prefix "bench/cpu-quota.sh 1"
# signet then also starts one worker per runtime, as in the pod (the standard library counts
# the quota). Needs root and the cgroup `cpu` controller (v1, or v2 with `cpu` enabled for
# children). Each run gets a cgroup of its own (signet-bench-PID), so two replicas do not
# share one quota; the empty ones left by earlier runs are removed first.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 CPUS COMMAND [ARGS...]" >&2; exit 2; }
cpus=$1
shift
period=100000
# A number of CPUs, at least a hundredth (the kernel's smallest quota is 1 ms a period).
case $cpus in
    '' | *[!0-9.]* | *.*.* | .) cpus_ok=no ;;
    *) cpus_ok=yes ;;
esac
quota=$(awk -v c="$cpus" -v p="$period" 'BEGIN { if (c * p < 1000) exit 1; printf "%d", c * p }') ||
    cpus_ok=no
[ "$cpus_ok" = yes ] ||
    { echo "cpu-quota.sh: CPUS must be a number of CPUs of at least 0.01, not '$cpus'" >&2; exit 2; }
if [ -w /sys/fs/cgroup/cpu ] && [ -e /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
    root=/sys/fs/cgroup/cpu
elif [ -w /sys/fs/cgroup ] && grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; then
    root=/sys/fs/cgroup
else
    echo "cpu-quota.sh: no writable cgroup cpu controller (run as root)" >&2
    exit 2
fi
for stale in "$root"/signet-bench-*; do
    [ -d "$stale" ] && rmdir "$stale" 2>/dev/null || true
done
dir=$root/signet-bench-$$
mkdir "$dir"
if [ -e "$dir/cpu.max" ]; then
    echo "$quota $period" > "$dir/cpu.max"
else
    echo "$period" > "$dir/cpu.cfs_period_us"
    echo "$quota" > "$dir/cpu.cfs_quota_us"
fi
echo $$ > "$dir/cgroup.procs"
exec "$@"

#!/usr/bin/env bash
# A RECONSTRUCTION, for measurement only, of the adjustment cycle of the
# original bash ksmtuned (Fedora/RHEL), written from the behaviour described
# in the project's spec of the classic daemon (ksmtuned-classic.md), not from
# a copy of the original. Like the original, each cycle forks:
#   pgrep -d ',' PATTERN          the QEMU processes, matched on their comm
#                                 (procps-ng 4.0.3 and later refuse this
#                                 15+ character pattern and match nothing:
#                                 the original then counted 0; whatever the
#                                 installed pgrep does is what is measured)
#   ps -o rss= -p PIDS | awk      their RSS summed (only when pgrep found any)
#   awk /proc/meminfo             MemFree + Buffers + Cached
#   date                          one per debug line when DEBUG is set
# KSMCTL, which wrote the sysfs files with shell builtins, does nothing
# here: the Rust side of the benchmark also measures sample + decide only.
#
# Usage: ksmtuned-classic-cycle.sh CYCLES
# Prints one line per cycle: its wall time in microseconds.
set -u

KSM_SLEEP_MSEC=${KSM_SLEEP_MSEC:-10}
KSM_NPAGES_BOOST=${KSM_NPAGES_BOOST:-300}
KSM_NPAGES_DECAY=${KSM_NPAGES_DECAY:--50}
KSM_NPAGES_MIN=${KSM_NPAGES_MIN:-64}
KSM_NPAGES_MAX=${KSM_NPAGES_MAX:-1250}
KSM_THRES_COEF=${KSM_THRES_COEF:-20}
KSM_THRES_CONST=${KSM_THRES_CONST:-2048}
DEBUG=${DEBUG:-}
LOGFILE=${LOGFILE:-/dev/stdout}

total=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
sleep=$((KSM_SLEEP_MSEC * 16 * 1024 * 1024 / total))
[ "$sleep" -le 10 ] && sleep=10
thres=$((total * KSM_THRES_COEF / 100))
[ "$KSM_THRES_CONST" -gt "$thres" ] && thres=$KSM_THRES_CONST
npages=0

debug() {
    [ -n "$DEBUG" ] && echo "$(date): $*" >> "$LOGFILE"
    return 0
}

KSMCTL() {
    :
}

committed_memory() {
    local pids
    pids=$(pgrep -d ',' '^qemu(-(kvm|system-.+)|:.{1,11})$' 2>/dev/null)
    if [ -n "$pids" ]; then
        ps -o rss= -p "$pids" | awk '{ sum += $1 } END { print sum + 0 }'
    else
        echo 0
    fi
}

free_memory() {
    awk '/^(MemFree|Buffers|Cached):/ { free += $2 } END { print free }' /proc/meminfo
}

adjust() {
    local free committed
    free=$(free_memory)
    committed=$(committed_memory)
    debug "committed $committed free $free"
    if [ $((committed + thres)) -lt "$total" ] && [ "$free" -gt "$thres" ]; then
        KSMCTL stop
        debug "$((committed + thres)) < $total and free > $thres, stop ksm"
        return 1
    fi
    debug "$((committed + thres)) > $total, start ksm"
    if [ "$free" -lt "$thres" ]; then
        npages=$((npages + KSM_NPAGES_BOOST))
        debug "$free < $thres, boost"
    else
        npages=$((npages + KSM_NPAGES_DECAY))
        debug "$free > $thres, decay"
    fi
    if [ "$npages" -lt "$KSM_NPAGES_MIN" ]; then
        npages=$KSM_NPAGES_MIN
    elif [ "$npages" -gt "$KSM_NPAGES_MAX" ]; then
        npages=$KSM_NPAGES_MAX
    fi
    KSMCTL start "$npages" "$sleep"
    debug "KSMCTL start $npages $sleep"
}

for ((i = 0; i < ${1:-10}; i++)); do
    t0=${EPOCHREALTIME/./}
    adjust
    t1=${EPOCHREALTIME/./}
    echo $((t1 - t0))
done

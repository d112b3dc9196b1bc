//! A second writer of KSM's settings beside the tuner: libvirt's daemon,
//! which `virsh node-memory-tune` has write pages_to_scan,
//! sleep_millisecs and merge_across_nodes.

use super::{Facts, Finding, Severity};

/// A note when a libvirt daemon runs beside a tuner that writes KSM's
/// rate: the two do not know of each other. Only a running daemon can be
/// seen; whether anyone used `virsh node-memory-tune` leaves no trace.
pub(super) fn libvirt(f: &Facts, out: &mut Vec<Finding>) {
    let (Some(w), Some(t)) = (f.other_writers.first(), f.tuners.first()) else {
        return;
    };
    out.push(
        Finding::new(
            "libvirt-writes-ksm",
            Severity::Info,
            format!(
                "{} (pid {}) runs beside the tuner {} (pid {}): `{}` writes KSM's {} through it",
                w.comm,
                w.pid,
                t.comm,
                t.pid,
                w.command,
                w.files.join(", ")
            ),
            "the tuner sets pages_to_scan and sleep_millisecs itself: a rate set with virsh \
             lasts only until the tuner's next change, and the tuner does not know of it (the \
             last writer wins)",
            "tune the rate in one place: in /etc/ksmtuned.conf (KSM_NPAGES_MIN, KSM_NPAGES_MAX, \
             KSM_SLEEP_MSEC; systemctl reload ksmtuned), not with virsh node-memory-tune's \
             --shm-pages-to-scan or --shm-sleep-millisecs (without options it only reads \
             them); or, for libvirt's values to hold, stop the tuner (systemctl disable --now \
             ksmtuned). merge_across_nodes changes only with no page merged: ksmctl set \
             merge_across_nodes=N --unmerge",
        )
        .num("writer_pid", w.pid)
        .num("tuner_pid", t.pid),
    );
}

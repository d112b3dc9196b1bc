//! SELinux as the kernel shows it in `/sys/fs/selinux` (selinuxfs): its
//! mode, whether the loaded policy knows a type, and a process's context.
//!
//! selinuxfs lists no modules: the loaded policy is one binary. Whether a
//! module's types are in it is asked the way libselinux's
//! `security_check_context` asks: a context written to
//! `/sys/fs/selinux/context` is accepted (the type exists) or refused
//! with EINVAL. That needs the live kernel, so it is only done when the
//! root is `/`; the module store on disk is read by `ksmctl doctor`
//! (src/doctor/gather.rs).

use std::fs;
use std::io::Write;

use crate::root::Root;

/// The selinuxfs mount point.
pub const SELINUXFS: &str = "/sys/fs/selinux";

/// SELinux's state; `None` from [`status`] when it is not there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// `enforce` is 1: denials are enforced (else only logged: permissive).
    pub enforcing: bool,
    /// `mls` is 1: contexts carry a level (`:s0`).
    pub mls: bool,
}

/// SELinux's mode, from `/sys/fs/selinux/enforce`: `None` when the file
/// does not exist or cannot be read (SELinux disabled or not built in:
/// selinuxfs is not mounted).
pub fn status(root: &Root) -> Option<Status> {
    let read = |f: &str| fs::read_to_string(root.join(format!("{SELINUXFS}/{f}"))).ok();
    let enforcing = read("enforce")?.trim() == "1";
    let mls = read("mls").is_none_or(|m| m.trim() == "1");
    Some(Status { enforcing, mls })
}

/// Whether the loaded policy knows the type `ty` (`role` `system_r` for a
/// domain, `object_r` for a file or port type): `None` when it cannot be
/// asked (not the host's root, no selinuxfs, or the check refused).
pub fn type_known(root: &Root, status: Status, role: &str, ty: &str) -> Option<bool> {
    if !root.is_host() {
        return None;
    }
    let level = if status.mls { ":s0" } else { "" };
    let context = format!("system_u:{role}:{ty}{level}");
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(root.join(format!("{SELINUXFS}/context")))
        .ok()?;
    match f.write(context.as_bytes()) {
        Ok(_) => Some(true),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Some(false),
        Err(_) => None,
    }
}

/// The SELinux context a process runs in (`/proc/PID/attr/current`, e.g.
/// `system_u:system_r:ksmtuned_t:s0`); `None` if unreadable or gone.
pub fn process_context(root: &Root, pid: u32) -> Option<String> {
    let raw = fs::read(root.join(format!("/proc/{pid}/attr/current"))).ok()?;
    let s = String::from_utf8_lossy(&raw)
        .trim_end_matches(['\0', '\n'])
        .to_string();
    (!s.is_empty()).then_some(s)
}

/// The type of a context (`system_u:system_r:ksmtuned_t:s0` ->
/// `ksmtuned_t`).
pub fn context_type(context: &str) -> Option<&str> {
    context.split(':').nth(2).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_context_and_type() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        assert_eq!(status(&root), None, "no selinuxfs: no SELinux");
        let fs_dir = t.path().join("sys/fs/selinux");
        fs::create_dir_all(&fs_dir).unwrap();
        fs::write(fs_dir.join("enforce"), "1").unwrap();
        assert_eq!(
            status(&root),
            Some(Status {
                enforcing: true,
                mls: true
            })
        );
        fs::write(fs_dir.join("enforce"), "0").unwrap();
        fs::write(fs_dir.join("mls"), "0").unwrap();
        assert_eq!(
            status(&root),
            Some(Status {
                enforcing: false,
                mls: false
            })
        );
        // A test root cannot ask the kernel.
        let st = status(&root).unwrap();
        assert_eq!(type_known(&root, st, "system_r", "ksmtuned_t"), None);
        let p = t.path().join("proc/7/attr");
        fs::create_dir_all(&p).unwrap();
        fs::write(p.join("current"), "system_u:system_r:ksmtuned_t:s0\0").unwrap();
        let c = process_context(&root, 7).unwrap();
        assert_eq!(c, "system_u:system_r:ksmtuned_t:s0");
        assert_eq!(context_type(&c), Some("ksmtuned_t"));
        assert_eq!(context_type("unconfined"), None);
        assert_eq!(process_context(&root, 8), None);
    }
}

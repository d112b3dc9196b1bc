//! Thin, safe wrappers around the few libc calls the project needs.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// The page size (`sysconf(_SC_PAGESIZE)`); never assume 4096.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as u64
    } else {
        4096
    }
}

/// The number of physical pages (`sysconf(_SC_PHYS_PAGES)`).
pub fn phys_pages() -> u64 {
    // SAFETY: as above.
    let n = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    n.max(0) as u64
}

/// Clock ticks per second, the unit of utime/stime in `/proc/PID/stat`.
pub fn clock_ticks() -> u64 {
    // SAFETY: as above.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if n > 0 {
        n as u64
    } else {
        100
    }
}

/// Read a small file `name` relative to the directory `dir` into `buf`
/// with one `openat`, one `read` and one `close`, and no allocation: how a
/// pass over `/proc` reads thousands of tiny files (`PID/comm`) cheaply.
/// Returns the number of bytes read (at most `buf.len()`).
pub fn read_small_at(dir: &File, name: &std::ffi::CStr, buf: &mut [u8]) -> io::Result<usize> {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: `dir` is an open descriptor and `name` NUL-terminated.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Call `f` with the name of every entry of the open directory `dir`
/// (from its start; `.` and `..` included), read with `getdents64` into a
/// buffer on the stack: no heap allocation for the listing or per entry.
/// A pass over `/proc` on a host with thousands of processes lists it every
/// cycle; `std::fs::read_dir` allocates a 32 KiB buffer and a name per
/// entry each time.
pub fn for_each_dir_entry(dir: &File, mut f: impl FnMut(&[u8])) -> io::Result<()> {
    let fd = dir.as_raw_fd();
    // SAFETY: lseek on an open descriptor.
    if unsafe { libc::lseek(fd, 0, libc::SEEK_SET) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = [0u8; 16 * 1024];
    loop {
        // SAFETY: the buffer is valid for its length; the kernel writes
        // whole linux_dirent64 records into it.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                fd,
                buf.as_mut_ptr(),
                buf.len() as libc::c_ulong,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Ok(());
        }
        let filled = &buf[..n as usize];
        // struct linux_dirent64: d_ino u64, d_off i64, d_reclen u16,
        // d_type u8, then the NUL-terminated name.
        let mut off = 0;
        while off + 19 <= filled.len() {
            let reclen = usize::from(u16::from_ne_bytes([filled[off + 16], filled[off + 17]]));
            if reclen < 19 || off + reclen > filled.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "getdents64 returned a malformed record",
                ));
            }
            let name = &filled[off + 19..off + reclen];
            let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            f(&name[..len]);
            off += reclen;
        }
    }
}

/// Take an exclusive `flock` on `file`; `wait` blocks until it is free,
/// otherwise `WouldBlock` is returned when another holder has it.
pub fn flock_exclusive(file: &File, wait: bool) -> io::Result<()> {
    let op = if wait {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    loop {
        // SAFETY: the descriptor is owned by `file` and open.
        let r = unsafe { libc::flock(file.as_raw_fd(), op) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `PR_SET_MEMORY_MERGE` (Linux 6.4+).
pub const PR_SET_MEMORY_MERGE: libc::c_int = 67;
/// `PR_GET_MEMORY_MERGE` (Linux 6.4+).
pub const PR_GET_MEMORY_MERGE: libc::c_int = 68;

/// Opt the calling process's whole memory in to (or out of) KSM.
pub fn set_memory_merge(on: bool) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    let r = unsafe {
        libc::prctl(
            PR_SET_MEMORY_MERGE,
            libc::c_ulong::from(on),
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether the calling process has `PR_SET_MEMORY_MERGE` set.
pub fn get_memory_merge() -> io::Result<bool> {
    // SAFETY: prctl with integer arguments only.
    let r = unsafe {
        libc::prctl(
            PR_GET_MEMORY_MERGE,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r != 0)
    }
}

/// Set the calling thread's name (`comm`, at most 15 bytes are kept).
pub fn set_comm(name: &str) -> io::Result<()> {
    let mut buf = [0u8; 16];
    let n = name.len().min(15);
    buf[..n].copy_from_slice(&name.as_bytes()[..n]);
    // SAFETY: buf is a NUL-terminated 16-byte buffer, as PR_SET_NAME expects.
    let r = unsafe { libc::prctl(libc::PR_SET_NAME, buf.as_ptr() as libc::c_ulong, 0, 0, 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Lower the calling thread's CPU priority by `by` nice steps (at most to
/// 19); threads it starts afterwards inherit the value. On Linux
/// `setpriority(PRIO_PROCESS, tid)` applies to the one thread; lowering
/// needs no privilege.
pub fn lower_thread_priority(by: i32) -> io::Result<()> {
    // SAFETY: gettid, getpriority and setpriority take and return integers
    // only; errno is thread-local and cleared first because -1 is also a
    // valid nice value.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        *libc::__errno_location() = 0;
        let now = libc::getpriority(libc::PRIO_PROCESS, tid);
        if now == -1 && *libc::__errno_location() != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::setpriority(libc::PRIO_PROCESS, tid, (now + by).clamp(-20, 19)) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// CPU time the calling thread has used, nanoseconds
/// (`CLOCK_THREAD_CPUTIME_ID`; `None` if the clock cannot be read).
pub fn thread_cpu_ns() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `ts` is, and reads
    // nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// Send a signal to a process.
pub fn kill(pid: u32, signal: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Send a signal to every process of a process group.
pub fn kill_group(pgid: u32, signal: libc::c_int) -> io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid)
        .ok()
        .filter(|g| *g > 1)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "process group out of range"))?;
    // SAFETY: killpg has no memory-safety preconditions.
    if unsafe { libc::killpg(pgid, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Have the kernel send `signal` to the calling process when the thread
/// that started it exits (`PR_SET_PDEATHSIG`).
pub fn set_parent_death_signal(signal: libc::c_int) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    let r = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The parent's pid (`getppid`).
pub fn parent_pid() -> u32 {
    // SAFETY: getppid cannot fail.
    unsafe { libc::getppid() as u32 }
}

/// Whether a process exists (signal 0; EPERM still means it exists).
pub fn process_exists(pid: u32) -> bool {
    match kill(pid, 0) {
        Ok(()) => true,
        Err(e) => e.raw_os_error() == Some(libc::EPERM),
    }
}

/// Restore the default SIGPIPE action, so that `ksmctl status | head`
/// ends quietly like other command-line tools instead of reporting EPIPE.
pub fn default_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_DFL is always sound.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The CPU time the calling thread has used (CLOCK_THREAD_CPUTIME_ID).
pub fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own; this clock exists
    // on every Linux (it fails only for an unknown clock id).
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if r != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// The effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// Local time in date(1)'s default form: `Fri Nov 27 13:45:12 UTC 2026`.
pub fn date_string(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as libc::time_t;
    // SAFETY: tm is plain data; localtime_r fills it from `secs`; strftime
    // writes at most buf.len() bytes and returns how many it wrote.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return secs.to_string();
        }
        let mut buf = [0u8; 128];
        let fmt = b"%a %b %e %H:%M:%S %Z %Y\0";
        let n = libc::strftime(
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
            fmt.as_ptr() as *const libc::c_char,
            &tm,
        );
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowering_a_thread_priority_leaves_the_others() {
        let nice = || {
            std::fs::read_to_string("/proc/thread-self/stat")
                .unwrap()
                .rsplit(')')
                .next()
                .unwrap()
                .split_whitespace()
                .nth(16)
                .unwrap()
                .parse::<i32>()
                .unwrap()
        };
        let before = nice();
        let (lowered, inherited) = std::thread::spawn(move || {
            lower_thread_priority(5).unwrap();
            let lowered = nice();
            (lowered, std::thread::spawn(nice).join().unwrap())
        })
        .join()
        .unwrap();
        assert_eq!(lowered, (before + 5).min(19));
        assert_eq!(inherited, lowered);
        assert_eq!(nice(), before);
    }

    #[test]
    fn sysconf_values_are_sane() {
        assert!(page_size() >= 4096 && page_size().is_power_of_two());
        assert!(phys_pages() > 0);
        assert!(clock_ticks() > 0);
    }

    #[test]
    fn date_has_six_fields() {
        let s = date_string(std::time::SystemTime::now());
        // "Fri Nov 27 13:45:12 UTC 2026" (day padded with a space).
        assert_eq!(s.split_whitespace().count(), 6, "{s}");
        assert!(s.ends_with(&s.split_whitespace().last().unwrap().to_string()));
    }

    #[test]
    fn own_process_exists() {
        assert!(process_exists(std::process::id()));
    }
}

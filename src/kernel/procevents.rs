//! The kernel's process events connector: a netlink socket
//! (`NETLINK_CONNECTOR`, group `CN_IDX_PROC`) on which the kernel reports
//! every fork, exec, name change and exit as it happens.
//!
//! This is what lets `ksmtuned` know which processes are QEMU guests
//! without opening `/proc/PID/comm` for every process on every cycle (the
//! cost that grows with the host: about 3.6 µs of kernel time per process,
//! 36 ms a cycle at 10,000 processes). See [`crate::sample::census`].
//!
//! The protocol is small and fixed (`linux/connector.h`, `linux/cn_proc.h`)
//! and is written here over `libc`: the crates that wrap it are either
//! unmaintained (`cnproc`, last released 2022), new and single-author
//! (`proc-connector`), or part of a large async netlink stack (`nlink`).
//!
//! Subscribing needs `CAP_NET_ADMIN` before Linux 6.6 and nothing since;
//! it is refused in a user or pid namespace other than the initial one
//! (events carry the host's pids). [`Connector::subscribe`] waits for the
//! kernel's acknowledgement, so a refusal is an error, not silence.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// `CN_IDX_PROC` and `CN_VAL_PROC`: the connector's id of process events
/// (also the multicast group to bind to).
const CN_IDX_PROC: u32 = 1;
const CN_VAL_PROC: u32 = 1;
/// `enum proc_cn_mcast_op`.
const PROC_CN_MCAST_LISTEN: u32 = 1;
const PROC_CN_MCAST_IGNORE: u32 = 2;
/// `enum what` of `struct proc_event`.
const PROC_EVENT_NONE: u32 = 0x0000_0000;
const PROC_EVENT_FORK: u32 = 0x0000_0001;
const PROC_EVENT_EXEC: u32 = 0x0000_0002;
const PROC_EVENT_COMM: u32 = 0x0000_0200;
const PROC_EVENT_EXIT: u32 = 0x8000_0000;

/// `struct nlmsghdr`: len u32, type u16, flags u16, seq u32, pid u32.
const NLMSG_HDR: usize = 16;
/// `struct cn_msg`: id.idx u32, id.val u32, seq u32, ack u32, len u16,
/// flags u16, then the payload.
const CN_MSG_HDR: usize = 20;
/// `struct proc_event`: what u32, cpu u32, timestamp_ns u64, then the
/// event's data.
const PROC_EVENT_HDR: usize = 16;

/// The receive buffer asked for by default: room for thousands of events
/// between two reads (a burst of process starts on a busy host). Raised
/// above `net.core.rmem_max` when the process may (`CAP_NET_ADMIN`).
pub const RCVBUF: usize = 8 << 20;

/// One process event, reduced to what a process table needs. Pids are the
/// kernel's task ids: a thread has `pid != tgid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcEvent {
    /// A task was created; `child_pid == child_tgid` for a new process.
    Fork {
        parent_tgid: u32,
        child_pid: u32,
        child_tgid: u32,
    },
    /// A process ran `execve` (its name and command line changed).
    Exec { pid: u32, tgid: u32 },
    /// A task changed its name (`prctl(PR_SET_NAME)`, `/proc/PID/comm`).
    Comm { pid: u32, tgid: u32 },
    /// A task exited; `pid == tgid` for a process's main thread.
    Exit { pid: u32, tgid: u32 },
    /// The kernel's answer to a (un)subscription: `err` is an errno value,
    /// 0 for success; `ack` is the request's ack number plus one.
    Ack { err: u32, ack: u32 },
    /// Anything else (uid, gid, sid, ptrace, coredump changes).
    Other,
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

/// Parse one datagram from the socket into `out`: one or more netlink
/// messages, each a `cn_msg` carrying a `proc_event`. Messages that are
/// not process events are skipped; a malformed one ends the datagram with
/// an error (what was parsed before it is kept).
pub fn parse(datagram: &[u8], out: &mut Vec<ProcEvent>) -> Result<(), String> {
    let mut off = 0;
    while off + NLMSG_HDR <= datagram.len() {
        let len = u32_at(datagram, off).unwrap_or(0) as usize;
        if len < NLMSG_HDR || len > datagram.len() - off {
            return Err(format!(
                "netlink message at byte {off} has length {len} ({} bytes left)",
                datagram.len() - off
            ));
        }
        let msg = &datagram[off + NLMSG_HDR..off + len];
        let msg_type = u16_at(datagram, off + 4).unwrap_or(0);
        // NLMSG_NOOP (1) and NLMSG_ERROR (2) carry no event.
        if msg_type != libc::NLMSG_NOOP as u16 && msg_type != libc::NLMSG_ERROR as u16 {
            if let Some(ev) = parse_cn_msg(msg)? {
                out.push(ev);
            }
        }
        // Messages are padded to 4 bytes (NLMSG_ALIGN).
        off += (len + 3) & !3;
    }
    Ok(())
}

fn parse_cn_msg(msg: &[u8]) -> Result<Option<ProcEvent>, String> {
    let short = || format!("connector message of {} bytes is too short", msg.len());
    let idx = u32_at(msg, 0).ok_or_else(short)?;
    let val = u32_at(msg, 4).ok_or_else(short)?;
    if (idx, val) != (CN_IDX_PROC, CN_VAL_PROC) {
        return Ok(None);
    }
    let ack = u32_at(msg, 12).ok_or_else(short)?;
    let payload_len = usize::from(u16_at(msg, 16).ok_or_else(short)?);
    let payload = msg
        .get(CN_MSG_HDR..CN_MSG_HDR + payload_len)
        .ok_or_else(|| {
            format!(
                "connector payload of {payload_len} bytes overruns a {}-byte message",
                msg.len()
            )
        })?;
    let what = u32_at(payload, 0).ok_or_else(|| "process event without a type".to_string())?;
    let data = payload.get(PROC_EVENT_HDR..).unwrap_or(&[]);
    let field = |i: usize| {
        u32_at(data, 4 * i).ok_or_else(|| {
            format!(
                "process event {what:#x} is cut short ({} bytes)",
                data.len()
            )
        })
    };
    Ok(Some(match what {
        PROC_EVENT_NONE => ProcEvent::Ack {
            err: field(0)?,
            ack,
        },
        PROC_EVENT_FORK => ProcEvent::Fork {
            parent_tgid: field(1)?,
            child_pid: field(2)?,
            child_tgid: field(3)?,
        },
        PROC_EVENT_EXEC => ProcEvent::Exec {
            pid: field(0)?,
            tgid: field(1)?,
        },
        PROC_EVENT_COMM => ProcEvent::Comm {
            pid: field(0)?,
            tgid: field(1)?,
        },
        PROC_EVENT_EXIT => ProcEvent::Exit {
            pid: field(0)?,
            tgid: field(1)?,
        },
        _ => ProcEvent::Other,
    }))
}

/// The control message (un)subscribing: nlmsghdr + cn_msg + op.
fn control_message(op: u32, ack: u32) -> [u8; NLMSG_HDR + CN_MSG_HDR + 4] {
    let mut m = [0u8; NLMSG_HDR + CN_MSG_HDR + 4];
    let total = m.len() as u32;
    m[0..4].copy_from_slice(&total.to_ne_bytes());
    m[4..6].copy_from_slice(&(libc::NLMSG_DONE as u16).to_ne_bytes());
    let cn = NLMSG_HDR;
    m[cn..cn + 4].copy_from_slice(&CN_IDX_PROC.to_ne_bytes());
    m[cn + 4..cn + 8].copy_from_slice(&CN_VAL_PROC.to_ne_bytes());
    m[cn + 12..cn + 16].copy_from_slice(&ack.to_ne_bytes());
    m[cn + 16..cn + 18].copy_from_slice(&4u16.to_ne_bytes());
    m[cn + CN_MSG_HDR..].copy_from_slice(&op.to_ne_bytes());
    m
}

/// A subscribed process events socket.
#[derive(Debug)]
pub struct Connector {
    fd: OwnedFd,
    /// The kernel acknowledged our LISTEN: say IGNORE when done.
    listening: bool,
}

/// How the socket answered a wait for data.
pub enum Wait {
    Ready,
    TimedOut,
}

/// A step of subscribing that the kernel (or a filter) refused, with its
/// errno: the same errno means different things at different steps.
#[derive(Debug)]
pub struct Refused {
    /// `socket`: opening the netlink socket; `bind`: joining the process
    /// events group.
    pub step: &'static str,
    pub errno: i32,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.step {
            "socket" => "opening a netlink connector socket",
            _ => "joining the process events group",
        };
        write!(
            f,
            "{what}: {}",
            crate::error::describe_io(&io::Error::from_raw_os_error(self.errno))
        )
    }
}

impl std::error::Error for Refused {}

fn refused(step: &'static str) -> io::Error {
    let e = io::Error::last_os_error();
    let errno = e.raw_os_error().unwrap_or(0);
    io::Error::new(e.kind(), Refused { step, errno })
}

/// Why subscribing failed, for a person: the errors mean different
/// things. EACCES: a security policy refused the socket (SELinux answers
/// so where `ksmtuned_t` lacks `netlink_connector_socket`); EPERM when
/// joining the group: the kernel's own check, which on many kernels
/// (this project's 6.18 test machines among them) lets only processes
/// with CAP_NET_ADMIN join; EPERM when opening the socket: a seccomp
/// filter (SystemCallFilter=); EAFNOSUPPORT / EPROTONOSUPPORT: the sandbox
/// (RestrictAddressFamilies=) or a kernel without the connector.
pub fn why_unavailable(e: &io::Error) -> String {
    let step = e
        .get_ref()
        .and_then(|x| x.downcast_ref::<Refused>())
        .map(|r| (r.step, r.errno));
    let errno = step.map(|s| s.1).or_else(|| e.raw_os_error());
    let what = match (errno, step.map(|s| s.0)) {
        (Some(libc::EACCES), _) => {
            "refused by the security policy (under SELinux, ksmtuned_t needs the \
             netlink_connector_socket permissions: load the ksmtuned SELinux module; \
             `ausearch -m avc -ts recent` shows the denial)"
        }
        (Some(libc::EPERM), Some("socket")) => {
            "refused by a seccomp filter (a unit's SystemCallFilter= without the socket calls)"
        }
        (Some(libc::EPERM), _) => {
            "this kernel lets only processes with CAP_NET_ADMIN join it (the unit does not \
             grant it; a drop-in adding it to CapabilityBoundingSet= and AmbientCapabilities= \
             restores the events)"
        }
        (Some(libc::EAFNOSUPPORT) | Some(libc::EPROTONOSUPPORT), _) => {
            "no netlink connector here (a sandbox without AF_NETLINK in \
             RestrictAddressFamilies=, or a kernel without CONFIG_PROC_EVENTS)"
        }
        _ => "",
    };
    let e = match e.get_ref().and_then(|x| x.downcast_ref::<Refused>()) {
        Some(r) => r.to_string(),
        None => crate::error::describe_io(e),
    };
    if what.is_empty() {
        e
    } else {
        format!("{e}: {what}")
    }
}

impl Connector {
    /// Open the socket, join the process events group and ask the kernel
    /// to send events; fails when the kernel has no connector
    /// (`CONFIG_PROC_EVENTS`), refuses (`EPERM`), or does not acknowledge
    /// within `timeout` (another namespace: it ignores the request).
    /// `rcvbuf` is the socket's receive buffer in bytes ([`RCVBUF`]).
    pub fn subscribe(timeout: Duration, rcvbuf: usize) -> io::Result<Connector> {
        // SAFETY: plain system call; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                libc::NETLINK_CONNECTOR,
            )
        };
        if fd < 0 {
            return Err(refused("socket"));
        }
        // SAFETY: `fd` was just created and is owned by nothing else.
        let mut c = Connector {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            listening: false,
        };
        c.set_rcvbuf(rcvbuf);
        // SAFETY: a zeroed sockaddr_nl is valid; the fields are set below.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = CN_IDX_PROC;
        // SAFETY: `addr` is a valid sockaddr_nl of the given size.
        let r = unsafe {
            libc::bind(
                c.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(refused("bind"));
        }
        let ack = std::process::id();
        c.send(PROC_CN_MCAST_LISTEN, ack)?;
        // The acknowledgement goes to every listener: ours carries ack + 1.
        // Events may arrive before it; they are dropped here (the caller
        // reads /proc once after subscribing).
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 4096];
        let mut events = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the kernel did not acknowledge the subscription (another pid or user namespace?)",
                ));
            }
            if let Wait::TimedOut = c.wait(left)? {
                continue;
            }
            events.clear();
            match c.recv(&mut buf, &mut events, true) {
                Ok(_) => {}
                // Overflowed before the ack: the ack may be lost; ask again.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    c.send(PROC_CN_MCAST_LISTEN, ack)?;
                    continue;
                }
                Err(e) => return Err(e),
            }
            for ev in &events {
                if let ProcEvent::Ack { err, ack: a } = *ev {
                    if a == ack.wrapping_add(1) {
                        if err != 0 {
                            return Err(io::Error::from_raw_os_error(err as i32));
                        }
                        c.listening = true;
                        return Ok(c);
                    }
                }
            }
        }
    }

    fn set_rcvbuf(&self, bytes: usize) {
        let size = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
            // SAFETY: `size` is a valid c_int of the given length.
            let r = unsafe {
                libc::setsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if r == 0 {
                return;
            }
        }
    }

    fn send(&self, op: u32, ack: u32) -> io::Result<()> {
        let msg = control_message(op, ack);
        // SAFETY: a zeroed sockaddr_nl addresses the kernel (nl_pid 0).
        let mut to: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        to.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `msg` and `to` are valid for their lengths.
        let r = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&to as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Wait up to `timeout` for something to read.
    pub fn wait(&self, timeout: Duration) -> io::Result<Wait> {
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        match r {
            r if r < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    Ok(Wait::TimedOut)
                } else {
                    Err(e)
                }
            }
            0 => Ok(Wait::TimedOut),
            _ => Ok(Wait::Ready),
        }
    }

    /// Read one datagram and append its events to `out`; with `block`
    /// false, return `Ok(false)` at once when there is none. An `ENOBUFS`
    /// error means the socket's buffer overflowed and events were lost: the
    /// caller must read `/proc` again.
    pub fn recv(&self, buf: &mut [u8], out: &mut Vec<ProcEvent>, block: bool) -> io::Result<bool> {
        let flags = if block { 0 } else { libc::MSG_DONTWAIT };
        loop {
            // SAFETY: `buf` is valid for writes of its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    flags,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock if !block => return Ok(false),
                    _ => return Err(e),
                }
            }
            parse(&buf[..n as usize], out)
                .map_err(|m| io::Error::new(io::ErrorKind::InvalidData, m))?;
            return Ok(true);
        }
    }
}

impl Drop for Connector {
    fn drop(&mut self) {
        // The kernel counts listeners (it builds events only while there is
        // one); closing the socket alone does not lower the count. Only
        // after a LISTEN it acknowledged: before Linux 6.6 an IGNORE lowers
        // the count whatever this socket did, which would take the events
        // from other listeners.
        if self.listening {
            let _ = self.send(PROC_CN_MCAST_IGNORE, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A datagram as the kernel sends it: nlmsghdr + cn_msg + proc_event.
    fn datagram(what: u32, ack: u32, fields: &[u32]) -> Vec<u8> {
        let mut ev = Vec::new();
        ev.extend_from_slice(&what.to_ne_bytes());
        ev.extend_from_slice(&0u32.to_ne_bytes()); // cpu
        ev.extend_from_slice(&123u64.to_ne_bytes()); // timestamp
        for f in fields {
            ev.extend_from_slice(&f.to_ne_bytes());
        }
        let mut cn = Vec::new();
        cn.extend_from_slice(&CN_IDX_PROC.to_ne_bytes());
        cn.extend_from_slice(&CN_VAL_PROC.to_ne_bytes());
        cn.extend_from_slice(&7u32.to_ne_bytes()); // seq
        cn.extend_from_slice(&ack.to_ne_bytes());
        cn.extend_from_slice(&(ev.len() as u16).to_ne_bytes());
        cn.extend_from_slice(&0u16.to_ne_bytes());
        cn.extend_from_slice(&ev);
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDR + cn.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&(libc::NLMSG_DONE as u16).to_ne_bytes());
        m.extend_from_slice(&[0u8; 10]);
        m.extend_from_slice(&cn);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    /// A policy's refusal and the kernel's capability check read
    /// differently (EACCES and EPERM; issue 30).
    #[test]
    fn why_names_the_refuser() {
        let why = |errno| why_unavailable(&io::Error::from_raw_os_error(errno));
        let denied = why(libc::EACCES);
        assert!(
            denied.starts_with("Permission denied: refused by the security policy")
                && denied.contains("SELinux")
                && !denied.contains("CAP_NET_ADMIN"),
            "{denied}"
        );
        let cap = why(libc::EPERM);
        assert!(
            cap.contains("CAP_NET_ADMIN") && !cap.contains("SELinux"),
            "{cap}"
        );
        let at = |step, errno| {
            why_unavailable(&io::Error::new(
                io::ErrorKind::PermissionDenied,
                Refused { step, errno },
            ))
        };
        let bind = at("bind", libc::EPERM);
        assert!(
            bind.starts_with(
                "joining the process events group: Operation not permitted: this kernel"
            ) && bind.contains("CAP_NET_ADMIN"),
            "{bind}"
        );
        let seccomp = at("socket", libc::EPERM);
        assert!(
            seccomp.starts_with("opening a netlink connector socket: Operation not permitted")
                && seccomp.contains("seccomp")
                && !seccomp.contains("CAP_NET_ADMIN"),
            "{seccomp}"
        );
        let selinux = at("socket", libc::EACCES);
        assert!(
            selinux.contains("refused by the security policy"),
            "{selinux}"
        );
        assert!(why(libc::EAFNOSUPPORT).contains("RestrictAddressFamilies="));
        let timeout = io::Error::new(io::ErrorKind::TimedOut, "no ack");
        assert_eq!(why_unavailable(&timeout), "no ack");
    }

    #[test]
    fn parses_each_event() {
        let mut out = Vec::new();
        let mut all = Vec::new();
        all.extend(datagram(PROC_EVENT_FORK, 0, &[10, 10, 11, 11]));
        all.extend(datagram(PROC_EVENT_EXEC, 0, &[11, 11]));
        // comm: pid, tgid, then 16 bytes of name.
        all.extend(datagram(PROC_EVENT_COMM, 0, &[12, 11, 0, 0, 0, 0]));
        all.extend(datagram(PROC_EVENT_EXIT, 0, &[11, 11, 0, 17, 10, 10]));
        all.extend(datagram(PROC_EVENT_NONE, 43, &[1]));
        all.extend(datagram(0x4, 0, &[1, 1, 0, 0])); // uid change
        parse(&all, &mut out).unwrap();
        assert_eq!(
            out,
            vec![
                ProcEvent::Fork {
                    parent_tgid: 10,
                    child_pid: 11,
                    child_tgid: 11
                },
                ProcEvent::Exec { pid: 11, tgid: 11 },
                ProcEvent::Comm { pid: 12, tgid: 11 },
                ProcEvent::Exit { pid: 11, tgid: 11 },
                ProcEvent::Ack { err: 1, ack: 43 },
                ProcEvent::Other,
            ]
        );
    }

    #[test]
    fn rejects_malformed_datagrams_without_panicking() {
        let good = datagram(PROC_EVENT_EXEC, 0, &[5, 5]);
        for cut in 0..good.len() {
            let mut out = Vec::new();
            let _ = parse(&good[..cut], &mut out);
            assert!(out.len() <= 1);
        }
        // A length field pointing past the end.
        let mut bad = good.clone();
        bad[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(parse(&bad, &mut Vec::new()).is_err());
        // A payload length pointing past the message.
        let mut bad = good.clone();
        bad[NLMSG_HDR + 16..NLMSG_HDR + 18].copy_from_slice(&500u16.to_ne_bytes());
        assert!(parse(&bad, &mut Vec::new()).is_err());
        // An event shorter than its fields.
        let short = datagram(PROC_EVENT_FORK, 0, &[1]);
        assert!(parse(&short, &mut Vec::new()).is_err());
        // Other connectors' messages are skipped.
        let mut other = good;
        other[NLMSG_HDR..NLMSG_HDR + 4].copy_from_slice(&9u32.to_ne_bytes());
        let mut out = Vec::new();
        parse(&other, &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn control_message_layout() {
        let m = control_message(PROC_CN_MCAST_LISTEN, 99);
        assert_eq!(u32_at(&m, 0), Some(40));
        assert_eq!(u16_at(&m, 4), Some(libc::NLMSG_DONE as u16));
        assert_eq!(u32_at(&m, NLMSG_HDR), Some(CN_IDX_PROC));
        assert_eq!(u32_at(&m, NLMSG_HDR + 12), Some(99));
        assert_eq!(u16_at(&m, NLMSG_HDR + 16), Some(4));
        assert_eq!(
            u32_at(&m, NLMSG_HDR + CN_MSG_HDR),
            Some(PROC_CN_MCAST_LISTEN)
        );
    }
}

//! The HTTP side of the metrics: `GET /metrics` for `ksmtuned`'s
//! `KSM_METRICS_LISTEN`, on threads of its own so that it never delays
//! tuning. The text comes from [`super::render`].

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{collect, render, tuner_text, TunerMetrics, CONTENT_TYPE, DEFAULT_TOP};
use crate::error::{Error, Result};
use crate::kernel::sys;
use crate::root::Root;

/// Limits of the HTTP endpoint.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Processes in the per-process metrics.
    pub top: usize,
    /// Time a client has to send a whole request (the first, or the next
    /// one on a kept-alive connection) and to read the answer.
    pub timeout: Duration,
    /// Largest request head accepted, in bytes.
    pub max_request_bytes: usize,
    /// Connections served at once. One more waits up to `queue_wait` for a
    /// connection to end, then is answered 503.
    pub max_connections: usize,
    /// How long a connection past `max_connections` waits for a free slot.
    pub queue_wait: Duration,
    /// Requests answered on one kept-alive connection before it is closed.
    pub max_requests_per_connection: usize,
    /// Oldest reading of the system (KSM's files, /proc) a response may
    /// show: requests within this age of the last reading share it, so a
    /// flood of requests costs one pass over /proc per `max_age`, not one
    /// per request. The tuner's own metrics are always current. Zero reads
    /// the system for every request.
    pub max_age: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            top: DEFAULT_TOP,
            timeout: Duration::from_secs(5),
            max_request_bytes: 8 * 1024,
            max_connections: 8,
            queue_wait: Duration::from_millis(100),
            max_requests_per_connection: 1000,
            max_age: Duration::from_secs(1),
        }
    }
}

/// The `/metrics` endpoint: answers `GET /metrics` on its own threads
/// (404 for other paths, 405 for other methods) and never blocks the
/// caller, which only updates the shared [`TunerMetrics`].
///
/// The HTTP is written here on top of `httparse`: the server needs one
/// route, a bounded request head and a deadline per request, and the
/// small server crates (tiny_http) have no per-connection timeout, so a
/// client that sends nothing would hold a thread forever. HTTP/1.1
/// connections are kept alive (as Prometheus and load generators expect)
/// up to [`ServerOptions::max_requests_per_connection`] requests, each of
/// which must arrive within [`ServerOptions::timeout`]; a request with a
/// body, `Connection: close`, HTTP/1.0 or an error closes the connection.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The system's part of the metrics as last rendered, with when it was read.
type Cached = Option<(Instant, std::result::Result<Arc<String>, String>)>;

struct Shared {
    root: Root,
    tuner: Option<Arc<Mutex<TunerMetrics>>>,
    opts: ServerOptions,
    /// Connections being served.
    active: Mutex<usize>,
    freed: Condvar,
    cache: Mutex<Cached>,
}

impl Server {
    /// Serve the metrics of `root` and of the tuner on `addr`
    /// (`127.0.0.1:9926`; port 0 picks a free one: see [`Server::local_addr`]).
    pub fn spawn(addr: &str, root: Root, tuner: Arc<Mutex<TunerMetrics>>) -> Result<Server> {
        Server::spawn_with(addr, root, Some(tuner), ServerOptions::default())
    }

    /// [`Server::spawn`] with options, and without a tuner if `None`.
    pub fn spawn_with(
        addr: &str,
        root: Root,
        tuner: Option<Arc<Mutex<TunerMetrics>>>,
        opts: ServerOptions,
    ) -> Result<Server> {
        let bad =
            |why: String| Error::Other(format!("cannot listen on {addr:?} for metrics: {why}"));
        let sock = addr
            .to_socket_addrs()
            .map_err(|e| bad(format!("{e} (expected ADDRESS:PORT, e.g. 127.0.0.1:9926)")))?
            .next()
            .ok_or_else(|| bad("the address resolves to nothing".into()))?;
        let listener = TcpListener::bind(sock).map_err(|e| bad(crate::error::describe_io(&e)))?;
        let local = listener.local_addr().map_err(|e| bad(e.to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            root,
            tuner,
            opts,
            active: Mutex::new(0),
            freed: Condvar::new(),
            cache: Mutex::new(None),
        });
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("ksm-metrics".into())
            .spawn(move || accept_loop(listener, shared, stop2))
            .map_err(|e| bad(format!("cannot start its thread: {e}")))?;
        Ok(Server {
            addr: local,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept with a connection of our own.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(if wake.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One of the `max_connections` slots, given back on drop (also when a
/// connection's thread panics).
struct Slot(Arc<Shared>);

impl Slot {
    /// Take a slot, waiting up to `queue_wait` for one: a client that
    /// reconnects as soon as it has read an answer may come before the
    /// thread of its previous connection has quite finished.
    fn take(shared: &Arc<Shared>) -> Option<Slot> {
        let deadline = Instant::now() + shared.opts.queue_wait;
        let mut active = lock(&shared.active);
        while *active >= shared.opts.max_connections {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            active = shared
                .freed
                .wait_timeout(active, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *active += 1;
        Some(Slot(Arc::clone(shared)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        *lock(&self.0.active) -= 1;
        self.0.freed.notify_one();
    }
}

/// How many nice steps below the tuning loop the endpoint's threads run:
/// under a flood of requests the loop's cycles still get the CPU first.
pub const SERVER_NICE: i32 = 10;

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    // The connections' threads inherit this thread's priority.
    if let Err(e) = sys::lower_thread_priority(SERVER_NICE) {
        log::debug!("metrics: cannot lower the endpoint's CPU priority: {e}");
    }
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let mut stream = match conn {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors or the like: do not spin.
                log::warn!("metrics: accepting a connection failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let _ = stream.set_write_timeout(Some(shared.opts.timeout));
        let Some(slot) = Slot::take(&shared) else {
            let _ = respond(
                &mut stream,
                503,
                "Service Unavailable",
                &[],
                b"too many connections\n",
                true,
            );
            linger_close(&mut stream, Duration::from_millis(50));
            continue;
        };
        let _ = std::thread::Builder::new()
            .name("ksm-metrics-conn".into())
            .spawn(move || {
                serve(&mut stream, &slot.0);
                drop(slot);
            });
    }
}

/// What a request head asked for.
enum Head {
    Request {
        method: String,
        path: String,
        /// The connection may carry another request after this one.
        keep_alive: bool,
    },
    Bad(u16, &'static str, &'static str),
}

/// Whether a parsed request leaves its connection usable for the next one:
/// HTTP/1.1 without `Connection: close` and without a body (the server
/// reads no bodies).
fn keeps_alive(req: &httparse::Request) -> bool {
    let mut keep = req.version == Some(1);
    for h in req.headers.iter() {
        let value = String::from_utf8_lossy(h.value);
        if h.name.eq_ignore_ascii_case("connection") {
            if value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"))
            {
                keep = false;
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding")
            || (h.name.eq_ignore_ascii_case("content-length") && value.trim() != "0")
        {
            keep = false;
        }
    }
    keep
}

/// Read a request head within the deadline and the size limit from `buf`
/// (bytes already received) and the stream; the head's bytes are removed
/// from `buf`, what follows stays for the next request. `None` when the
/// client went away or gave up, or (with `idle_ok`) when it sent nothing
/// before the deadline: the quiet end of a kept-alive connection.
fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    opts: &ServerOptions,
    idle_ok: bool,
) -> Option<Head> {
    let deadline = Instant::now() + opts.timeout;
    let mut chunk = [0u8; 1024];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(len)) => {
                let head = Head::Request {
                    method: req.method.unwrap_or("").to_string(),
                    path: req.path.unwrap_or("").to_string(),
                    keep_alive: keeps_alive(&req),
                };
                buf.drain(..len);
                return Some(head);
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => {
                return Some(Head::Bad(
                    431,
                    "Request Header Fields Too Large",
                    "too many header fields\n",
                ))
            }
            Err(_) => return Some(Head::Bad(400, "Bad Request", "malformed HTTP request\n")),
        }
        if buf.len() >= opts.max_request_bytes {
            return Some(Head::Bad(
                431,
                "Request Header Fields Too Large",
                "request too large\n",
            ));
        }
        let timed_out = |buf: &Vec<u8>| {
            (!(idle_ok && buf.is_empty())).then_some(Head::Bad(
                408,
                "Request Timeout",
                "request not received in time\n",
            ))
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return timed_out(buf);
        }
        if stream.set_read_timeout(Some(left)).is_err() {
            return None;
        }
        let room = (opts.max_request_bytes - buf.len()).min(chunk.len());
        match stream.read(&mut chunk[..room]) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return timed_out(buf)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// Serve one connection: requests one after the other while the client
/// keeps it alive, up to `max_requests_per_connection`.
fn serve(stream: &mut TcpStream, shared: &Shared) {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    for n in 1..=shared.opts.max_requests_per_connection.max(1) {
        let Some(head) = read_head(stream, &mut buf, &shared.opts, n > 1) else {
            return;
        };
        let last = n == shared.opts.max_requests_per_connection.max(1);
        match answer(stream, shared, head, last) {
            Ok(true) => {}
            Ok(false) => break,
            Err(_) => return,
        }
    }
    linger_close(stream, Duration::from_millis(200));
}

/// Close without resetting: a client whose request was refused may still
/// be sending, and closing with unread data would reset the connection
/// before it reads the answer; so read (and drop) a bounded rest first.
fn linger_close(stream: &mut TcpStream, wait: Duration) {
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(wait));
    let _ = io::copy(&mut (&*stream).take(64 * 1024), &mut io::sink());
}

/// The system's part of the metrics, read again only when the last
/// reading is older than `max_age`. The lock is held while reading, so
/// concurrent requests wait for one reading instead of each making its own.
fn system_text(shared: &Shared) -> std::result::Result<Arc<String>, String> {
    let mut cache = lock(&shared.cache);
    if let Some((at, text)) = cache.as_ref() {
        if at.elapsed() < shared.opts.max_age {
            return text.clone();
        }
    }
    let at = Instant::now();
    let text = collect(&shared.root)
        .and_then(|s| render(&s, None, shared.opts.top))
        .map(Arc::new)
        .map_err(|e| e.to_string());
    *cache = Some((at, text.clone()));
    text
}

/// Answer one request; `Ok(true)` when the connection can carry another.
fn answer(stream: &mut TcpStream, shared: &Shared, head: Head, last: bool) -> io::Result<bool> {
    let (method, path, keep_alive) = match head {
        Head::Bad(code, reason, body) => {
            respond(stream, code, reason, &[], body.as_bytes(), true)?;
            return Ok(false);
        }
        Head::Request {
            method,
            path,
            keep_alive,
        } => (method, path, keep_alive && !last),
    };
    let route = path.split('?').next().unwrap_or("");
    if route != "/metrics" {
        respond(
            stream,
            404,
            "Not Found",
            &[],
            b"not found: only /metrics is served\n",
            !keep_alive,
        )?;
        return Ok(keep_alive);
    }
    if method != "GET" {
        respond(
            stream,
            405,
            "Method Not Allowed",
            &[("Allow", "GET")],
            b"only GET is allowed\n",
            !keep_alive,
        )?;
        return Ok(keep_alive);
    }
    let tuner = shared.tuner.as_ref().map(|t| lock(t).clone());
    let text = system_text(shared).and_then(|system| match &tuner {
        Some(t) => tuner_text(t)
            .map(|own| format!("{system}{own}"))
            .map_err(|e| e.to_string()),
        None => Ok(system.to_string()),
    });
    match text {
        Ok(body) => respond(
            stream,
            200,
            "OK",
            &[("Content-Type", CONTENT_TYPE)],
            body.as_bytes(),
            !keep_alive,
        )?,
        Err(e) => {
            log::warn!("metrics: {e}");
            respond(
                stream,
                500,
                "Internal Server Error",
                &[],
                format!("cannot read the metrics: {e}\n").as_bytes(),
                true,
            )?;
            return Ok(false);
        }
    }
    Ok(keep_alive)
}

fn respond(
    stream: &mut TcpStream,
    code: u16,
    reason: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    close: bool,
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {code} {reason}\r\n");
    if !headers.iter().any(|(k, _)| *k == "Content-Type") {
        head.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    // One write for head and body: no small segment waiting for an ACK.
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
    stream.write_all(&out)?;
    stream.flush()
}

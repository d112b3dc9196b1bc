//! The HTTP side of the metrics: `GET /metrics` for `ksmtuned`'s
//! `KSM_METRICS_LISTEN`, on a thread of its own so that it never delays
//! tuning. The text comes from [`super::render`].
//!
//! HTTP/1.1 is hyper's, on a single-threaded tokio runtime: every
//! connection is a small task, so a thousand slow or idle clients cost a
//! thousand tasks (a few KiB each), not a thousand threads, and never hold
//! up a well-behaved scrape. TLS is rustls (tokio-rustls); both, and basic
//! authentication, are configured by the web configuration file
//! ([`crate::config::web`]).
//!
//! What a client can hold, and for how long:
//! - a request head must arrive whole within [`ServerOptions::timeout`]
//!   of the connection becoming ready for it (the first request, or the
//!   next on a kept-alive connection); otherwise the connection is closed
//!   (hyper's header read timeout). So is a TLS handshake that takes longer;
//! - a connection on which nothing moves (a client that does not read its
//!   answer) for `timeout` while no request is being answered is closed;
//! - at most [`ServerOptions::max_connections`] connections are open: one
//!   more closes the connection that has waited longest without
//!   completing a request (slow or idle clients), or, when every connection
//!   has had an answer, the one whose last request is the oldest;
//! - a request head larger than [`ServerOptions::max_request_bytes`] is
//!   answered 431, a malformed one 400 (by hyper).
//!
//! Why hyper (measured on the 2-core test machine, issue 19): the
//! hand-written thread-per-connection server this replaces answered 2
//! scrapes in 10 s (the slowest 8 s) while 500 slow and 500 idle clients
//! held its 8 slots; tiny_http answered them, but with a thread and two
//! descriptors per connection and no deadline, 1,000 of each held forever
//! (and 180 requests/s under wrk, its answers waiting on delayed ACKs).
//! This one answers within 50 ms with at most 269 descriptors, and serves
//! `scripts/metrics-load` at least as fast as the hand-written one.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener, ToSocketAddrs};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::{collect, render, tuner_text, TunerMetrics, CONTENT_TYPE, DEFAULT_TOP};
use crate::config::web::WebConfig;
use crate::error::{Error, Result};
use crate::kernel::sys;
use crate::report::Report;
use crate::root::Root;
use crate::sample::{processes, Sample};

/// Limits of the HTTP endpoint.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Processes in the per-process metrics.
    pub top: usize,
    /// Time a client has to send a whole request head (the first, or the
    /// next one on a kept-alive connection), to finish a TLS handshake,
    /// and the longest a connection may stand still while not being
    /// answered.
    pub timeout: Duration,
    /// Largest request head accepted, in bytes (at least 8 KiB).
    pub max_request_bytes: usize,
    /// Connections open at once; one more closes the connection that has
    /// waited longest without completing a request (see the module doc).
    pub max_connections: usize,
    /// Requests answered on one kept-alive connection before it is closed.
    pub max_requests_per_connection: usize,
    /// Oldest reading of the system (KSM's files, /proc) a response may
    /// show: requests within this age of the last reading share it, so a
    /// flood of requests costs one pass over /proc per `max_age`, not one
    /// per request. The tuner's own metrics are always current. Zero reads
    /// the system for every request.
    pub max_age: Duration,
    /// TLS and basic authentication; plain HTTP, open to all, when `None`.
    pub web: Option<Arc<WebConfig>>,
    /// The daemon's last sample, published after each cycle: served
    /// (with the processes read at the scrape) while it is younger than
    /// `max_age`, instead of reading KSM's files and meminfo again.
    pub published: Option<Published>,
}

/// Where a daemon publishes its last sample, and when it took it.
pub type Published = Arc<Mutex<Option<(Instant, Arc<Sample>)>>>;

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            top: DEFAULT_TOP,
            timeout: Duration::from_secs(5),
            max_request_bytes: 8 * 1024,
            max_connections: 256,
            max_requests_per_connection: 1000,
            max_age: Duration::from_secs(1),
            web: None,
            published: None,
        }
    }
}

/// The `/metrics` endpoint: answers `GET /metrics` on its own thread
/// (404 for other paths, 405 for other methods, 401 without valid
/// credentials when basic authentication is configured) and never blocks
/// the caller, which only updates the shared [`TunerMetrics`].
pub struct Server {
    addr: SocketAddr,
    tls: bool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// The system's part of the metrics as last rendered, with when it was read.
type Cached = Option<(Instant, std::result::Result<Arc<String>, String>)>;

/// The last answer to `GET /metrics`: the system's text and the tuner's
/// metrics it was made of, and its bytes.
type Answer = (Arc<String>, Option<TunerMetrics>, Bytes);

/// A connection being served, for the connection limit.
struct Conn {
    started: Instant,
    /// When its last request head arrived; `None` before the first.
    last_request: Option<Instant>,
    task: tokio::task::AbortHandle,
}

struct Shared {
    root: Root,
    tuner: Option<Arc<Mutex<TunerMetrics>>>,
    opts: ServerOptions,
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// The last reading of the system, for the requests within `max_age`.
    cache: Mutex<Cached>,
    /// Taken by the request that reads the system again; the others wait
    /// for its reading instead of each making its own.
    refresh: tokio::sync::Mutex<()>,
    /// The last answer, with what it was made of: a flood of requests
    /// between two readings and two cycles is answered with the same bytes.
    body: Mutex<Option<Answer>>,
    conns: Mutex<HashMap<u64, Conn>>,
    /// `Authorization` values whose password was verified: bcrypt is slow
    /// on purpose, and Prometheus sends the same one every scrape.
    accepted: Mutex<HashSet<Vec<u8>>>,
    /// The origin of the connections' progress stamps.
    base: Instant,
}

/// How many `Authorization` values are remembered as verified.
const ACCEPTED_MAX: usize = 16;

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
        let listener = listen(sock).map_err(|e| {
            let mut why = crate::error::describe_io(&e);
            if e.raw_os_error() == Some(libc::EACCES) {
                why.push_str(&format!(
                    " (a port below 1024 needs CAP_NET_BIND_SERVICE; under SELinux, \
                     ksmtuned_t may bind only its own port type: load the ksmtuned SELinux \
                     module and label the port with `semanage port -a -t \
                     ksmtuned_metrics_port_t -p tcp {}`; `ausearch -m avc -ts recent` shows \
                     the denial)",
                    sock.port()
                ));
            }
            Error::Listen {
                message: format!("cannot listen on {addr:?} for metrics: {why}"),
                refused: matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)),
            }
        })?;
        let local = listener.local_addr().map_err(|e| bad(e.to_string()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| bad(e.to_string()))?;
        let tls = opts
            .web
            .as_ref()
            .and_then(|w| w.tls.clone())
            .map(tokio_rustls::TlsAcceptor::from);
        let shared = Arc::new(Shared {
            root,
            tuner,
            tls: tls.clone(),
            opts,
            cache: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
            body: Mutex::new(None),
            conns: Mutex::new(HashMap::new()),
            accepted: Mutex::new(HashSet::new()),
            base: Instant::now(),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("ksm-metrics".into())
            .spawn(move || run(listener, shared, stopped))
            .map_err(|e| bad(format!("cannot start its thread: {e}")))?;
        Ok(Server {
            addr: local,
            tls: tls.is_some(),
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its URL, `http://ADDRESS:PORT/metrics` or `https://...`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/metrics", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Pending connections the kernel queues for the endpoint (the kernel caps
/// it at net.core.somaxconn): a burst of hostile connections must not fill
/// the queue, or a scraper's SYN is dropped and retried a second later.
const BACKLOG: i32 = 1024;

/// Bind `addr` with a deep accept queue (std's is 128).
fn listen(addr: SocketAddr) -> io::Result<StdListener> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    if addr.is_ipv6() {
        // [::]:PORT serves IPv4 too, as std's bind does.
        let _ = sock.set_only_v6(false);
    }
    sock.bind(&addr.into())?;
    sock.listen(BACKLOG)?;
    Ok(sock.into())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How many nice steps below the tuning loop the endpoint's threads run:
/// under a flood of requests the loop's cycles still get the CPU first.
pub const SERVER_NICE: i32 = 10;

/// The endpoint's thread: a single-threaded runtime, whose blocking
/// helpers (for reading /proc and checking passwords) inherit its lowered
/// priority, until the [`Server`] is dropped. One thread keeps the
/// connection limit simple (a new connection's task runs only once it is
/// registered, and before the next accept) and served more requests per
/// second than two on this project's 2-core machines.
fn run(listener: StdListener, shared: Arc<Shared>, stopped: tokio::sync::oneshot::Receiver<()>) {
    if let Err(e) = sys::lower_thread_priority(SERVER_NICE) {
        log::debug!("metrics: cannot lower the endpoint's CPU priority: {e}");
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(2)
        .thread_name("ksm-metrics-blk")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("metrics: cannot start the endpoint: {e}");
            return;
        }
    };
    rt.block_on(async move {
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                log::error!("metrics: cannot use the listening socket: {e}");
                return;
            }
        };
        tokio::select! {
            _ = stopped => {}
            _ = accept_loop(&listener, &shared) => {}
        }
    });
    // Connections still open are dropped (closed) with the runtime.
    rt.shutdown_timeout(Duration::from_secs(1));
}

async fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut next_id: u64 = 0;
    // The error last logged: one that repeats (every scrape, when a policy
    // refuses accept) is logged when it starts, again when it changes.
    let mut failing: Option<String> = None;
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => {
                if let Some(was) = failing.take() {
                    log::info!("metrics: accepting connections works again (was: {was})");
                }
                tcp
            }
            Err(e) => {
                let hint = if e.raw_os_error() == Some(libc::EACCES) {
                    " (refused by the security policy: under SELinux, ksmtuned_t needs \
                     tcp_socket accept, which the ksmtuned module allows; `ausearch -m avc \
                     -ts recent` shows the denial)"
                } else {
                    ""
                };
                let msg = format!("{e}{hint}");
                if failing.as_deref() != Some(msg.as_str()) {
                    log::warn!("metrics: accepting a connection failed: {msg}");
                    failing = Some(msg);
                }
                // Out of descriptors or the like: do not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        next_id += 1;
        let id = next_id;
        {
            let mut conns = lock(&shared.conns);
            make_room(shared, &mut conns);
            // Registered before its task can run (this thread runs it, after
            // the yield below) and take it off the table when it ends.
            let task = tokio::spawn(serve(tcp, Arc::clone(shared), id));
            conns.insert(
                id,
                Conn {
                    started: Instant::now(),
                    last_request: None,
                    task: task.abort_handle(),
                },
            );
        }
        // Let the new connection (and those closed to make room) run before
        // the next accept: a scraper's request is read as soon as it comes,
        // and a burst of connections cannot keep the others waiting.
        tokio::task::yield_now().await;
    }
}

/// At the connection limit, close one: the oldest of those that have not
/// completed a request, else the one whose last request is the oldest.
fn make_room(shared: &Shared, conns: &mut HashMap<u64, Conn>) {
    while conns.len() >= shared.opts.max_connections.max(1) {
        let victim = conns
            .iter()
            .min_by_key(|(_, c)| {
                (
                    c.last_request.is_some(),
                    c.last_request.unwrap_or(c.started),
                )
            })
            .map(|(id, _)| *id);
        let Some(id) = victim else { break };
        if let Some(c) = conns.remove(&id) {
            c.task.abort();
        }
    }
}

/// Takes a connection off the table when its task ends (or is aborted).
struct Registered(Arc<Shared>, u64);

impl Drop for Registered {
    fn drop(&mut self) {
        lock(&self.0.conns).remove(&self.1);
    }
}

/// A connection's state as its task and its requests see it.
struct ConnState {
    id: u64,
    /// When bytes last moved, in ms since [`Shared::base`].
    moved: AtomicU64,
    /// A request is being answered.
    busy: AtomicBool,
    requests: AtomicUsize,
}

/// The socket, stamping [`ConnState::moved`] whenever bytes move.
struct Watched {
    tcp: TcpStream,
    state: Arc<ConnState>,
    base: Instant,
}

impl Watched {
    fn stamp(&self) {
        self.state
            .moved
            .store(self.base.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.stamp();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.tcp).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.stamp();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.stamp();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Serve one connection: TLS handshake if configured, then HTTP/1.1.
async fn serve(tcp: TcpStream, shared: Arc<Shared>, id: u64) {
    let _registered = Registered(Arc::clone(&shared), id);
    let state = Arc::new(ConnState {
        id,
        moved: AtomicU64::new(shared.base.elapsed().as_millis() as u64),
        busy: AtomicBool::new(false),
        requests: AtomicUsize::new(0),
    });
    let io = Watched {
        tcp,
        state: Arc::clone(&state),
        base: shared.base,
    };
    match &shared.tls {
        Some(acceptor) => {
            match tokio::time::timeout(shared.opts.timeout, acceptor.accept(io)).await {
                Ok(Ok(tls)) => http(tls, shared, state).await,
                Ok(Err(e)) => log::debug!("metrics: TLS handshake failed: {e}"),
                Err(_) => log::debug!("metrics: TLS handshake not done in time"),
            }
        }
        None => http(io, shared, state).await,
    }
}

async fn http<I>(io: I, shared: Arc<Shared>, state: Arc<ConnState>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let opts = &shared.opts;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(opts.timeout)
        .max_buf_size(opts.max_request_bytes.max(8192))
        .title_case_headers(true)
        .keep_alive(true);
    let svc = {
        let (shared, state) = (Arc::clone(&shared), Arc::clone(&state));
        hyper::service::service_fn(move |req| {
            let (shared, state) = (Arc::clone(&shared), Arc::clone(&state));
            async move { Ok::<_, Infallible>(handle(req, &shared, &state).await) }
        })
    };
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    // A connection standing still while no request is being answered (a
    // client that does not read its answer) is dropped after `timeout`.
    let tick = (opts.timeout / 4).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = tokio::time::sleep(tick) => {
                let now = shared.base.elapsed().as_millis() as u64;
                let still = Duration::from_millis(now.saturating_sub(state.moved.load(Ordering::Relaxed)));
                if !state.busy.load(Ordering::Relaxed) && still >= opts.timeout {
                    return;
                }
            }
        }
    }
}

/// Clears [`ConnState::busy`] when a request's answer is ready.
struct Busy<'a>(&'a ConnState);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Relaxed);
    }
}

/// Whether the client lets the connection carry another request: HTTP/1.1
/// without `Connection: close` (or HTTP/1.0 with `keep-alive`), and no body
/// (the server reads none).
fn keeps_alive(req: &Request<Incoming>) -> bool {
    let connection = |token: &str| {
        req.headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    let body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let keep = match req.version() {
        Version::HTTP_11 => !connection("close"),
        Version::HTTP_10 => connection("keep-alive"),
        _ => false,
    };
    keep && !body
}

fn reply(code: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = code;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

fn text(code: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    reply(code, "text/plain; charset=utf-8", body)
}

/// Answer one request.
async fn handle(
    req: Request<Incoming>,
    shared: &Shared,
    state: &ConnState,
) -> Response<Full<Bytes>> {
    state.busy.store(true, Ordering::Relaxed);
    let _busy = Busy(state);
    if let Some(c) = lock(&shared.conns).get_mut(&state.id) {
        c.last_request = Some(Instant::now());
    }
    let n = state.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let keep_alive = keeps_alive(&req) && n < shared.opts.max_requests_per_connection.max(1);
    let mut r = answer(&req, shared).await;
    if !keep_alive || r.status() == StatusCode::INTERNAL_SERVER_ERROR {
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

async fn answer(req: &Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    if let Some(web) = &shared.opts.web {
        if !web.users.is_empty() && !authorized(req, shared, web).await {
            let mut r = text(StatusCode::UNAUTHORIZED, "unauthorized\n");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"ksmtuned\", charset=\"UTF-8\""),
            );
            return r;
        }
    }
    if req.uri().path() != "/metrics" {
        return text(
            StatusCode::NOT_FOUND,
            "not found: only /metrics is served\n",
        );
    }
    if req.method() != Method::GET {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET is allowed\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        return r;
    }
    let body = match system_text(shared).await {
        Ok(system) => metrics_body(shared, system),
        Err(e) => Err(e),
    };
    match body {
        Ok(body) => reply(StatusCode::OK, CONTENT_TYPE, body),
        Err(e) => {
            log::warn!("metrics: {e}");
            reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                format!("cannot read the metrics: {e}\n"),
            )
        }
    }
}

/// The answer to `GET /metrics`: the system's part (`system`) and the
/// tuner's, always current; made again only when either has changed.
fn metrics_body(shared: &Shared, system: Arc<String>) -> std::result::Result<Bytes, String> {
    let tuner = shared.tuner.as_ref().map(|t| lock(t).clone());
    if let Some((s, t, body)) = lock(&shared.body).as_ref() {
        if Arc::ptr_eq(s, &system) && *t == tuner {
            return Ok(body.clone());
        }
    }
    let text = match &tuner {
        Some(t) => tuner_text(t)
            .map(|own| format!("{system}{own}"))
            .map_err(|e| e.to_string())?,
        None => system.to_string(),
    };
    let body = Bytes::from(text);
    *lock(&shared.body) = Some((system, tuner, body.clone()));
    Ok(body)
}

/// Whether the request carries the name and password of a user of
/// `basic_auth_users`. The password is checked against its bcrypt hash on
/// a helper thread (a hash for an unknown user costs the same time).
async fn authorized(req: &Request<Incoming>, shared: &Shared, web: &WebConfig) -> bool {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return false;
    };
    if lock(&shared.accepted).contains(value.as_bytes()) {
        return true;
    }
    let Some((user, password)) = basic_credentials(value.as_bytes()) else {
        return false;
    };
    let (hash, known) = match web.users.get(&user) {
        Some(h) => (h.clone(), true),
        // Spend the same time on a hash that cannot match.
        None => match web.users.values().next() {
            Some(h) => (h.clone(), false),
            None => return false,
        },
    };
    let verified =
        tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
    let ok = verified && known;
    if ok {
        let mut accepted = lock(&shared.accepted);
        if accepted.len() >= ACCEPTED_MAX {
            accepted.clear();
        }
        accepted.insert(value.as_bytes().to_vec());
    }
    ok
}

/// `Basic BASE64(user:password)`.
fn basic_credentials(value: &[u8]) -> Option<(String, String)> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The system's part of the metrics, read again (on a helper thread) only
/// when the last reading is older than `max_age`. Concurrent requests
/// wait for one reading instead of each making its own.
async fn system_text(shared: &Shared) -> std::result::Result<Arc<String>, String> {
    let fresh = || {
        lock(&shared.cache)
            .as_ref()
            .filter(|(at, _)| at.elapsed() < shared.opts.max_age)
            .map(|(_, text)| text.clone())
    };
    if let Some(text) = fresh() {
        return text;
    }
    let _refreshing = shared.refresh.lock().await;
    // Another request may have read it meanwhile.
    if let Some(text) = fresh() {
        return text;
    }
    let at = Instant::now();
    let (root, top) = (shared.root.clone(), shared.opts.top);
    let published = shared.opts.published.as_ref().and_then(|p| {
        lock(p)
            .as_ref()
            .filter(|(taken, _)| taken.elapsed() < shared.opts.max_age)
            .map(|(_, s)| Arc::clone(s))
    });
    let text = tokio::task::spawn_blocking(move || {
        read_system(&root, published)
            .and_then(|s| render(&Report::build(&s, None, Vec::new()), None, top))
            .map(Arc::new)
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|e| Err(format!("reading the system failed: {e}")));
    *lock(&shared.cache) = Some((at, text.clone()));
    text
}

/// The system's part of the metrics: the daemon's `published` sample with
/// the processes read now, or (without a recent one) a reading of its own.
fn read_system(root: &Root, published: Option<Arc<Sample>>) -> Result<Sample> {
    let Some(sample) = published else {
        return collect(root);
    };
    let processes = processes::scan(root, false).map_err(|source| Error::Read {
        path: root.join("/proc"),
        source,
    })?;
    Ok(Sample {
        processes,
        ..Sample::clone(&sample)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_sample_is_served_with_the_processes_read_now() {
        let root = Root::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/obs-6.18"
        ));
        let own = read_system(&root, None).unwrap();
        let mut daemons = own.clone();
        daemons.processes.clear();
        if let Some(k) = daemons.ksm.as_mut() {
            k.pages_sharing = Some(42);
        }
        let served = read_system(&root, Some(Arc::new(daemons))).unwrap();
        assert_eq!(served.ksm.as_ref().unwrap().pages_sharing, Some(42));
        assert_ne!(own.ksm.as_ref().unwrap().pages_sharing, Some(42));
        assert_eq!(served.processes, own.processes);
        assert!(!served.processes.is_empty());
    }

    #[test]
    fn basic_credentials_are_decoded() {
        // "prometheus:s3cret:with colon"
        let v = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("prometheus:s3cret:with colon")
        );
        assert_eq!(
            basic_credentials(v.as_bytes()),
            Some(("prometheus".into(), "s3cret:with colon".into()))
        );
        assert_eq!(basic_credentials(b"Bearer abc"), None);
        assert_eq!(basic_credentials(b"Basic !!!"), None);
        assert_eq!(basic_credentials(b"Basic bm9jb2xvbg=="), None); // "nocolon"
    }
}

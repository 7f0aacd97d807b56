//! The local server's connections: HTTP/1.1 through hyper, with the limits a server facing
//! untrusted clients needs and `axum::serve` does not offer (issue #11).
//!
//! - **Header read timeout**: a request line and headers must arrive within it, counted from
//!   the request's first byte; otherwise the connection is closed without an answer (the
//!   client has not said enough to be answered). hyper's own `header_read_timeout` is not used:
//!   it also runs while a kept-alive connection waits for its next request, so it could not be
//!   shorter than the idle timeout.
//! - **Body read timeout**: a request body must arrive within it, counted from the end of the
//!   headers; otherwise the body fails with [`BodyReadTimedOut`], the handler answers `408
//!   request_timeout`, and hyper closes the connection (its body was not read to the end).
//! - **Idle timeout**: a kept-alive connection with no request in flight and no byte of a new
//!   one is closed after it.
//! - **Connection cap**: at most `max_connections` are served at once. The next one is not
//!   refused: it is accepted only when one closes, and waits in the kernel's listen backlog
//!   until then (the timeouts above bound how long a slot can be held by a client that does
//!   nothing).
//! - **Connections per address**: at most `max_connections_per_address` from one address
//!   (an IPv6 address counted by its /64, as the rate limits count it) are served at once, so
//!   one client that keeps its connections busy cannot take every slot. A connection past it is
//!   answered `429 too_many_requests` in the error shape, with `Retry-After`, and closed.
//! - **Header size**: a request line and headers over `max_header_bytes` get `431
//!   request_header_fields_too_large` in the error shape. hyper's read buffer is set to four
//!   times that (at least 64 KiB): a head larger than the buffer, or with more than 100
//!   headers, never reaches the app; hyper answers it itself, as it does a request it cannot
//!   parse (see below).
//! - **hyper's own answers**: to a request it cannot parse, hyper writes a bare `400`, `414`
//!   or `431` (no body) and closes. [`Watched`] recognises that answer as it is written and
//!   writes the same status in the error shape instead (spec 1.3): the app's own responses
//!   always have a JSON body, so a body-less 4xx can only be hyper's.
//!
//! Shutdown: no new connection is accepted, every connection finishes the request in flight
//! and closes, and [`serve`] returns once all are closed.

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use shared::error::Error;
use shared::http::{BodyReadTimedOut, HttpError, normalize_path};
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;

/// The local server's limits; `trusted-device serve` flags set them (README, Configuration).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_connections_per_address: 64,
            max_header_bytes: 16 * 1024,
        }
    }
}

impl Limits {
    /// hyper's read buffer: room for a head over the app's limit, so that it is answered in the
    /// error shape, but bounded (it is per connection).
    fn hyper_buffer(&self) -> usize {
        self.max_header_bytes.saturating_mul(4).max(64 * 1024)
    }
}

/// Serves `router` on `listener` with `limits` until `shutdown` completes; requests in flight
/// finish first.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = u32::try_from(limits.max_connections.clamp(1, 1 << 20)).unwrap_or(1 << 20);
    let slots = Arc::new(Semaphore::new(permits as usize));
    let (closing, closing_seen) = watch::channel(false);
    let per_address = PerAddress::default();
    tokio::pin!(shutdown);
    loop {
        // A slot first, then accept: at the cap, new connections wait in the listen backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    use std::io::ErrorKind::{ConnectionAborted, ConnectionReset};
                    // A client gone before it was accepted is nothing; out of file
                    // descriptors and the like: wait instead of spinning.
                    if !matches!(error.kind(), ConnectionAborted | ConnectionReset) {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(held) = per_address.admit(peer, limits.max_connections_per_address) else {
            tokio::spawn(async move {
                refuse_connection(stream).await;
                drop(slot);
            });
            continue;
        };
        let router = router.clone();
        let closing = closing_seen.clone();
        // The slot and the address count stay held while a request or an upgraded WebSocket
        // of this connection holds a clone (crate::websocket).
        let hold = ConnectionHold(Arc::new((slot, held)));
        tokio::spawn(async move {
            serve_connection(stream, peer, router, limits, closing, hold).await;
        });
    }
    // Connections still in the backlog are reset; accepted ones finish their request.
    drop(listener);
    let _ = closing.send(true);
    // Each connection holds its slot until it has closed: all slots back means all closed.
    let _ = slots.acquire_many(permits).await;
    Ok(())
}

/// Open connections per address (see the module docs).
#[derive(Clone, Default)]
struct PerAddress(Arc<std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>>);

/// One connection counted against its address; uncounted when dropped.
struct AddressSlot {
    counts: PerAddress,
    address: IpAddr,
}

impl PerAddress {
    /// Counts a connection from `peer`, unless its address already has `cap` open.
    fn admit(&self, peer: SocketAddr, cap: usize) -> Option<AddressSlot> {
        let address = shared::usecase::limits::source_prefix(peer.ip());
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let open = counts.entry(address).or_insert(0);
        if *open >= cap.max(1) {
            return None;
        }
        *open += 1;
        Some(AddressSlot {
            counts: self.clone(),
            address,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(open) = counts.get_mut(&self.address) {
            *open -= 1;
            if *open == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

/// Answers a connection over its address's cap with `429` in the error shape, and closes it.
async fn refuse_connection(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt as _;
    let body = serde_json::json!({
        "error": "too_many_requests",
        "errorCode": "too_many_requests",
        "errorDescription": "Too many connections from this address; retry later.",
    })
    .to_string();
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    // Bounded: a client that does not read its answer does not keep the task.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// A connection's server slot and address count: freed when the last clone is dropped. A
/// WebSocket keeps one, so an upgraded connection still counts against the caps.
#[derive(Clone)]
pub struct ConnectionHold(
    #[allow(dead_code, reason = "held, not read")] Arc<(OwnedSemaphorePermit, AddressSlot)>,
);

/// The server's shutdown signal, for what outlives a request (an upgraded WebSocket).
#[derive(Clone)]
pub struct ServerClosing(pub watch::Receiver<bool>);

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    mut closing: watch::Receiver<bool>,
    hold: ConnectionHold,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
        max_header_bytes: limits.max_header_bytes,
        replacement: None,
    });
    let service = {
        let activity = activity.clone();
        let hold = hold.clone();
        let server_closing = ServerClosing(closing.clone());
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            let in_flight = InFlight::start(activity.clone());
            let router = router.clone();
            request.extensions_mut().insert(hold.clone());
            request.extensions_mut().insert(server_closing.clone());
            async move {
                let response = handle(router, request, peer, limits).await;
                drop(in_flight);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .header_read_timeout(None)
        .max_buf_size(limits.hyper_buffer());
    // With upgrades: `GET /ws-v1-challenge` becomes a WebSocket (crate::websocket); the
    // connection future then ends and the socket's task owns the stream.
    let connection = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(connection);
    let mut shutting_down = *closing.borrow();
    if shutting_down {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        let deadline = activity.deadline(&limits);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            changed = closing.changed(), if !shutting_down => {
                shutting_down = changed.is_err() || *closing.borrow();
                if shutting_down {
                    // Closes at once if idle; otherwise after the response in flight.
                    connection.as_mut().graceful_shutdown();
                }
            }
            () = activity.changed.notified() => {}
            () = tokio::time::sleep_until(deadline) => {
                if let Some(reason) = activity.expired(&limits) {
                    tracing::debug!(reason, "connection closed");
                    // Dropping the connection closes the socket.
                    return;
                }
            }
        }
    }
}

/// One request: the peer address for the handlers (`shared::http::PeerIp`), the header size
/// check, the body deadline, the path normalisation, then the routers.
async fn handle(
    router: Router,
    request: Request<Incoming>,
    peer: SocketAddr,
    limits: Limits,
) -> Response {
    let (mut parts, body) = request.into_parts();
    if head_size(&parts) > limits.max_header_bytes {
        let error = HttpError::HeaderFieldsTooLarge(limits.max_header_bytes);
        return refused_before_routing(&parts, error);
    }
    // RFC 9112 3.2: an HTTP/1.1 request without exactly one `Host` is a 400 (hyper does not
    // check; API Gateway does, before the functions).
    if parts.version == axum::http::Version::HTTP_11
        && parts
            .headers
            .get_all(axum::http::header::HOST)
            .iter()
            .count()
            != 1
    {
        let error = HttpError::from(Error::invalid_request(
            "An HTTP/1.1 request needs exactly one Host header (RFC 9112 3.2).",
        ));
        return refused_before_routing(&parts, error);
    }
    parts.extensions.insert(ConnectInfo(peer));
    // A request without a body (most GETs) needs no deadline, nor its timer.
    let body = if hyper::body::Body::is_end_stream(&body) {
        Body::new(body)
    } else {
        Body::new(DeadlineBody {
            inner: body,
            deadline: Box::pin(tokio::time::sleep(limits.body_read_timeout)),
            limit: limits.body_read_timeout,
        })
    };
    let request = normalize_path(Request::from_parts(parts, body));
    match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// The answer to a request refused before the routers, which would have logged it: its log
/// line here, in the routers' shape.
fn refused_before_routing(parts: &axum::http::request::Parts, error: HttpError) -> Response {
    tracing::info!(
        method = %parts.method,
        route = "unmatched",
        status = error.status().as_u16(),
        error = error.code(),
        "request"
    );
    error.into_response()
}

/// The size of a request line and headers as sent, near enough: method, target, version and
/// `name: value\r\n` per header.
fn head_size(parts: &axum::http::request::Parts) -> usize {
    let line = parts.method.as_str().len()
        + parts.uri.path_and_query().map_or(1, |pq| pq.as_str().len())
        + " HTTP/1.1\r\n".len()
        + 1;
    parts.headers.iter().fold(line, |size, (name, value)| {
        size + name.as_str().len() + value.len() + 4
    })
}

/// A request body that fails with [`BodyReadTimedOut`] once its deadline has passed.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    limit: Duration,
}

impl hyper::body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyReadTimedOut(this.limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What a connection is doing, for its timeouts: requests in flight, when it last became idle,
/// and when the first byte of a request arrived while it was idle. Times are milliseconds since
/// `opened`; `head_started` is that plus one, and 0 when no request has begun. `changed` wakes
/// the connection's timer when a request begins or ends.
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    idle_since: AtomicU64,
    head_started: AtomicU64,
    changed: Notify,
}

impl Activity {
    /// A new connection is expected to send its request at once: the header read timeout
    /// runs from the moment it opens (a connection that sends nothing is not "idle").
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(1),
            changed: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, millis: u64) -> Instant {
        self.opened + Duration::from_millis(millis)
    }

    /// Bytes arrived: if the connection was idle, a request has begun.
    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started.load(Ordering::Acquire) == 0
        {
            // +1: 0 means "none", and a request may begin in the connection's first millisecond.
            self.head_started.store(self.now() + 1, Ordering::Release);
            self.changed.notify_one();
        }
    }

    /// When to look again: the header or idle deadline, or (a request in flight, bounded by
    /// the body deadline and the handler) after the shorter timeout.
    fn deadline(&self, limits: &Limits) -> Instant {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Instant::now() + limits.header_read_timeout.min(limits.idle_timeout);
        }
        match self.head_started.load(Ordering::Acquire) {
            0 => self.at(self.idle_since.load(Ordering::Acquire)) + limits.idle_timeout,
            started => self.at(started - 1) + limits.header_read_timeout,
        }
    }

    /// Why the connection must close now, if it must.
    fn expired(&self, limits: &Limits) -> Option<&'static str> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let now = Instant::now();
        match self.head_started.load(Ordering::Acquire) {
            0 => (now >= self.at(self.idle_since.load(Ordering::Acquire)) + limits.idle_timeout)
                .then_some("idle timeout"),
            started => (now >= self.at(started - 1) + limits.header_read_timeout)
                .then_some("header read timeout"),
        }
    }
}

/// A request from its head to its response: the connection is busy, not idle.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.head_started.store(0, Ordering::Release);
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        activity.idle_since.store(activity.now(), Ordering::Release);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
        activity.changed.notify_one();
    }
}

/// The TCP stream, telling [`Activity`] when bytes arrive, and writing hyper's own error
/// answers in the error shape.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
    max_header_bytes: usize,
    /// The error-shaped answer being written in place of hyper's, and how much of it is out.
    replacement: Option<(Vec<u8>, usize)>,
}

impl Watched {
    /// Writes the replacement to its end, then reports hyper's `claimed` bytes as written.
    fn poll_replacement(
        &mut self,
        cx: &mut Context<'_>,
        claimed: usize,
    ) -> Poll<std::io::Result<usize>> {
        while let Some((bytes, written)) = self.replacement.as_mut() {
            if *written == bytes.len() {
                self.replacement = None;
                break;
            }
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(claimed))
    }
}

/// If `head` is hyper's automatic answer to a request it could not parse (a 400, 414 or 431
/// status line and headers with `content-length: 0`, nothing after), the same answer in the
/// error shape.
fn error_shaped(head: &[u8], max_header_bytes: usize) -> Option<Vec<u8>> {
    const EMPTY_BODY: &[u8] = b"\r\ncontent-length: 0\r\n";
    if !head.starts_with(b"HTTP/1.1 4") || head.len() < 16 {
        return None;
    }
    let end = head.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let lowercase = head.to_ascii_lowercase();
    if end != head.len() || !lowercase.windows(EMPTY_BODY.len()).any(|w| w == EMPTY_BODY) {
        return None;
    }
    let error = match &head[9..12] {
        b"400" => HttpError::from(Error::invalid_request("The request is not valid HTTP/1.1.")),
        b"414" => HttpError::UriTooLong,
        b"431" => HttpError::HeaderFieldsTooLarge(max_header_bytes),
        _ => return None,
    };
    let body = serde_json::to_vec(&error.body()).ok()?;
    let status = error.status();
    let mut answer = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default(),
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    tracing::info!(
        route = "unmatched",
        status = status.as_u16(),
        error = error.code(),
        "request"
    );
    Some(answer)
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if this.replacement.is_none() {
            this.replacement = error_shaped(buf, this.max_header_bytes).map(|bytes| (bytes, 0));
        }
        if this.replacement.is_some() {
            return this.poll_replacement(cx, buf.len());
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if this.replacement.is_none() {
            // hyper's answer is a head alone: one non-empty slice.
            let mut filled = bufs.iter().filter(|b| !b.is_empty());
            if let (Some(only), None) = (filled.next(), filled.next()) {
                this.replacement = error_shaped(only, this.max_header_bytes).map(|b| (b, 0));
            }
        }
        if this.replacement.is_some() {
            let claimed = bufs.iter().map(|b| b.len()).sum();
            return this.poll_replacement(cx, claimed);
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(answer: &[u8]) -> serde_json::Value {
        let text = std::str::from_utf8(answer).unwrap();
        let (_, body) = text.split_once("\r\n\r\n").unwrap();
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn hypers_bare_answers_are_rewritten_in_the_error_shape() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 14:00:00 GMT\r\n\r\n";
        let answer = error_shaped(bare, 16384).expect("rewritten");
        assert!(answer.starts_with(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert_eq!(
            body_of(&answer)["errorCode"],
            "request_header_fields_too_large"
        );
        let bare = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(
            body_of(&error_shaped(bare, 1).unwrap())["error"],
            "invalid_request"
        );
        let bare = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(
            body_of(&error_shaped(bare, 1).unwrap())["error"],
            "uri_too_long"
        );
    }

    #[test]
    fn the_apps_own_answers_are_left_alone() {
        let app = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 80\r\n\r\n";
        assert!(error_shaped(app, 16384).is_none());
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}";
        assert!(error_shaped(with_body, 16384).is_none());
        let head_response = b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 70\r\n\r\n";
        assert!(error_shaped(head_response, 16384).is_none());
        assert!(error_shaped(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", 1).is_none());
        assert!(error_shaped(b"HTTP/1.1 4", 1).is_none());
    }
}

//! What a stranger can make a server hold before any call is authorized:
//! connections (a cap per process; a connection over it is closed at once)
//! and requests (a token bucket per remote address, checked before
//! authentication, so bad tokens and made-up methods count too).

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::{OwnedSemaphorePermit, Semaphore},
};
use tonic::transport::server::{Connected, TcpConnectInfo};
use veltrix_access::{Admission, LimitArgs};

/// Connections closed at once because the process held its maximum.
pub const CONNECTIONS_REFUSED: &str = "veltrix_connections_refused_total";

/// Requests refused by the per-address rate, before authentication.
pub const PEER_RATE_REFUSED: &str = "veltrix_peer_rate_refused_total";

pub fn describe_connection_metrics() {
    metrics::describe_counter!(CONNECTIONS_REFUSED, "Connections closed at once: the process held --max-connections.");
    metrics::describe_counter!(PEER_RATE_REFUSED, "Calls refused by --peer-rate-limit, before authentication.");
    metrics::counter!(CONNECTIONS_REFUSED).increment(0);
    metrics::counter!(PEER_RATE_REFUSED).increment(0);
}

/// Accepted connections of `listener`, at most `max` open at once, with
/// TCP_NODELAY set: tonic sets it only on listeners it binds itself, and
/// without it a response written in several segments waits for the peer's
/// delayed ACK (~40 ms).
pub fn incoming(
    listener: tokio::net::TcpListener,
    max: usize,
) -> impl tokio_stream::Stream<Item = io::Result<Limited>> {
    use tokio_stream::StreamExt;
    let open = Arc::new(Semaphore::new(max.max(1)));
    tokio_stream::wrappers::TcpListenerStream::new(listener).filter_map(move |conn| {
        let conn = match conn {
            Ok(conn) => conn,
            Err(e) => return Some(Err(e)),
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            metrics::counter!(CONNECTIONS_REFUSED).increment(1);
            tracing::debug!(peer = ?conn.peer_addr().ok(), "connection refused: at --max-connections");
            return None;
        };
        match conn.set_nodelay(true) {
            Ok(()) => Some(Ok(Limited { stream: conn, _permit: permit })),
            Err(e) => Some(Err(e)),
        }
    })
}

/// A connection that holds one of the process's places while it is open.
pub struct Limited {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl Connected for Limited {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Limited {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Limited {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The per-address rate every server checks first (off at rate 0).
#[derive(Clone)]
pub struct PeerRateLayer {
    buckets: Option<Arc<Admission>>,
}

impl PeerRateLayer {
    pub fn new(rate: f64, burst: u32) -> Self {
        let limits = LimitArgs { rate_limit: rate, rate_burst: burst, ..LimitArgs::default() };
        Self { buckets: (rate > 0.0).then(|| Arc::new(Admission::new(limits))) }
    }
}

impl<S> tower_layer::Layer<S> for PeerRateLayer {
    type Service = PeerRate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PeerRate { inner, buckets: self.buckets.clone() }
    }
}

#[derive(Clone)]
pub struct PeerRate<S> {
    inner: S,
    buckets: Option<Arc<Admission>>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The remote address tonic records for a request, with or without TLS.
fn remote<B>(request: &http::Request<B>) -> Option<std::net::IpAddr> {
    let extensions = request.extensions();
    let tcp = extensions.get::<TcpConnectInfo>().or_else(|| {
        extensions.get::<tonic::transport::server::TlsConnectInfo<TcpConnectInfo>>().map(|tls| tls.get_ref())
    });
    tcp.and_then(TcpConnectInfo::remote_addr).map(|a| a.ip())
}

impl<S, B, RB> tower_service::Service<http::Request<B>> for PeerRate<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if let (Some(buckets), Some(ip)) = (&self.buckets, remote(&request))
            && let Err(refused) = buckets.admit(&ip.to_string())
        {
            metrics::counter!(PEER_RATE_REFUSED).increment(1);
            let status = crate::details::access_status(&refused);
            return Box::pin(std::future::ready(Ok(status.into_http())));
        }
        Box::pin(self.inner.call(request))
    }
}

//! The gRPC listener's accept loop: connections are taken up to `DUNNING_MAX_CONNECTIONS`
//! (each holds a permit until it closes, so a flood of idle connections cannot exhaust the
//! process's file descriptors), prepared (the TLS handshake, when configured) without holding
//! up the others, and handed to the server.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

/// How long a new connection may stay silent before it is closed: a gRPC client speaks at
/// once, so a silent one only holds a place under `DUNNING_MAX_CONNECTIONS`.
pub const FIRST_BYTES_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A plain TCP connection, once its client has sent something ([`FIRST_BYTES_TIMEOUT`]).
pub async fn plain(socket: TcpStream) -> Result<TcpStream, String> {
    let _ = socket.set_nodelay(true);
    // Readiness alone can be reported before any byte arrived: wait for a byte (or the end).
    match tokio::time::timeout(FIRST_BYTES_TIMEOUT, socket.peek(&mut [0; 1])).await {
        Ok(Ok(_)) => Ok(socket),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("sent nothing within {FIRST_BYTES_TIMEOUT:?}")),
    }
}

/// Connections accepted on `listener`, at most `max_connections` open at once (past it a new
/// connection is closed at once), each made ready by `prepare` (plain TCP as it is, or a TLS
/// handshake); one that fails to prepare is logged and dropped. The task accepting them is
/// returned so that a stopping server can end it.
pub fn incoming<S, F, Fut>(
    listener: TcpListener,
    max_connections: usize,
    prepare: F,
) -> (
    ReceiverStream<Result<Limited<S>, std::io::Error>>,
    tokio::task::JoinHandle<()>,
)
where
    S: Send + 'static,
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<S, String>> + Send + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    let permits = Arc::new(Semaphore::new(max_connections));
    let prepare = Arc::new(prepare);
    let accepting = tokio::spawn(async move {
        loop {
            let (socket, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: the next accept may work.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    continue;
                }
            };
            if sender.is_closed() {
                // The server stopped.
                return;
            }
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                tracing::debug!(%peer, max_connections, "connection refused: at the limit");
                continue;
            };
            let server = sender.clone();
            let prepare = prepare.clone();
            tokio::spawn(async move {
                match prepare(socket).await {
                    Ok(stream) => {
                        let _ = server
                            .send(Ok(Limited {
                                inner: stream,
                                _permit: permit,
                            }))
                            .await;
                    }
                    Err(why) => tracing::info!(%peer, error = %why, "connection dropped"),
                }
            });
        }
    });
    (ReceiverStream::new(receiver), accepting)
}

/// A connection that holds one of the listener's permits while it is open.
pub struct Limited<S> {
    inner: S,
    _permit: OwnedSemaphorePermit,
}

impl<S: Connected> Connected for Limited<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Limited<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Limited<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

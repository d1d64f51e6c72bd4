//! The drain signal: every server takes a future that completes when it
//! should stop accepting work and finish what it holds.

use std::future::Future;

/// Completes on SIGTERM or SIGINT (Ctrl-C).
///
/// If the signal handlers cannot be installed the future never completes:
/// the process then stops only by being killed, which loses nothing that a
/// drain would have saved.
pub async fn signal() {
    {
        let ctrl_c = async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => {},
            () = term => {},
        }
        tracing::info!("shutdown signal received, draining");
    }
}

/// One shutdown future shared by several servers.
#[derive(Clone)]
pub struct Shared(tokio::sync::watch::Receiver<bool>);

impl Shared {
    /// Starts a task that waits for `signal` and tells every clone.
    pub fn new(signal: impl Future<Output = ()> + Send + 'static) -> Self {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            signal.await;
            let _ = tx.send(true);
        });
        Shared(rx)
    }

    /// Completes once shutdown was signalled (or the signaller is gone).
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}

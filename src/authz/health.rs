//! Readiness on `grpc.health.v1`: the overall service (`""`) and the Check
//! service report SERVING once the authorizer is ready (every issuer's keys
//! loaded), and NOT_SERVING again when shutdown begins, so Envoy's health
//! checks drain this replica before it stops answering.

use std::future::Future;
use std::time::Duration;

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// Name under which grpc.health.v1 reports the Check service.
pub const HEALTH_SERVICE_NAME: &str = "envoy.service.auth.v3.Authorization";

/// How often readiness is polled; a change is reported on the next tick.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Reports `ready()` to `reporter` whenever it changes, until `stop`
/// completes; then reports NOT_SERVING and returns.
pub async fn report_readiness(
    reporter: HealthReporter,
    ready: impl Fn() -> bool,
    stop: impl Future<Output = ()>,
) {
    let mut reported = None;
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = &mut stop => {
                set(&reporter, ServingStatus::NotServing).await;
                return;
            }
        }
        let ready = ready();
        if reported != Some(ready) {
            let status = if ready {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            set(&reporter, status).await;
            reported = Some(ready);
        }
    }
}

async fn set(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    reporter
        .set_service_status(HEALTH_SERVICE_NAME, status)
        .await;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus as Wire;
    use tonic_health::pb::health_server::Health;
    use tonic_health::server::HealthService;

    use super::*;

    async fn status(service: &HealthService, name: &str) -> Option<Wire> {
        let request = tonic::Request::new(HealthCheckRequest {
            service: name.to_owned(),
        });
        let resp = service.check(request).await.ok()?;
        Wire::try_from(resp.into_inner().status).ok()
    }

    #[tokio::test(start_paused = true)]
    async fn serving_once_ready_and_not_serving_from_shutdown_on() {
        let reporter = HealthReporter::default();
        let service = HealthService::from_health_reporter(reporter.clone());
        let ready = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn({
            let ready = Arc::clone(&ready);
            report_readiness(reporter, move || ready.load(Ordering::SeqCst), async {
                let _ = stopped.await;
            })
        });

        tokio::time::sleep(POLL_INTERVAL).await;
        for name in ["", HEALTH_SERVICE_NAME] {
            assert_eq!(
                status(&service, name).await,
                Some(Wire::NotServing),
                "{name:?}"
            );
        }
        ready.store(true, Ordering::SeqCst);
        tokio::time::sleep(POLL_INTERVAL).await;
        for name in ["", HEALTH_SERVICE_NAME] {
            assert_eq!(
                status(&service, name).await,
                Some(Wire::Serving),
                "{name:?}"
            );
        }
        let _ = stop.send(());
        task.await.unwrap();
        for name in ["", HEALTH_SERVICE_NAME] {
            assert_eq!(
                status(&service, name).await,
                Some(Wire::NotServing),
                "{name:?}"
            );
        }
    }
}

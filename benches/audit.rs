//! Load driver for the audit forwarder: ingest rate through the webhook and
//! through Envoy's access log service with the stand-in CSE API answering
//! at once, and peak RSS of the real binary holding a full buffer.
//!
//! `cargo bench --bench audit` (release build). Each figure is the median
//! of `ROUNDS` runs; the machine is shared, so medians are what to quote.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/audit.rs"]
mod audit_support;

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::RequestMethod;
use envoy_types::pb::envoy::data::accesslog::v3::HttpAccessLogEntry;
use envoy_types::pb::envoy::service::accesslog::v3::StreamAccessLogsMessage;
use envoy_types::pb::envoy::service::accesslog::v3::access_log_service_client::AccessLogServiceClient;
use envoy_types::pb::envoy::service::accesslog::v3::stream_access_logs_message::{
    HttpAccessLogEntries, LogEntries,
};
use kube_oidc_authz::audit::Config;
use kube_oidc_authz::audit::cse::{RefreshToken, Secret};
use kube_oidc_authz::audit::{self, Listeners};
use kube_oidc_dev::cse::{CseOptions, StandInCse};
use serde_json::json;
use tokio::net::TcpListener;

const ROUNDS: usize = 3;
const EVENTS: usize = 200_000;
const PER_REQUEST: usize = 400;
const CLIENTS: usize = 4;
const PER_MESSAGE: usize = 100;

fn event(i: usize) -> serde_json::Value {
    json!({
        "level": "Metadata",
        "auditID": format!("4f6b5c2e-0000-4000-8000-{i:012}"),
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/default/pods?limit=500",
        "verb": "list",
        "user": {"username": "banyan:alice@example.com",
                 "groups": ["banyan:any-employee-personal-device", "banyan:developers", "system:authenticated"]},
        "sourceIPs": ["10.0.0.7"],
        "userAgent": "kubectl/v1.32.0 (linux/amd64) kubernetes/70d3cc9",
        "objectRef": {"resource": "pods", "namespace": "default", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": "2024-05-01T10:00:00.000000Z",
        "stageTimestamp": "2024-05-01T10:00:00.004000Z",
        "annotations": {"authorization.k8s.io/decision": "allow",
                        "authorization.k8s.io/reason": "RBAC: allowed by RoleBinding \"pod-reader-default/default\" of Role \"pod-reader-default\" to Group \"banyan:any-employee-personal-device\""}
    })
}

fn bodies(total: usize) -> Vec<bytes::Bytes> {
    (0..total / PER_REQUEST)
        .map(|r| {
            let items: Vec<_> = (0..PER_REQUEST)
                .map(|i| event(r * PER_REQUEST + i))
                .collect();
            let list =
                json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items});
            bytes::Bytes::from(serde_json::to_vec(&list).unwrap())
        })
        .collect()
}

/// Distinct entries: a request id and object name of their own.
fn als_entry(i: usize) -> HttpAccessLogEntry {
    let mut entry = audit_support::als_entry(
        RequestMethod::Get,
        &format!("/api/v1/namespaces/default/pods/web-{i}"),
        200,
    );
    if let Some(request) = entry.request.as_mut() {
        request.request_id = format!("req-{i}");
    }
    entry
}

struct Running {
    cse: StandInCse,
    _cse_stop: tokio::sync::oneshot::Sender<()>,
    webhook: String,
    als: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<audit::DrainReport, kube_oidc_authz::error::RunError>>,
}

async fn start() -> Running {
    let (cse_stop, cse_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut options = CseOptions::new("bench");
    options.retain_batches = false;
    let cse = StandInCse::spawn(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        options,
        async {
            let _ = cse_stopped.await;
        },
    )
    .unwrap();
    let mut config = Config::new(
        &cse.url(),
        "bench",
        RefreshToken::Value(Secret::new("bench")),
    );
    // The product defaults, except the throttle: the CSE stand-in answers
    // at once, and the question is how fast events get in and out.
    config.batch.throttle_qps = 0.0;
    config.batch.max_wait = Duration::from_millis(100);
    // Room for the whole run, so the ingest rate is measured without drops
    // (the buffer bound itself is what the RSS figure below exercises).
    config.buffer_events = EVENTS;
    config.buffer_bytes = 1 << 30;
    let webhook = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let als = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let w = format!("http://{}/events/kubernetes", webhook.local_addr().unwrap());
    let a = format!("http://{}", als.local_addr().unwrap());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(audit::serve(
        config,
        Listeners { webhook, als, http },
        async {
            let _ = rx.await;
        },
    ));
    Running {
        cse,
        _cse_stop: cse_stop,
        webhook: w,
        als: a,
        stop,
        task,
    }
}

/// (ingest events/s, end-to-end events/s, dropped)
async fn webhook_round(bodies: &[bytes::Bytes]) -> (f64, f64, u64) {
    let r = start().await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    let chunk = bodies.len().div_ceil(CLIENTS);
    let mut dropped = 0;
    for part in bodies.chunks(chunk) {
        let part = part.to_vec();
        let client = client.clone();
        let url = r.webhook.clone();
        tasks.push(tokio::spawn(async move {
            let mut dropped = 0;
            for body in part {
                let resp = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                let v: serde_json::Value = resp.json().await.unwrap();
                dropped += v["dropped"].as_u64().unwrap();
            }
            dropped
        }));
    }
    for t in tasks {
        dropped += t.await.unwrap();
    }
    let ingest = started.elapsed();
    let total = (bodies.len() * PER_REQUEST) as u64;
    assert!(
        r.cse
            .wait_for_events(total - dropped, Duration::from_secs(120))
            .await
    );
    let e2e = started.elapsed();
    let _ = r.stop.send(());
    r.task.await.unwrap().unwrap();
    (
        total as f64 / ingest.as_secs_f64(),
        (total - dropped) as f64 / e2e.as_secs_f64(),
        dropped,
    )
}

async fn als_round(messages: &[StreamAccessLogsMessage]) -> (f64, f64) {
    let r = start().await;
    let mut client = AccessLogServiceClient::connect(r.als.clone())
        .await
        .unwrap();
    let total = (messages.len() * PER_MESSAGE) as u64;
    // Copied before the clock starts: only sending counts.
    let messages = messages.to_vec();
    let started = Instant::now();
    client
        .stream_access_logs(tokio_stream::iter(messages))
        .await
        .unwrap();
    let ingest = started.elapsed();
    assert!(r.cse.wait_for_events(total, Duration::from_secs(120)).await);
    let e2e = started.elapsed();
    let _ = r.stop.send(());
    r.task.await.unwrap().unwrap();
    (
        total as f64 / ingest.as_secs_f64(),
        total as f64 / e2e.as_secs_f64(),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Peak RSS (VmHWM) of the release binary after its 10,000-event buffer
/// has filled during a CSE outage.
async fn rss_round(bodies: &[bytes::Bytes]) -> Option<(u64, f64)> {
    let bin = env!("CARGO_BIN_EXE_kube-oidc-authz");
    let cse = StandInCse::spawn(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        CseOptions::new("bench"),
        std::future::pending(),
    )
    .unwrap();
    cse.script(std::iter::repeat_n(503, 1_000_000));
    let port = |l: std::net::TcpListener| l.local_addr().unwrap().port();
    let ports: Vec<u16> = (0..3)
        .map(|_| port(std::net::TcpListener::bind("127.0.0.1:0").unwrap()))
        .collect();
    let mut child = tokio::process::Command::new(bin)
        .args([
            "--log-level",
            "error",
            "audit-forwarder",
            "--webhook-address",
            &format!("127.0.0.1:{}", ports[0]),
            "--als-address",
            &format!("127.0.0.1:{}", ports[1]),
            "--http-address",
            &format!("127.0.0.1:{}", ports[2]),
            "--restapi-url",
            &cse.url(),
            "--service-name",
            "bench",
        ])
        .env("BNN_K8S_AUDIT_PROXY_REFRESH_TOKEN", "bench")
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let pid = child.id()?;
    let url = format!("http://127.0.0.1:{}/events/kubernetes", ports[0]);
    let client = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if client
            .get(format!("http://127.0.0.1:{}/readyz", ports[2]))
            .send()
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    if !up {
        return None;
    }
    let mut accepted = 0;
    // 25,000 events offered: the buffer fills to 10,000 and the rest are
    // dropped, which is the worst case for memory.
    for body in bodies.iter().take(25_000 / PER_REQUEST) {
        let v: serde_json::Value = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        accepted += v["accepted"].as_u64().unwrap_or(0);
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let _ = child.start_kill();
    let _ = child.wait().await;
    Some((accepted, hwm_kib as f64 / 1024.0))
}

fn main() {
    // `cargo bench` passes `--bench`; anything else selects nothing here.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let bodies = bodies(EVENTS);
        let event_bytes = bodies[0].len() / PER_REQUEST;
        println!("audit forwarder load driver: {EVENTS} events of ~{event_bytes} bytes, {ROUNDS} rounds, medians");

        let mut ingest = Vec::new();
        let mut e2e = Vec::new();
        let mut drops = Vec::new();
        for _ in 0..ROUNDS {
            let (i, e, d) = webhook_round(&bodies).await;
            ingest.push(i);
            e2e.push(e);
            drops.push(d);
        }
        println!(
            "webhook: ingest {:.0} events/s, delivered end to end {:.0} events/s ({CLIENTS} clients, {PER_REQUEST} events/request; drops per round {drops:?})",
            median(ingest),
            median(e2e)
        );

        let messages: Vec<StreamAccessLogsMessage> = (0..EVENTS / PER_MESSAGE)
            .map(|m| StreamAccessLogsMessage {
                identifier: None,
                log_entries: Some(LogEntries::HttpLogs(HttpAccessLogEntries {
                    log_entry: (0..PER_MESSAGE).map(|i| als_entry(m * PER_MESSAGE + i)).collect(),
                })),
            })
            .collect();
        let mut ingest = Vec::new();
        let mut e2e = Vec::new();
        for _ in 0..ROUNDS {
            let (i, e) = als_round(&messages).await;
            ingest.push(i);
            e2e.push(e);
        }
        println!(
            "envoy access log: ingest {:.0} events/s, delivered end to end {:.0} events/s (1 stream, {PER_MESSAGE} entries/message)",
            median(ingest),
            median(e2e)
        );

        let mut rss = Vec::new();
        let mut held = 0;
        for _ in 0..ROUNDS {
            if let Some((accepted, mib)) = rss_round(&bodies).await {
                held = accepted;
                rss.push(mib);
            }
        }
        if rss.is_empty() {
            println!("peak RSS: not measured (no /proc or the binary did not start)");
        } else {
            println!(
                "peak RSS with a full buffer ({held} events held, CSE answering 503): {:.1} MiB (VmHWM, median of {rss:?})",
                median(rss.clone())
            );
        }
    });
}

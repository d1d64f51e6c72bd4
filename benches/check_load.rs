//! Load driver for the authz service over real gRPC (no Criterion harness).
//!
//! The service under test is the release binary (`kube-oidc-authz authz`)
//! as its own process, with production logging (one JSON decision line per
//! request, to a discarded stderr): its throughput, latency and memory are
//! those of a deployment, and `/proc/<pid>/status` gives its peak RSS
//! without the driver's own memory mixed in. The issuer is the development
//! issuer on HTTPS with a throw-away CA, in the driver's process.
//!
//! Scenarios, side by side in one run, each round in turn:
//! - `cached`: every request carries the same token (a cache hit after the
//!   first);
//! - `new`: every request carries a token the service has never seen
//!   (RS256, minted before timing starts), so each one is a full
//!   verification plus mapping; the round ends when the pool is used up;
//! - `rss`: a fresh service is sent `LOAD_RSS_TOKENS` distinct tokens
//!   (EdDSA, cheap to mint: the cache entry does not depend on the
//!   algorithm) and its resident memory is read before and after.
//!
//! Every answer must be an allow for alice; anything else aborts the run.
//!
//! Run: `cargo bench --bench check_load`. Settings (environment):
//! `LOAD_SECONDS` (5), `LOAD_CONCURRENCY` (64 requests in flight),
//! `LOAD_CONNECTIONS` (4 HTTP/2 connections), `LOAD_NEW_TOKENS` (20000),
//! `LOAD_RSS_TOKENS` (100000), `LOAD_ROUNDS` (3; medians are printed),
//! `LOAD_SCENARIOS` (`throughput,rss`: either or both),
//! `LOAD_SERVICE_GLOBAL_ARGS` (e.g. `--log-level warn`, to see what the
//! decision log costs), `LOAD_SERVICE_BIN` (another build of the service,
//! for a before/after comparison), `LOAD_SERVICE_WRAPPER` (a command the
//! service runs under, e.g. `valgrind --tool=callgrind`: instruction counts
//! per Check do not depend on what else the machine is doing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use kube_oidc_authz::authz::verify::SigningAlg;
use serde_json::json;
use support::{Issuer, check_request, ok_headers};
use tonic::transport::Channel;

const USER: &str = "banyan:alice@example.com";

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The release binary serving Check, with the product's documented flags.
struct Service {
    child: tokio::process::Child,
    grpc: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Service {
    async fn start(issuer: &Issuer, extra: &[&str]) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let sa = dir.path().join("token");
        std::fs::write(&sa, support::SA_TOKEN).unwrap();
        let (grpc, http) = (free(), free());
        let global: Vec<String> = std::env::var("LOAD_SERVICE_GLOBAL_ARGS")
            .map(|v| v.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        // A command to run the service under, e.g. valgrind's callgrind.
        let wrapper: Vec<String> = std::env::var("LOAD_SERVICE_WRAPPER")
            .map(|v| v.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let service = std::env::var("LOAD_SERVICE_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_kube-oidc-authz").to_owned());
        let (program, before) = match wrapper.split_first() {
            Some((program, args)) => (program.clone(), [args, &[service]].concat()),
            None => (service, Vec::new()),
        };
        let child = tokio::process::Command::new(program)
            .args(&before)
            .args(&global)
            .arg("authz")
            .args(["--grpc-address", &grpc.to_string()])
            .args(["--http-address", &http.to_string()])
            .args(["--upstream-token-file", sa.to_str().unwrap()])
            .args(issuer.product_flags())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let ready = format!("http://{http}/readyz");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Ok(r) = client.get(&ready).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < deadline, "authz did not become ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Service {
            child,
            grpc,
            _dir: dir,
        }
    }

    /// (VmRSS, VmHWM) in KiB.
    fn memory(&self) -> (u64, u64) {
        let pid = self.child.id().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap()
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// CPU time the service has used (user + system).
    fn cpu(&self) -> Duration {
        let pid = self.child.id().unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        // Fields after the command name, which is in parentheses.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the whole line.
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // The kernel's USER_HZ is 100 on every Linux platform Rust targets.
        Duration::from_millis(ticks * 10)
    }

    async fn clients(&self, n: usize) -> Vec<AuthorizationClient<Channel>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            // One endpoint per client: each is its own HTTP/2 connection.
            let channel = Channel::from_shared(format!("http://{}", self.grpc))
                .unwrap()
                .connect()
                .await
                .unwrap();
            out.push(AuthorizationClient::new(channel));
        }
        out
    }
}

/// A request as Envoy's ext_authz filter sends it for `kubectl get pods`.
fn request(token: &str) -> CheckRequest {
    let auth = format!("Bearer {token}");
    check_request(
        &[
            ("authorization", &auth),
            (":authority", "k8s.example.com"),
            (
                "user-agent",
                "kubectl/v1.34.0 (linux/amd64) kubernetes/abcdef0",
            ),
            (
                "accept",
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
            ),
            ("x-forwarded-proto", "https"),
            ("x-request-id", "5f0c7e8e-2f7b-4a51-9a43-3b1d8c1f2a70"),
        ],
        "203.0.113.7",
    )
}

struct Outcome {
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// Service CPU time per request.
    cpu_per_request: Duration,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i]
    }
}

/// `concurrency` tasks send requests in turn over `clients` until `until`
/// says stop; `next(i)` gives the i-th request overall.
async fn drive(
    clients: &[AuthorizationClient<Channel>],
    concurrency: usize,
    next: Arc<dyn Fn(usize) -> Option<CheckRequest> + Send + Sync>,
    deadline: Option<Instant>,
) -> Outcome {
    let counter = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..concurrency {
        let mut client = clients[t % clients.len()].clone();
        let counter = Arc::clone(&counter);
        let next = Arc::clone(&next);
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(64 * 1024);
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let Some(req) = next(i) else { break };
                let sent = Instant::now();
                let resp = client.check(req).await.unwrap().into_inner();
                latencies.push(sent.elapsed());
                let allowed = resp.status.as_ref().is_some_and(|s| s.code == 0)
                    && ok_headers(&resp)
                        .iter()
                        .any(|(k, v, _)| k == "impersonate-user" && v == USER);
                assert!(allowed, "request {i} was not allowed for {USER}: {resp:?}");
            }
            latencies
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Outcome {
        requests: latencies.len(),
        elapsed,
        latencies,
        cpu_per_request: Duration::ZERO,
    }
}

/// Mints `n` distinct tokens on every core.
fn mint(issuer: &Issuer, n: usize) -> Vec<String> {
    let threads = std::thread::available_parallelism().map_or(2, |p| p.get());
    let per = n.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (t * per..((t + 1) * per).min(n))
                        .map(|i| issuer.token(json!({ "jti": format!("load-{i}") })))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    let seconds = setting("LOAD_SECONDS", 5);
    let concurrency = setting("LOAD_CONCURRENCY", 64);
    let connections = setting("LOAD_CONNECTIONS", 4);
    let new_tokens = setting("LOAD_NEW_TOKENS", 20_000);
    let rss_tokens = setting("LOAD_RSS_TOKENS", 100_000);
    let rounds = setting("LOAD_ROUNDS", 3).max(1);
    println!(
        "Check over gRPC: {concurrency} in flight on {connections} connections; \
         cached rounds of {seconds} s, new-token rounds of {new_tokens} tokens; {rounds} rounds"
    );

    let scenarios = std::env::var("LOAD_SCENARIOS").unwrap_or_else(|_| "throughput,rss".into());
    if scenarios.split(',').any(|s| s == "throughput") {
        throughput(seconds, concurrency, connections, new_tokens, rounds).await;
    }
    if scenarios.split(',').any(|s| s == "rss") {
        memory(concurrency, connections, rss_tokens).await;
    }
}

/// The `cached` and `new` scenarios, `rounds` times each.
async fn throughput(
    seconds: usize,
    concurrency: usize,
    connections: usize,
    new_tokens: usize,
    rounds: usize,
) {
    let issuer = Issuer::start(SigningAlg::RS256).await;
    let service = Service::start(&issuer, &[]).await;
    let clients = service.clients(connections).await;
    let cached_token = issuer.token(json!({}));

    let mut results: HashMap<&str, Vec<Outcome>> = HashMap::new();
    for round in 1..=rounds {
        // Minted before timing: the driver measures the service, not RSA
        // signing. Each round's tokens are new to the service.
        let pool: Arc<Vec<CheckRequest>> = Arc::new(
            mint(&issuer, new_tokens)
                .iter()
                .map(|t| request(t))
                .collect(),
        );
        let cached = request(&cached_token);
        let deadline = Instant::now() + Duration::from_secs(seconds as u64);
        let cpu0 = service.cpu();
        let mut c = drive(
            &clients,
            concurrency,
            Arc::new(move |_| Some(cached.clone())),
            Some(deadline),
        )
        .await;
        let cpu1 = service.cpu();
        c.cpu_per_request = (cpu1 - cpu0) / c.requests as u32;
        let mut n = drive(
            &clients,
            concurrency,
            Arc::new(move |i| pool.get(i).cloned()),
            None,
        )
        .await;
        n.cpu_per_request = (service.cpu() - cpu1) / n.requests as u32;
        for (name, o) in [("cached", &c), ("new", &n)] {
            println!(
                "round {round} {name:>6}: {:>8.0} req/s  p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  \
                 service CPU {:.1} µs/request  ({} requests)",
                o.rate(),
                ms(o.percentile(0.50)),
                ms(o.percentile(0.90)),
                ms(o.percentile(0.99)),
                ms(o.percentile(1.0)),
                o.cpu_per_request.as_secs_f64() * 1e6,
                o.requests,
            );
        }
        results.entry("cached").or_default().push(c);
        results.entry("new").or_default().push(n);
    }
    let (rss, hwm) = service.memory();
    println!(
        "service after the rounds ({} tokens cached): VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        rounds * new_tokens + 1,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    drop(clients);
    drop(service);

    println!("\nmedians over {rounds} rounds:");
    println!("| scenario | req/s | p50 ms | p90 ms | p99 ms | service CPU µs/request |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for name in ["cached", "new"] {
        let os = &results[name];
        let m = |f: &dyn Fn(&Outcome) -> f64| median(os.iter().map(f).collect());
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} |",
            m(&|o| o.rate()),
            m(&|o| ms(o.percentile(0.50))),
            m(&|o| ms(o.percentile(0.90))),
            m(&|o| ms(o.percentile(0.99))),
            m(&|o| o.cpu_per_request.as_secs_f64() * 1e6),
        );
    }
    let ratio = median(
        results["cached"]
            .iter()
            .zip(&results["new"])
            .map(|(c, n)| c.rate() / n.rate())
            .collect(),
    );
    println!("cached / new throughput: {ratio:.2}x");
}

/// Resident memory of a service holding `rss_tokens` distinct identities.
async fn memory(concurrency: usize, connections: usize, rss_tokens: usize) {
    let ed = Issuer::start(SigningAlg::EdDSA).await;
    let service = Service::start(
        &ed,
        &[
            "--oidc-signing-algs",
            "EdDSA",
            "--cache-max-entries",
            &rss_tokens.max(100_000).to_string(),
        ],
    )
    .await;
    let (rss0, _) = service.memory();
    let tokens = mint(&ed, rss_tokens);
    let pool: Arc<Vec<CheckRequest>> = Arc::new(tokens.iter().map(|t| request(t)).collect());
    drop(tokens);
    let clients = service.clients(connections).await;
    let filled = drive(
        &clients,
        concurrency,
        Arc::new(move |i| pool.get(i).cloned()),
        None,
    )
    .await;
    let (rss1, hwm1) = service.memory();
    println!(
        "\nservice with {} distinct tokens cached: VmRSS {:.1} MiB (idle and ready: {:.1} MiB), VmHWM {:.1} MiB, \
         {:.0} B per cached token",
        filled.requests,
        rss1 as f64 / 1024.0,
        rss0 as f64 / 1024.0,
        hwm1 as f64 / 1024.0,
        (rss1.saturating_sub(rss0) * 1024) as f64 / filled.requests as f64,
    );
}

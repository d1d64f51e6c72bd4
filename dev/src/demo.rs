//! `kube-oidc-authz demo`: the whole stack on this machine, in the
//! foreground, on loopback only. Each role runs as a child process of this
//! same binary (Envoy from `--envoy`), so what runs is what ships:
//!
//! development issuer → stand-in apiserver → authz service → audit
//! forwarder with the stand-in CSE API (when they are available) → Envoy
//! with the shipped configuration.
//!
//! It writes `<dir>/kubeconfig` (Envoy's TLS port, its CA, alice's token)
//! and prints the kubectl commands to try. Ctrl-C stops everything.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use tokio::process::{Child, Command};

use super::certs::{DevCa, write_pem};
use super::envoy_config::{ENVOY_TEMPLATE, IMPERSONATION_LUA, SDS_TEMPLATE, defaults, render};
use kube_oidc_authz::error::RunError;

/// Flags of `kube-oidc-authz demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// The Envoy binary (`make demo` uses the one in .venv).
    #[arg(long, env = "ENVOY_BIN", default_value = "envoy")]
    pub envoy: PathBuf,
    /// Folder for certificates, tokens, rendered configs, logs and the
    /// kubeconfig.
    #[arg(long, default_value = ".demo")]
    pub dir: PathBuf,
    /// Envoy's TLS port on 127.0.0.1, the one kubectl talks to; 0 picks a
    /// free one.
    #[arg(long, default_value_t = 8443)]
    pub port: u16,
    /// The product binary that runs `authz` and `audit-forwarder`; by
    /// default `kube-oidc-authz` beside this binary.
    #[arg(long, env = "KUBE_OIDC_AUTHZ_BIN")]
    pub product_bin: Option<PathBuf>,
}

/// The two binaries the demo starts: the product (authz, audit forwarder)
/// and this development binary (issuer, stand-ins).
struct Bins {
    product: PathBuf,
    dev: PathBuf,
}

impl Bins {
    fn locate(product: Option<&Path>) -> anyhow::Result<Self> {
        let dev = std::env::current_exe().context("locate this binary")?;
        let product = match product {
            Some(p) => p.to_path_buf(),
            None => dev.with_file_name(format!("kube-oidc-authz{}", std::env::consts::EXE_SUFFIX)),
        };
        anyhow::ensure!(
            product.is_file(),
            "the product binary {} does not exist: build it (cargo build) or pass --product-bin",
            product.display()
        );
        Ok(Self { product, dev })
    }
}

/// How long each role may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

struct Role {
    name: &'static str,
    child: Child,
}

struct Stack {
    roles: Vec<Role>,
    logs: PathBuf,
}

impl Stack {
    fn spawn(&mut self, name: &'static str, program: &Path, args: &[String]) -> anyhow::Result<()> {
        let log_path = self.logs.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("create {}", log_path.display()))?;
        let err = log.try_clone().context("log file")?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {name} ({})", program.display()))?;
        self.roles.push(Role { name, child });
        Ok(())
    }

    /// The first role that has exited, if any.
    fn exited(&mut self) -> Option<(&'static str, String)> {
        for role in &mut self.roles {
            if let Ok(Some(status)) = role.child.try_wait() {
                return Some((role.name, status.to_string()));
            }
        }
        None
    }

    fn forget(&mut self, name: &str) {
        self.roles.retain(|r| r.name != name);
    }

    /// Stops every role: SIGTERM to all (through `kill`, as this crate
    /// has no unsafe code to call it directly), a shared grace period for
    /// them to drain, then SIGKILL for whatever is left.
    async fn stop(mut self) {
        let pids: Vec<String> = self
            .roles
            .iter()
            .filter_map(|r| r.child.id())
            .map(|p| p.to_string())
            .collect();
        if !pids.is_empty() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .args(&pids)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while let Some(mut role) = self.roles.pop() {
            if tokio::time::timeout_at(deadline, role.child.wait())
                .await
                .is_err()
            {
                let _ = role.child.start_kill();
                let _ = role.child.wait().await;
            }
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(l.local_addr()?.port())
}

async fn wait_ready<F, Fut>(stack: &mut Stack, name: &'static str, check: F) -> anyhow::Result<bool>
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        if let Some((exited, status)) = stack.exited() {
            if exited == name {
                return Ok(false);
            }
            bail!(
                "{exited} exited ({status}); see {}",
                stack.logs.join(format!("{exited}.log")).display()
            );
        }
        if check().await {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "{name} was not ready after {READY_TIMEOUT:?}; see {}",
        stack.logs.join(format!("{name}.log")).display()
    )
}

async fn get_ok(client: &reqwest::Client, url: &str) -> bool {
    client
        .get(url)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Runs the demo until `shutdown` completes.
pub async fn run(
    args: DemoArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let bins = Bins::locate(args.product_bin.as_deref())?;
    let dir = std::path::absolute(&args.dir).context("demo folder")?;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("create {}", logs.display()))?;
    let mut stack = Stack {
        roles: Vec::new(),
        logs,
    };
    tokio::pin!(shutdown);
    let started = tokio::select! {
        r = start(&bins, &dir, &args, &mut stack) => r.map(|()| true),
        () = &mut shutdown => Ok(false),
    };
    let result = match started {
        Ok(true) => tokio::select! {
            () = &mut shutdown => Ok(()),
            r = watch(&mut stack) => r,
        },
        other => other.map(|_| ()),
    };
    eprintln!("stopping the demo");
    stack.stop().await;
    result.map_err(RunError::Runtime)
}

/// Fails as soon as any role exits on its own.
async fn watch(stack: &mut Stack) -> anyhow::Result<()> {
    loop {
        if let Some((name, status)) = stack.exited() {
            bail!(
                "{name} exited ({status}); see {}",
                stack.logs.join(format!("{name}.log")).display()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn start(bins: &Bins, dir: &Path, args: &DemoArgs, stack: &mut Stack) -> anyhow::Result<()> {
    let port = if args.port == 0 {
        free_port()?
    } else {
        args.port
    };
    let loopback = |port: u16| format!("127.0.0.1:{port}");
    let plain = kube_oidc_authz::tls::https_client(None, Duration::from_secs(2))?;

    // Development issuer.
    let issuer_dir = dir.join("issuer");
    let issuer_port = free_port()?;
    let issuer_url = format!("https://127.0.0.1:{issuer_port}");
    stack.spawn(
        "issuer",
        &bins.dev,
        &[
            "dev-issuer".into(),
            "--listen".into(),
            loopback(issuer_port),
            "--dir".into(),
            s(&issuer_dir),
        ],
    )?;
    wait_ready(stack, "issuer", || async {
        let Ok(ca) = std::fs::read(issuer_dir.join("ca.crt")) else {
            return false;
        };
        let Ok(client) = kube_oidc_authz::tls::https_client(Some(&ca), Duration::from_secs(2))
        else {
            return false;
        };
        issuer_dir.join("alice.token").is_file()
            && get_ok(
                &client,
                &format!("{issuer_url}/.well-known/openid-configuration"),
            )
            .await
    })
    .await?;

    // Stand-in apiserver.
    let api_dir = dir.join("apiserver");
    let api_port = free_port()?;
    stack.spawn(
        "apiserver",
        &bins.dev,
        &[
            "stand-in-apiserver".into(),
            "--listen".into(),
            loopback(api_port),
            "--dir".into(),
            s(&api_dir),
        ],
    )?;
    wait_ready(stack, "apiserver", || async {
        let Ok(ca) = std::fs::read(api_dir.join("ca.crt")) else {
            return false;
        };
        let Ok(client) = kube_oidc_authz::tls::https_client(Some(&ca), Duration::from_secs(2))
        else {
            return false;
        };
        api_dir.join("token").is_file()
            && client
                .get(format!("https://127.0.0.1:{api_port}/version"))
                .send()
                .await
                .is_ok()
    })
    .await?;

    // Authz service.
    let (grpc_port, authz_http_port) = (free_port()?, free_port()?);
    let authz_args: Vec<String> = vec![
        "authz".into(),
        "--grpc-address".into(),
        loopback(grpc_port),
        "--http-address".into(),
        loopback(authz_http_port),
        "--oidc-issuer-url".into(),
        issuer_url.clone(),
        "--oidc-client-id".into(),
        "kube-oidc-authz".into(),
        "--oidc-ca-file".into(),
        s(&issuer_dir.join("ca.crt")),
        "--oidc-username-claim".into(),
        "email".into(),
        "--oidc-username-prefix".into(),
        "banyan:".into(),
        "--oidc-groups-claim".into(),
        "roles".into(),
        "--oidc-groups-prefix".into(),
        "banyan:".into(),
        "--upstream-token-file".into(),
        s(&api_dir.join("token")),
        "--apiserver-url".into(),
        format!("https://127.0.0.1:{api_port}"),
        "--apiserver-ca-file".into(),
        s(&api_dir.join("ca.crt")),
    ];
    stack.spawn("authz", &bins.product, &authz_args)?;
    let readyz = format!("http://127.0.0.1:{authz_http_port}/readyz");
    wait_ready(stack, "authz", || get_ok(&plain, &readyz)).await?;

    // Audit forwarder and the stand-in CSE API.
    let als_port = free_port()?;
    let audit = start_audit(bins, dir, als_port, stack).await?;

    // Envoy with the shipped configuration.
    let envoy_dir = dir.join("envoy");
    let tls_dir = envoy_dir.join("tls");
    std::fs::create_dir_all(&tls_dir).with_context(|| format!("create {}", tls_dir.display()))?;
    let ca = DevCa::generate("kube-oidc-authz demo CA")?;
    let serving = ca.issue("kube-oidc-authz demo", &["127.0.0.1", "localhost"])?;
    write_pem(&dir.join("ca.crt"), ca.cert_pem(), false)?;
    write_pem(&tls_dir.join("tls.crt"), &serving.cert_pem, false)?;
    write_pem(&tls_dir.join("tls.key"), &serving.key_pem, true)?;
    let lua = envoy_dir.join("impersonation.lua");
    std::fs::write(&lua, IMPERSONATION_LUA).context("write impersonation.lua")?;
    let admin_port = free_port()?;
    let mut values: BTreeMap<String, String> = defaults();
    for (k, v) in [
        ("ENVOY_LISTEN_ADDRESS", "127.0.0.1".to_owned()),
        ("ENVOY_LISTEN_PORT", port.to_string()),
        ("ENVOY_ADMIN_PORT", admin_port.to_string()),
        ("TLS_CERT_FILE", s(&tls_dir.join("tls.crt"))),
        ("TLS_KEY_FILE", s(&tls_dir.join("tls.key"))),
        ("TLS_WATCH_DIR", s(&tls_dir)),
        ("SDS_TLS_FILE", s(&envoy_dir.join("sds-tls.yaml"))),
        ("AUTHZ_ADDRESS", "127.0.0.1".to_owned()),
        ("AUTHZ_PORT", grpc_port.to_string()),
        ("APISERVER_ADDRESS", "127.0.0.1".to_owned()),
        ("APISERVER_PORT", api_port.to_string()),
        ("APISERVER_CA_FILE", s(&api_dir.join("ca.crt"))),
        ("AUDIT_ALS_ADDRESS", "127.0.0.1".to_owned()),
        ("AUDIT_ALS_PORT", als_port.to_string()),
        ("LUA_FILE", s(&lua)),
    ] {
        values.insert(k.to_owned(), v);
    }
    let envoy_yaml = envoy_dir.join("envoy.yaml");
    std::fs::write(&envoy_yaml, render(ENVOY_TEMPLATE, &values)?).context("write envoy.yaml")?;
    std::fs::write(
        envoy_dir.join("sds-tls.yaml"),
        render(SDS_TEMPLATE, &values)?,
    )
    .context("write sds-tls.yaml")?;
    stack.spawn(
        "envoy",
        &args.envoy,
        &[
            "-c".into(),
            s(&envoy_yaml),
            "--disable-hot-restart".into(),
            "--log-level".into(),
            "warn".into(),
        ],
    )?;
    let ready = format!("http://127.0.0.1:{admin_port}/ready");
    wait_ready(stack, "envoy", || get_ok(&plain, &ready)).await?;

    // The kubeconfig: Envoy's port, the demo CA, alice's token.
    let token =
        std::fs::read_to_string(issuer_dir.join("alice.token")).context("read alice.token")?;
    let kubeconfig = dir.join("kubeconfig");
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kube-oidc-authz-demo", "cluster": {
            "server": format!("https://127.0.0.1:{port}"),
            "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(ca.cert_pem()),
        }}],
        "users": [{"name": "alice", "user": {"token": token.trim()}}],
        "contexts": [{"name": "alice", "context": {"cluster": "kube-oidc-authz-demo", "user": "alice", "namespace": "default"}}],
        "current-context": "alice",
    });
    write_pem(
        &kubeconfig,
        &serde_yaml_ng::to_string(&config).context("kubeconfig")?,
        true,
    )?;

    let kc = args.dir.join("kubeconfig");
    let kc = kc.display();
    println!(
        "\nkube-oidc-authz demo is running: kubectl → Envoy https://127.0.0.1:{port} → authz → stand-in apiserver\n\
         {audit}\n\
         Try:\n\
         \x20 kubectl --kubeconfig {kc} auth whoami\n\
         \x20 kubectl --kubeconfig {kc} get pods\n\
         \x20 kubectl --kubeconfig {kc} get services     # Forbidden: alice only reads pods\n\
         \x20 kubectl --kubeconfig {kc} get pods --as-group system:masters --as alice   # refused\n\n\
         Logs are in {logs}. Ctrl-C stops everything.",
        logs = stack.logs.display(),
        audit = match audit {
            Some(cse_port) => format!(
                "Envoy access log → audit forwarder → stand-in CSE API, one batch every {DEMO_BATCH_WAIT} at most;\n\
                 \x20 the batches it received: curl -s http://127.0.0.1:{cse_port}/_stand-in/batches"
            ),
            None => "(the audit forwarder did not start: see its log)".to_owned(),
        },
    );
    Ok(())
}

/// The demo's batch interval: short, so events show up while one watches
/// (the product default is five minutes).
const DEMO_BATCH_WAIT: &str = "10s";

/// Starts the stand-in CSE API and the audit forwarder. Returns the stand-in
/// CSE API's port, or `None`, leaving neither running, when they do not
/// start.
async fn start_audit(
    bins: &Bins,
    dir: &Path,
    als_port: u16,
    stack: &mut Stack,
) -> anyhow::Result<Option<u16>> {
    let cse_port = free_port()?;
    let refresh_token = dir.join("cse-refresh-token");
    if !refresh_token.is_file() {
        let bytes: [u8; 24] = rand::random();
        write_pem(
            &refresh_token,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
            true,
        )?;
    }
    let token = std::fs::read_to_string(&refresh_token).context("read refresh token")?;
    stack.spawn(
        "cse",
        &bins.dev,
        &[
            "stand-in-cse".into(),
            "--listen".into(),
            format!("127.0.0.1:{cse_port}"),
            "--refresh-token".into(),
            token.trim().to_owned(),
        ],
    )?;
    let cse_up = || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", cse_port))
            .await
            .is_ok()
    };
    if !wait_ready(stack, "cse", cse_up).await? {
        stack.forget("cse");
        return Ok(None);
    }
    let http_port = free_port()?;
    let webhook_port = free_port()?;
    stack.spawn(
        "audit-forwarder",
        &bins.product,
        &[
            "audit-forwarder".into(),
            "--webhook-address".into(),
            format!("127.0.0.1:{webhook_port}"),
            "--http-address".into(),
            format!("127.0.0.1:{http_port}"),
            "--als-address".into(),
            format!("127.0.0.1:{als_port}"),
            "--restapi-url".into(),
            format!("http://127.0.0.1:{cse_port}"),
            "--service-name".into(),
            "kube-oidc-authz-demo".into(),
            "--refresh-token-file".into(),
            s(&refresh_token),
            "--audit-spool-dir".into(),
            s(&dir.join("audit-spool")),
            "--audit-batch-max-wait".into(),
            DEMO_BATCH_WAIT.into(),
        ],
    )?;
    let plain = kube_oidc_authz::tls::https_client(None, Duration::from_secs(2))?;
    let readyz = format!("http://127.0.0.1:{http_port}/readyz");
    if !wait_ready(stack, "audit-forwarder", || get_ok(&plain, &readyz)).await? {
        stack.forget("audit-forwarder");
        if let Some(pos) = stack.roles.iter().position(|r| r.name == "cse") {
            let mut cse = stack.roles.remove(pos);
            let _ = cse.child.start_kill();
            let _ = cse.child.wait().await;
        }
        return Ok(None);
    }
    Ok(Some(cse_port))
}

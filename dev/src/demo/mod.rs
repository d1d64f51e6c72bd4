//! `kube-oidc-dev demo`: the whole stack on this machine, in the
//! foreground, on loopback only. Each role runs as a child process: the
//! product binary (authz, audit forwarder), this binary (issuer, stand-ins)
//! and Envoy from `--envoy`, so what runs is what ships:
//!
//! development issuer and stand-in apiserver → authz service → audit
//! forwarder with the stand-in CSE API (when they are available) → Envoy
//! with the shipped configuration.
//!
//! It writes `<dir>/kubeconfig` (Envoy's TLS port, its CA, alice's token)
//! and `<dir>/stack.json` ([`manifest::Manifest`]: every role's argv, pid,
//! addresses and log, and the files a client needs), then prints the
//! kubectl commands to try. Ctrl-C stops everything. The end-to-end tests
//! start their stack through here and read the manifest.
//!
//! - [`roles`]: starting, watching and stopping the child processes.
//! - [`envoy`]: Envoy's certificate and rendered configuration.
//! - [`audit`]: the audit forwarder and the stand-in CSE API.
//! - [`manifest`]: what runs where, written to `stack.json`.

mod audit;
mod authn;
mod envoy;
pub mod manifest;
mod mtls;
mod roles;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use kube_oidc_authz::error::RunError;

use crate::certs::write_pem;
use crate::envoy_config::{Placeholders, RenderError, parse_assignment};
use manifest::{ApiserverInfo, AuditInfo, IssuerInfo, MANIFEST_FILE, Manifest};
use roles::{Bins, Roles, free_ports, get_ok, loopback};

/// Flags of `kube-oidc-dev demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// The Envoy binary (`make demo` uses the one in .venv).
    #[arg(long, env = "ENVOY_BIN", default_value = "envoy")]
    pub envoy: PathBuf,
    /// Folder for certificates, tokens, rendered configs, logs, the
    /// kubeconfig and the manifest (stack.json).
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
    /// An argument for the authz service, after the demo's own (e.g.
    /// `--authz-arg=--cache-max-entries=10`); repeatable.
    #[arg(long = "authz-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub authz_args: Vec<String>,
    /// A value for a placeholder of the shipped Envoy templates, over the
    /// demo's own (e.g. `STREAM_IDLE_TIMEOUT=5s`); repeatable.
    #[arg(long = "envoy-set", value_name = "NAME=VALUE", value_parser = parse_assignment)]
    pub envoy_set: Vec<(String, String)>,
    /// Run without the audit forwarder and the stand-in CSE API.
    #[arg(long)]
    pub no_audit: bool,
    /// Run the Check port and the access-log input with mutual TLS, as
    /// where they run apart from Envoy: certificates from a CA of the
    /// demo's own, and Envoy's clusters from envoy/remote-authz.yaml.
    #[arg(long)]
    pub authz_mtls: bool,
    /// Run the authz service without `--allow-impersonation`, so that every
    /// `Impersonate-*` header is refused (by default the demo lets its user,
    /// in `banyan:developers`, act as `banyan:bob@example.com`).
    #[arg(long)]
    pub no_impersonation: bool,
    /// How long the audit forwarder may hold a batch: short, so events show
    /// up while one watches (the product default is five minutes).
    #[arg(long, default_value = "10s")]
    pub audit_batch_max_wait: String,
    /// A Kubernetes `AuthenticationConfiguration` for the authz service in
    /// place of the demo's `--oidc-*` flags. Every `jwt` issuer is pointed
    /// at the development issuer (its `url` and `certificateAuthority` are
    /// replaced; tokens carry the audience `kube-oidc-authz`), and the
    /// stand-in apiserver lets the proxy impersonate only the extra keys
    /// its `claimMappings.extra` sets (and the credential id), as the Helm
    /// chart's ClusterRole does.
    #[arg(long, value_name = "FILE")]
    pub authentication_config: Option<PathBuf>,
    /// When a role exits, report it and keep the others running instead of
    /// stopping the demo: for tests that stop and restart roles themselves
    /// (with the argv in stack.json).
    #[arg(long)]
    pub keep_going: bool,
}

/// Runs the demo until `shutdown` completes.
pub async fn run(
    args: DemoArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    check_envoy_set(&args.envoy_set)?;
    let bins = Bins::locate(args.product_bin.as_deref())?;
    let dir = std::path::absolute(&args.dir).context("demo folder")?;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("create {}", logs.display()))?;
    // A manifest left by an earlier run names processes that are gone.
    let manifest = dir.join(MANIFEST_FILE);
    remove_if_present(&manifest)?;
    let mut roles = Roles::new(logs);
    tokio::pin!(shutdown);
    let started = tokio::select! {
        r = start(&bins, &dir, &args, &mut roles) => r.map(|()| true),
        () = &mut shutdown => Ok(false),
    };
    let result = match started {
        Ok(true) => tokio::select! {
            () = &mut shutdown => Ok(()),
            r = roles.watch(args.keep_going) => r,
        },
        other => other.map(|_| ()),
    };
    eprintln!("stopping the demo");
    let _ = std::fs::remove_file(&manifest);
    roles.stop().await;
    result.map_err(RunError::Runtime)
}

/// Every `--envoy-set` name must be a placeholder; all unknown ones are
/// reported before anything starts.
fn check_envoy_set(set: &[(String, String)]) -> Result<(), RunError> {
    let table = Placeholders::shipped().map_err(anyhow::Error::from)?;
    let unknown: Vec<String> = set
        .iter()
        .filter(|(name, _)| !table.is_known(name))
        .map(|(name, _)| format!("--envoy-set: {}", RenderError::UnknownValue(name.clone())))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(RunError::Config(unknown))
    }
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("remove {}", path.display()))
        }
        _ => Ok(()),
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

async fn start(bins: &Bins, dir: &Path, args: &DemoArgs, roles: &mut Roles) -> anyhow::Result<()> {
    let [
        issuer_port,
        api_port,
        grpc_port,
        authz_http_port,
        als_port,
        admin_port,
        any_port,
    ] = free_ports()?;
    let port = if args.port == 0 { any_port } else { args.port };
    let plain = kube_oidc_authz::tls::https_client(None, Duration::from_secs(2))?;
    let authn = args
        .authentication_config
        .as_deref()
        .map(authn::AuthnConfig::read)
        .transpose()?;

    // The development issuer and the stand-in apiserver need nothing from
    // each other: they start together.
    let issuer = IssuerInfo {
        url: format!("https://{}", loopback(issuer_port)),
        ca_file: dir.join("issuer/ca.crt"),
        alice_token_file: dir.join("issuer/alice.token"),
    };
    roles.spawn(
        "issuer",
        &bins.dev,
        &[
            "dev-issuer".into(),
            "--listen".into(),
            loopback(issuer_port),
            "--dir".into(),
            s(&dir.join("issuer")),
        ],
        &[("https", loopback(issuer_port))],
    )?;
    let api_dir = dir.join("apiserver");
    let apiserver = ApiserverInfo {
        url: format!("https://{}", loopback(api_port)),
        ca_file: api_dir.join("ca.crt"),
        token_file: api_dir.join("token"),
        ci_token_file: api_dir.join(crate::apiserver::CI_TOKEN_FILE),
        ci_token_other_audience_file: api_dir.join(crate::apiserver::CI_TOKEN_OTHER_AUDIENCE_FILE),
    };
    let mut api_args: Vec<String> = vec![
        "stand-in-apiserver".into(),
        "--listen".into(),
        loopback(api_port),
        "--dir".into(),
        s(&api_dir),
    ];
    for key in authn.iter().flat_map(authn::AuthnConfig::extra_keys) {
        api_args.push(format!("--proxy-userextra={key}"));
    }
    roles.spawn(
        "apiserver",
        &bins.dev,
        &api_args,
        &[("https", loopback(api_port))],
    )?;
    let discovery = format!("{}/.well-known/openid-configuration", issuer.url);
    roles
        .require_ready("issuer", || async {
            issuer.alice_token_file.is_file() && https_ok(&issuer.ca_file, &discovery).await
        })
        .await?;
    let version = format!("{}/version", apiserver.url);
    roles
        .require_ready("apiserver", || async {
            // Any answer will do: /version needs the proxy's token.
            apiserver.token_file.is_file() && https_answers(&apiserver.ca_file, &version).await
        })
        .await?;

    // The authz service; it turns ready once it has the issuer's keys,
    // while the rest starts.
    let mut authz_args: Vec<String> = vec![
        "authz".into(),
        "--grpc-address".into(),
        loopback(grpc_port),
        "--http-address".into(),
        loopback(authz_http_port),
    ];
    match &authn {
        Some(config) => {
            let file = dir.join("authentication-config.yaml");
            config.write_for_issuer(&file, &issuer.url, &issuer.ca_file)?;
            authz_args.extend(["--authentication-config".into(), s(&file)]);
        }
        None => authz_args.extend([
            "--oidc-issuer-url".into(),
            issuer.url.clone(),
            "--oidc-client-id".into(),
            "kube-oidc-authz".into(),
            "--oidc-ca-file".into(),
            s(&issuer.ca_file),
            "--oidc-username-claim".into(),
            "email".into(),
            "--oidc-username-prefix".into(),
            "banyan:".into(),
            "--oidc-groups-claim".into(),
            "roles".into(),
            "--oidc-groups-prefix".into(),
            "banyan:".into(),
        ]),
    }
    authz_args.extend([
        "--upstream-token-file".into(),
        s(&apiserver.token_file),
        "--apiserver-url".into(),
        apiserver.url.clone(),
        "--apiserver-ca-file".into(),
        s(&apiserver.ca_file),
    ]);
    if !args.no_impersonation {
        authz_args.push("--allow-impersonation".into());
    }
    let mtls = if args.authz_mtls {
        Some(mtls::generate(dir)?)
    } else {
        None
    };
    if let Some(m) = &mtls {
        authz_args.extend(m.server_flags("--grpc-tls"));
    }
    authz_args.extend(args.authz_args.iter().cloned());
    roles.spawn(
        "authz",
        &bins.product,
        &authz_args,
        &[
            ("grpc", loopback(grpc_port)),
            ("http", loopback(authz_http_port)),
        ],
    )?;

    let audit = if args.no_audit {
        None
    } else {
        let als_flags = mtls
            .as_ref()
            .map(|m| m.server_flags("--als-tls"))
            .unwrap_or_default();
        audit::start(
            bins,
            dir,
            als_port,
            &args.audit_batch_max_wait,
            &als_flags,
            roles,
        )
        .await?
    };

    let ports = envoy::Ports {
        listen: port,
        admin: admin_port,
        authz_grpc: grpc_port,
        apiserver: api_port,
        als: als_port,
    };
    let envoy = envoy::start(
        &args.envoy,
        dir,
        &ports,
        &apiserver.ca_file,
        mtls.as_ref(),
        &args.envoy_set,
        roles,
    )
    .await?;

    let readyz = format!("http://{}/readyz", loopback(authz_http_port));
    roles
        .require_ready("authz", || get_ok(&plain, &readyz))
        .await?;

    let kubeconfig = dir.join("kubeconfig");
    write_kubeconfig(
        &kubeconfig,
        &envoy.url,
        &envoy.ca_file,
        &issuer.alice_token_file,
    )?;
    Manifest {
        pid: std::process::id(),
        dir: dir.to_path_buf(),
        logs: roles.logs().to_path_buf(),
        kubeconfig,
        envoy,
        issuer,
        apiserver,
        audit: audit.clone(),
        roles: roles.records(),
    }
    .write(dir)?;
    print_try_it(args, port, audit.as_ref(), roles.logs());
    Ok(())
}

async fn https_client(ca_file: &Path) -> Option<reqwest::Client> {
    let ca = tokio::fs::read(ca_file).await.ok()?;
    kube_oidc_authz::tls::https_client(Some(&ca), Duration::from_secs(2)).ok()
}

async fn https_ok(ca_file: &Path, url: &str) -> bool {
    match https_client(ca_file).await {
        Some(client) => get_ok(&client, url).await,
        None => false,
    }
}

async fn https_answers(ca_file: &Path, url: &str) -> bool {
    match https_client(ca_file).await {
        Some(client) => client.get(url).send().await.is_ok(),
        None => false,
    }
}

/// A kubeconfig for alice: Envoy's URL, the CA of its certificate, her
/// token.
fn write_kubeconfig(
    path: &Path,
    server: &str,
    ca_file: &Path,
    token_file: &Path,
) -> anyhow::Result<()> {
    let ca = std::fs::read(ca_file).with_context(|| format!("read {}", ca_file.display()))?;
    let token = std::fs::read_to_string(token_file)
        .with_context(|| format!("read {}", token_file.display()))?;
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kube-oidc-authz-demo", "cluster": {
            "server": server,
            "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(ca),
        }}],
        "users": [{"name": "alice", "user": {"token": token.trim()}}],
        "contexts": [{"name": "alice", "context": {"cluster": "kube-oidc-authz-demo", "user": "alice", "namespace": "default"}}],
        "current-context": "alice",
    });
    write_pem(
        path,
        &serde_yaml_ng::to_string(&config).context("kubeconfig")?,
        true,
    )?;
    Ok(())
}

fn print_try_it(args: &DemoArgs, port: u16, audit: Option<&AuditInfo>, logs: &Path) {
    let kc = args.dir.join("kubeconfig");
    let kc = kc.display();
    let manifest = args.dir.join(MANIFEST_FILE);
    println!(
        "\nkube-oidc-authz demo is running: kubectl → Envoy https://127.0.0.1:{port} → authz → stand-in apiserver\n\
         {audit}\n\
         Try:\n\
         \x20 kubectl --kubeconfig {kc} auth whoami\n\
         \x20 kubectl --kubeconfig {kc} get pods\n\
         \x20 kubectl --kubeconfig {kc} get services     # Forbidden: alice only reads pods\n\
         \x20 kubectl --kubeconfig {kc} auth whoami --as banyan:bob@example.com --as-group banyan:any-employee-personal-device   # alice may act as bob\n\
         \x20 kubectl --kubeconfig {kc} get pods --as banyan:bob@example.com --as-group banyan:all-admins-corporate-device   # Forbidden\n\
         \x20 kubectl --kubeconfig {kc} get pods --as-group system:masters --as alice   # refused\n\n\
         Logs are in {logs}; what runs where is in {manifest}. Ctrl-C stops everything.",
        logs = logs.display(),
        manifest = manifest.display(),
        audit = match (audit, args.no_audit) {
            (Some(a), _) => format!(
                "Envoy access log → audit forwarder → stand-in CSE API, one batch every {} at most;\n\
                 \x20 the batches it received: curl -s {}/_stand-in/batches",
                args.audit_batch_max_wait, a.cse_url
            ),
            (None, true) => "(no audit forwarder: --no-audit)".to_owned(),
            (None, false) => "(the audit forwarder did not start: see its log)".to_owned(),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_set_names_must_be_placeholders() {
        let set = |names: &[&str]| -> Vec<(String, String)> {
            names
                .iter()
                .map(|n| ((*n).to_owned(), "1".to_owned()))
                .collect()
        };
        assert!(check_envoy_set(&set(&["STREAM_IDLE_TIMEOUT"])).is_ok());
        match check_envoy_set(&set(&["STREAM_IDLE_TIMEOUT", "NOPE", "ALSO_NOPE"])) {
            Err(RunError::Config(errors)) => assert_eq!(errors.len(), 2, "{errors:?}"),
            other => panic!("{other:?}"),
        }
    }
}

//! The demo's child processes: started with their output in one log file
//! each, watched for an early exit, and stopped together.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::{Child, Command};

use super::manifest::RoleRecord;

/// How long each role may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often readiness is polled while starting.
const READY_POLL: Duration = Duration::from_millis(50);
/// How often the running stack is checked for a role that exited.
const WATCH_POLL: Duration = Duration::from_millis(500);
/// How long the roles get to drain after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The two binaries the demo starts: the product (authz, audit forwarder)
/// and this development binary (issuer, stand-ins).
pub(super) struct Bins {
    pub product: PathBuf,
    pub dev: PathBuf,
}

impl Bins {
    pub fn locate(product: Option<&Path>) -> anyhow::Result<Self> {
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

struct Role {
    name: &'static str,
    child: Child,
    record: RoleRecord,
}

/// The running roles, in start order.
pub(super) struct Roles {
    roles: Vec<Role>,
    logs: PathBuf,
}

impl Roles {
    pub fn new(logs: PathBuf) -> Self {
        Self {
            roles: Vec::new(),
            logs,
        }
    }

    pub fn logs(&self) -> &Path {
        &self.logs
    }

    fn log_of(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }

    /// Starts `program args` as role `name`, listening on `addresses`
    /// (what each address serves → `host:port`), which the manifest
    /// records.
    pub fn spawn(
        &mut self,
        name: &'static str,
        program: &Path,
        args: &[String],
        addresses: &[(&'static str, String)],
    ) -> anyhow::Result<()> {
        let log_path = self.log_of(name);
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
        let record = RoleRecord {
            name: name.to_owned(),
            argv: std::iter::once(program.display().to_string())
                .chain(args.iter().cloned())
                .collect(),
            pid: child.id(),
            log: log_path,
            addresses: addresses
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
        };
        self.roles.push(Role {
            name,
            child,
            record,
        });
        Ok(())
    }

    /// What the manifest says about each running role.
    pub fn records(&self) -> Vec<RoleRecord> {
        self.roles.iter().map(|r| r.record.clone()).collect()
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

    /// Stops watching `name` (it has exited, or is about to be stopped).
    pub fn forget(&mut self, name: &str) -> Option<Child> {
        let at = self.roles.iter().position(|r| r.name == name)?;
        Some(self.roles.remove(at).child)
    }

    /// Polls `check` until it holds. Returns `false` if `name` itself
    /// exited first; fails if any other role did, or on timeout.
    pub async fn wait_ready<F, Fut>(&mut self, name: &'static str, check: F) -> anyhow::Result<bool>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            if let Some((exited, status)) = self.exited() {
                if exited == name {
                    return Ok(false);
                }
                bail!(
                    "{exited} exited ({status}); see {}",
                    self.log_of(exited).display()
                );
            }
            if check().await {
                return Ok(true);
            }
            tokio::time::sleep(READY_POLL).await;
        }
        bail!(
            "{name} was not ready after {READY_TIMEOUT:?}; see {}",
            self.log_of(name).display()
        )
    }

    /// Like [`Roles::wait_ready`], for a role the stack cannot run without:
    /// its exit is an error too.
    pub async fn require_ready<F, Fut>(
        &mut self,
        name: &'static str,
        check: F,
    ) -> anyhow::Result<()>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = bool>,
    {
        if self.wait_ready(name, check).await? {
            return Ok(());
        }
        bail!(
            "{name} exited before it was ready; see {}",
            self.log_of(name).display()
        )
    }

    /// Runs until a role exits. Then fails, unless `keep_going`: that role
    /// is reported and forgotten, and the others keep running (the
    /// end-to-end tests stop and restart roles on purpose).
    pub async fn watch(&mut self, keep_going: bool) -> anyhow::Result<()> {
        loop {
            if let Some((name, status)) = self.exited() {
                let log = self.log_of(name);
                if !keep_going {
                    bail!("{name} exited ({status}); see {}", log.display());
                }
                eprintln!("{name} exited ({status}); the other roles keep running");
                self.forget(name);
                continue;
            }
            tokio::time::sleep(WATCH_POLL).await;
        }
    }

    /// Stops every role: SIGTERM to all (through `kill`, as this crate
    /// has no unsafe code to call it directly), a shared grace period for
    /// them to drain, then SIGKILL for whatever is left.
    pub async fn stop(mut self) {
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
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
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

/// `N` distinct free ports on 127.0.0.1: every listener is held until all
/// are chosen, so the kernel cannot hand out one port twice.
pub(super) fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let mut held = Vec::with_capacity(N);
    let mut ports = [0; N];
    for port in &mut ports {
        let l = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
        *port = l.local_addr()?.port();
        held.push(l);
    }
    Ok(ports)
}

pub(super) fn loopback(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

pub(super) async fn get_ok(client: &reqwest::Client, url: &str) -> bool {
    client
        .get(url)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct() {
        let ports: [u16; 16] = free_ports().unwrap();
        let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        assert!(ports.iter().all(|p| *p != 0));
    }
}

//! Flags of `kube-oidc-authz audit-forwarder`.

/// Flags of `kube-oidc-authz audit-forwarder`.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {}

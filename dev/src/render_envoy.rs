//! `kube-oidc-dev render-envoy`: the shipped Envoy configuration rendered
//! into a folder, with the pod's or the docker-compose example's values and
//! any overrides, through the same renderer as the demo. Whoever needs the
//! files (a test, someone trying a template change) renders them here
//! rather than with a renderer of their own.

use std::path::PathBuf;

use kube_oidc_authz::error::RunError;

use crate::envoy_config::{Placeholders, Preset, Templates, parse_assignment};

/// Flags of `kube-oidc-dev render-envoy`.
#[derive(Debug, Clone, clap::Args)]
pub struct RenderEnvoyArgs {
    /// Folder to write envoy.yaml, sds-tls.yaml and impersonation.lua into
    /// (and sds-authz-client.yaml with --remote-authz); created if missing.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The values to start from (envoy/placeholders.yaml): the Kubernetes
    /// pod's, the docker-compose example's, or none, when every placeholder
    /// needs a --set.
    #[arg(long, value_enum, default_value_t = Preset::Pod)]
    pub preset: Preset,
    /// A placeholder's value, over the preset's; repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_assignment)]
    pub set: Vec<(String, String)>,
    /// Render the templates in this folder instead of the ones built into
    /// this binary.
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// For an authz service and audit forwarder apart from Envoy: their
    /// clusters from remote-authz.yaml (mutual TLS), and
    /// sds-authz-client.yaml beside envoy.yaml.
    #[arg(long)]
    pub remote_authz: bool,
}

/// Renders and writes the files. An unknown `--set` name or a template that
/// does not render is a configuration error (exit code 64), every one of
/// them reported.
pub fn run(args: &RenderEnvoyArgs) -> Result<(), RunError> {
    let table = Placeholders::shipped().map_err(anyhow::Error::from)?;
    let templates = match &args.templates {
        Some(dir) => Templates::read(dir)?,
        None => Templates::shipped(),
    };
    let mut values = table.values(args.preset);
    values.extend(args.set.iter().cloned());
    let rendered = if args.remote_authz {
        templates.render_remote_authz(&table, &values)
    } else {
        templates.render(&table, &values)
    }
    .map_err(RunError::Config)?;
    rendered.write(&args.out)?;
    Ok(())
}

//! The README documents every flag of the two product subcommands, with its
//! environment variable: a flag added without a line in the README fails
//! here.

use clap::CommandFactory;
use kube_oidc_authz::cli::Cli;

#[test]
fn every_flag_and_environment_variable_of_authz_and_audit_forwarder_is_in_the_readme() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let cli = Cli::command();
    let mut missing = Vec::new();
    for name in ["authz", "audit-forwarder"] {
        let sub = cli
            .find_subcommand(name)
            .unwrap_or_else(|| panic!("no subcommand {name}"));
        for arg in sub.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            // Hidden flags are not part of the documented interface.
            if matches!(long, "help" | "version") || arg.is_hide_set() {
                continue;
            }
            let flag = format!("`--{long}`");
            if !readme.contains(&flag) {
                missing.push(format!("{name} {flag}"));
            }
            if let Some(env) = arg.get_env() {
                let env = format!("`{}`", env.to_string_lossy());
                if !readme.contains(&env) {
                    missing.push(format!("{name} --{long}: {env}"));
                }
            }
        }
    }
    assert!(missing.is_empty(), "not in README.md: {missing:#?}");
}

//! The webhook kubeconfig, audit policy and ConfigMap shipped in
//! `deploy/audit/` parse, agree with each other and with the forwarder's
//! defaults.

use clap::Parser;
use kube_oidc_authz::audit::args::AuditArgs;
use serde_yaml_ng::Value;

fn read(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/audit")
            .join(name),
    )
    .unwrap()
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: AuditArgs,
}

#[test]
fn webhook_kubeconfig_points_at_the_default_webhook_address() {
    let kubeconfig: Value = serde_yaml_ng::from_str(&read("webhook-kubeconfig.yaml")).unwrap();
    assert_eq!(kubeconfig["kind"], "Config");
    let server = kubeconfig["clusters"][0]["cluster"]["server"]
        .as_str()
        .unwrap();
    let defaults = Cli::try_parse_from(["x"]).unwrap().args;
    assert_eq!(
        server,
        format!("http://{}/events/kubernetes", defaults.webhook_address),
        "the old sidecar's URL, on the forwarder's default address"
    );
    let current = kubeconfig["current-context"].as_str().unwrap();
    assert_eq!(kubeconfig["contexts"][0]["name"], current);
}

#[test]
fn example_policy_is_a_valid_audit_policy() {
    let policy: Value = serde_yaml_ng::from_str(&read("policy.yaml")).unwrap();
    assert_eq!(policy["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(policy["kind"], "Policy");
    let rules = policy["rules"].as_sequence().unwrap();
    assert!(!rules.is_empty());
    for rule in rules {
        let level = rule["level"].as_str().unwrap();
        assert!(
            ["None", "Metadata", "Request", "RequestResponse"].contains(&level),
            "{level}"
        );
        let keys: Vec<&str> = rule
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap())
            .collect();
        for k in keys {
            assert!(
                [
                    "level",
                    "users",
                    "userGroups",
                    "verbs",
                    "resources",
                    "namespaces",
                    "nonResourceURLs",
                    "omitStages",
                    "omitManagedFields"
                ]
                .contains(&k),
                "unknown rule field {k}"
            );
        }
    }
    // The last rule catches everything, so no request goes unrecorded.
    let last = rules.last().unwrap().as_mapping().unwrap();
    assert_eq!(last.len(), 1, "catch-all rule has only a level");
    // Secrets are never recorded with their contents.
    let secrets_rule = rules
        .iter()
        .find(|r| serde_yaml_ng::to_string(r).unwrap().contains("- secrets"))
        .unwrap();
    assert_eq!(secrets_rule["level"], "Metadata");
}

#[test]
fn configmap_carries_identical_copies() {
    let cm: Value = serde_yaml_ng::from_str(&read("configmap.yaml")).unwrap();
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(
        cm["data"]["webhook.yaml"].as_str().unwrap(),
        read("webhook-kubeconfig.yaml")
    );
    assert_eq!(
        cm["data"]["audit.yaml"].as_str().unwrap(),
        read("policy.yaml")
    );
}

//! docker-compose.yaml keeps the Check port (whose answers carry the
//! proxy's impersonating token) and the access-log input (which takes audit
//! events from whoever reaches it) on loopback: the authz service and the
//! forwarder share Envoy's network namespace, and Envoy's compose render
//! reaches them at 127.0.0.1. Nothing else on the compose network, k3s's
//! pods included, can ask for a decision or forge an event.

use std::net::SocketAddr;
use std::path::Path;

use kube_oidc_dev::envoy_config::Placeholders;
use serde_yaml_ng::Value;

fn compose() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose.yaml");
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn compose_keeps_check_and_access_log_listeners_on_loopback() {
    let compose = compose();
    for (service, variable, default) in [
        ("authz", "KUBE_OIDC_AUTHZ_GRPC_ADDRESS", "127.0.0.1:9001"),
        (
            "audit-forwarder",
            "KUBE_OIDC_AUTHZ_AUDIT_ALS_ADDRESS",
            "127.0.0.1:8084",
        ),
    ] {
        let svc = &compose["services"][service];
        assert_eq!(
            svc["network_mode"].as_str(),
            Some("service:envoy"),
            "{service} must share Envoy's network namespace"
        );
        let env = &svc["environment"];
        let addr: SocketAddr = env[variable].as_str().unwrap_or(default).parse().unwrap();
        assert!(addr.ip().is_loopback(), "{service}: {variable}={addr}");
        let opt_ins: Vec<_> = env
            .as_mapping()
            .into_iter()
            .flatten()
            .filter_map(|(k, _)| k.as_str())
            .filter(|k| k.ends_with("_ALLOW_REMOTE"))
            .collect();
        assert!(opt_ins.is_empty(), "{service}: {opt_ins:?}");
    }
    let values = Placeholders::shipped().unwrap().compose_values();
    for name in ["AUTHZ_ADDRESS", "AUDIT_ALS_ADDRESS"] {
        assert_eq!(values[name], "127.0.0.1", "{name} in the compose render");
    }
}

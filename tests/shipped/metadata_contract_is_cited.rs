//! The identity metadata contract has one home, `src/metadata.rs`; the
//! shipped Lua filter and the access-log format read it by name. Every name
//! they read must be one the service writes, under the namespace it writes.

use std::path::Path;

use kube_oidc_authz::k8s::impersonation;
use kube_oidc_authz::metadata::{self, key};

const KEYS: [&str; 7] = [
    key::MODE,
    key::USER,
    key::ISSUER,
    key::UID,
    key::GROUPS,
    key::EXTRA,
    key::IMPERSONATE_EXTRA,
];

fn shipped(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The string a Lua `local NAME = "value"` line sets.
fn lua_local(lua: &str, name: &str) -> String {
    let prefix = format!("local {name} = \"");
    let line = lua
        .lines()
        .find_map(|l| l.trim().strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no `local {name}` in the Lua filter"));
    line.trim_end_matches('"').to_owned()
}

#[test]
fn lua_filter_reads_only_keys_the_service_writes() {
    let lua = shipped("envoy/impersonation.lua");
    assert_eq!(lua_local(&lua, "NAMESPACE"), metadata::NAMESPACE);
    assert_eq!(lua_local(&lua, "EXTRA_PREFIX"), impersonation::EXTRA_PREFIX);
    let mut read = Vec::new();
    for part in lua.split("metadata[\"").skip(1) {
        read.push(part.split('"').next().unwrap().to_owned());
    }
    assert!(!read.is_empty(), "the Lua filter reads no metadata key");
    for k in &read {
        assert!(
            KEYS.contains(&k.as_str()),
            "the Lua filter reads {k:?}, which the service never writes"
        );
    }
    for needed in [key::MODE, key::GROUPS, key::IMPERSONATE_EXTRA] {
        assert!(
            read.iter().any(|k| k == needed),
            "the Lua filter no longer reads {needed}"
        );
    }
    // The header names it writes are the impersonation vocabulary's.
    assert!(lua.contains(&format!("\"{}\"", impersonation::GROUP)));
}

#[test]
fn access_log_format_reads_only_keys_the_service_writes() {
    for path in ["envoy/envoy.yaml", "envoy/compose/envoy.yaml"] {
        let config = shipped(path);
        let mut found = 0;
        for part in config.split("%DYNAMIC_METADATA(").skip(1) {
            let reference = part.split(")%").next().unwrap();
            let (namespace, k) = reference.split_once(':').unwrap();
            assert_eq!(namespace, metadata::NAMESPACE, "{path}: {reference}");
            assert!(
                KEYS.contains(&k),
                "{path}: the access log reads {k:?}, which the service never writes"
            );
            found += 1;
        }
        assert!(
            found >= 3,
            "{path}: the access log no longer carries the identity"
        );
    }
}

//! Method and request target → `k8s::request_info::resolve`.
//!
//! The first byte picks the method: one of the HTTP methods Envoy names,
//! or, past them, the next line of the input as a method of its own.
//! Invariants: never panics, answers the same twice; GET, HEAD, POST, PUT,
//! DELETE and PATCH always get a verb, from the apiserver's set on a
//! resource request; a non-resource request is only its lowercased method.
#![no_main]

use kube_oidc_authz::k8s::request_info::resolve;
use libfuzzer_sys::fuzz_target;

const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
];
const CRUD: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"];
const RESOURCE_VERBS: [&str; 9] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "proxy",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(rest) = std::str::from_utf8(rest) else {
        return;
    };
    let (method, uri) = match METHODS.get(usize::from(pick)) {
        Some(m) => (*m, rest),
        None => rest.split_once('\n').unwrap_or(("", rest)),
    };

    let info = resolve(method, uri);
    assert_eq!(resolve(method, uri), info);

    // The apiserver gives a resource request of any other method (OPTIONS,
    // CONNECT, TRACE) the empty verb, and so does `resolve`.
    let crud = CRUD.contains(&method.to_ascii_uppercase().as_str());
    if crud {
        assert!(!info.verb.is_empty(), "{method} {uri:?} → {info:?}");
    }
    if info.is_resource_request {
        if crud {
            assert!(
                RESOURCE_VERBS.contains(&info.verb.as_str()),
                "{method} {uri:?} → {info:?}"
            );
        }
    } else {
        assert_eq!(info.verb, method.to_ascii_lowercase(), "{uri:?}");
        assert!(info.api_group.is_empty() && info.api_version.is_empty());
        assert!(info.namespace.is_empty() && info.resource.is_empty());
        assert!(info.subresource.is_empty() && info.name.is_empty());
    }
    // A list names its object only through `fieldSelector=metadata.name=`.
    if info.verb == "deletecollection" {
        assert!(info.name.is_empty());
    }
});

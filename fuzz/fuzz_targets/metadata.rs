//! A protobuf `Struct` (as Envoy hands the access log's dynamic metadata)
//! → `IdentityMetadata::from_struct`.
//!
//! Invariants: what is read has a non-empty user and extras sorted by key,
//! and survives `to_struct` → `from_struct` (passthrough keeps only its
//! user, by design).
#![no_main]

use envoy_types::pb::google::protobuf::Struct;
use kube_oidc_authz::metadata::{IdentityMetadata, Mode};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = Struct::decode(data) else {
        return;
    };
    let Some(m) = IdentityMetadata::from_struct(&s) else {
        return;
    };
    assert!(!m.user.is_empty());
    assert!(m.extra.windows(2).all(|w| w[0].0 < w[1].0), "{:?}", m.extra);
    let back = IdentityMetadata::from_struct(&m.to_struct());
    match m.mode {
        Mode::Impersonate => assert_eq!(back, Some(m)),
        Mode::Passthrough => assert_eq!(back, Some(IdentityMetadata::passthrough(m.user))),
    }
});

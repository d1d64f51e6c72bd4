//! A protobuf `HttpAccessLogEntry` (as Envoy streams it to the ALS) →
//! `access_log::event_from_entry` and `has_identity`.
//!
//! Invariants: never panics; the event is one the webhook would accept
//! (`Event::validate`), its verb and object are what `resolve` says of the
//! entry's method and path, and it always serializes.
#![no_main]

use envoy_types::pb::envoy::data::accesslog::v3::HttpAccessLogEntry;
use kube_oidc_authz::audit::access_log::{event_from_entry, has_identity};
use kube_oidc_authz::audit::truncate::{self, Limits};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(entry) = HttpAccessLogEntry::decode(data) else {
        return;
    };
    let identified = has_identity(&entry);
    let event = event_from_entry(&entry);
    if let Err(e) = event.validate() {
        panic!("invalid event: {e}: {event:?}");
    }
    assert_eq!(identified, !event.user.username.is_empty());
    let limits = Limits {
        enabled: false,
        max_event_bytes: 0,
    };
    assert!(truncate::encode(event, limits).is_ok());
});

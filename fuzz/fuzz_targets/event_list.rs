//! A webhook body → `EventListIn` (and `TypeMeta`, the fallback that
//! explains a refusal) → `Event::validate` → `truncate::encode`.
//!
//! Invariants: an encoded event fits the limit and decodes back to the
//! event it came from, less its objects when it was truncated.
#![no_main]

use kube_oidc_authz::audit::event::{Event, EventListIn, TypeMeta};
use kube_oidc_authz::audit::truncate::{self, Limits, TRUNCATED_ANNOTATION};
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits {
    enabled: true,
    max_event_bytes: 2048,
};

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<TypeMeta>(data);
    let Ok(list) = serde_json::from_slice::<EventListIn>(data) else {
        return;
    };
    for event in list.items {
        let _ = event.validate();
        let Ok(encoded) = truncate::encode(event.clone(), LIMITS) else {
            continue;
        };
        assert!(encoded.json.len() <= LIMITS.max_event_bytes);
        let back: Event = match serde_json::from_str(&encoded.json) {
            Ok(e) => e,
            Err(e) => panic!("encoded event does not decode: {e}: {}", encoded.json),
        };
        let mut want = event;
        if encoded.truncated {
            want.request_object = None;
            want.response_object = None;
            want.annotations
                .insert(TRUNCATED_ANNOTATION.to_owned(), "true".to_owned());
        }
        assert_eq!(back, want);
    }
});

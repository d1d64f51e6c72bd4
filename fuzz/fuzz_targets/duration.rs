//! The Go duration grammar of every duration flag (`duration::parse`).
//!
//! Invariants: never panics; a parsed duration, written as `<nanos>ns`,
//! parses back to itself.
#![no_main]

use kube_oidc_authz::duration;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(d) = duration::parse(s) else {
        return;
    };
    let nanos = format!("{}ns", d.as_nanos());
    assert_eq!(duration::parse(&nanos), Ok(d), "{s:?} → {nanos}");
});

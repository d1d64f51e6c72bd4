//! The Go boolean grammar of every boolean flag (`boolean::parse`).
//!
//! Invariants: never panics; only the twelve spellings parse, and the
//! value's own spelling parses back to it.
#![no_main]

use kube_oidc_authz::boolean;
use libfuzzer_sys::fuzz_target;

const TRUE: [&str; 6] = ["1", "t", "T", "TRUE", "true", "True"];
const FALSE: [&str; 6] = ["0", "f", "F", "FALSE", "false", "False"];

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match boolean::parse(s) {
        Ok(true) => assert!(TRUE.contains(&s)),
        Ok(false) => assert!(FALSE.contains(&s)),
        Err(e) => {
            assert!(!TRUE.contains(&s) && !FALSE.contains(&s));
            assert!(e.contains("invalid boolean"));
        }
    }
    if let Ok(b) = boolean::parse(s) {
        assert_eq!(boolean::parse(&b.to_string()), Ok(b));
    }
});

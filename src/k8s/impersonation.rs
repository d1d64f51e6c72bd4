//! The `Impersonate-*` request headers, as the apiserver's impersonation
//! filter reads them and client-go writes them. Header names are lowercase
//! here, as HTTP/2 and Envoy carry them.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The prefix every impersonation header shares.
pub const PREFIX: &str = "impersonate-";
/// The user to act as; at most one.
pub const USER: &str = "impersonate-user";
/// A group to act as; one header line per group (the apiserver does not
/// split comma-joined values).
pub const GROUP: &str = "impersonate-group";
/// The uid to act as.
pub const UID: &str = "impersonate-uid";
/// The prefix of an extra: `impersonate-extra-<percent-encoded key>`, one
/// line per value.
pub const EXTRA_PREFIX: &str = "impersonate-extra-";

/// Characters escaped in an extra key, as client-go does: everything that
/// is not an RFC 7230 token character, and `%` itself.
const EXTRA_KEY_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'*')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// Whether a header name (any case) is an impersonation header.
pub fn is_impersonation_header(name: &str) -> bool {
    name.len() >= PREFIX.len()
        && name.as_bytes()[..PREFIX.len()].eq_ignore_ascii_case(PREFIX.as_bytes())
}

/// The header name that carries one extra key, lowercase.
pub fn extra_header_name(key: &str) -> String {
    format!(
        "{EXTRA_PREFIX}{}",
        utf8_percent_encode(key, EXTRA_KEY_ESCAPE)
    )
    .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_keys_are_escaped_as_client_go_does() {
        for (key, header) in [
            (
                "authentication.kubernetes.io/credential-id",
                "impersonate-extra-authentication.kubernetes.io%2fcredential-id",
            ),
            ("remote-client-ip", "impersonate-extra-remote-client-ip"),
            ("a%b c", "impersonate-extra-a%25b%20c"),
            ("ünï", "impersonate-extra-%c3%bcn%c3%af"),
            ("Example.COM/Team", "impersonate-extra-example.com%2fteam"),
            (
                "scopes!#$&'*+-.^_`|~",
                "impersonate-extra-scopes!#$&'*+-.^_`|~",
            ),
        ] {
            assert_eq!(extra_header_name(key), header, "{key}");
        }
    }

    #[test]
    fn impersonation_headers_are_recognised_in_any_case() {
        for (name, is) in [
            ("impersonate-user", true),
            ("Impersonate-Group", true),
            ("IMPERSONATE-EXTRA-scopes", true),
            ("impersonate-", true),
            ("impersonate", false),
            ("x-impersonate-user", false),
            ("authorization", false),
            ("", false),
        ] {
            assert_eq!(is_impersonation_header(name), is, "{name}");
        }
    }
}

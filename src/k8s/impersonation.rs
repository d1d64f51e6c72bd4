//! The `Impersonate-*` request headers, as the apiserver's impersonation
//! filter reads them and client-go writes them. Header names are lowercase
//! here, as HTTP/2 and Envoy carry them.
//!
//! [`parse`] reads what a request asks to act as the way k8s.io/apiserver's
//! `buildImpersonationRequests` does, and [`Requested::attributes`] names
//! what each requested value must be authorised for (verb `impersonate`).

use std::borrow::Cow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::access_review::ResourceAttributes;
use super::user_info::split_service_account;

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

/// The extra key of an `impersonate-extra-<escaped key>` header name (any
/// case): lowercased, then percent-decoded, as the apiserver reads it (a
/// key that does not decode is kept as written).
pub fn extra_key(name: &str) -> Option<String> {
    if !is_impersonation_header(name) {
        return None;
    }
    let lower = name.to_ascii_lowercase();
    let escaped = lower.strip_prefix(EXTRA_PREFIX)?;
    Some(match percent_decode_str(escaped).decode_utf8() {
        Ok(k) => k.into_owned(),
        Err(_) => escaped.to_owned(),
    })
}

/// One value a request asks to act as; each is authorised on its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Requested {
    User(String),
    /// A `system:serviceaccount:<namespace>:<name>` user.
    ServiceAccount {
        namespace: String,
        name: String,
    },
    Group(String),
    Extra {
        key: String,
        value: String,
    },
    Uid(String),
}

/// The API group of `userextras` and `uids`.
const AUTHENTICATION_GROUP: &str = "authentication.k8s.io";

impl Requested {
    /// The attributes the apiserver's impersonation filter authorises this
    /// value with: verb `impersonate` on `users`, `groups` or
    /// `serviceaccounts` (namespaced) in the core group, on `uids` or
    /// `userextras/<key>` in `authentication.k8s.io`; the value is the
    /// name.
    pub fn attributes(&self) -> ResourceAttributes {
        let (group, version, resource, subresource, namespace, name) = match self {
            Requested::User(n) => ("", "", "users", "", "", n.as_str()),
            Requested::ServiceAccount { namespace, name } => (
                "",
                "",
                "serviceaccounts",
                "",
                namespace.as_str(),
                name.as_str(),
            ),
            Requested::Group(n) => ("", "", "groups", "", "", n.as_str()),
            Requested::Extra { key, value } => (
                AUTHENTICATION_GROUP,
                "v1",
                "userextras",
                key.as_str(),
                "",
                value.as_str(),
            ),
            Requested::Uid(n) => (AUTHENTICATION_GROUP, "v1", "uids", "", "", n.as_str()),
        };
        ResourceAttributes {
            namespace: namespace.to_owned(),
            verb: "impersonate".to_owned(),
            group: group.to_owned(),
            version: version.to_owned(),
            resource: resource.to_owned(),
            subresource: subresource.to_owned(),
            name: name.to_owned(),
        }
    }

    /// Go's `%v` of the apiserver's `ObjectReference` for this value, as
    /// its "without impersonating a user" error prints the list.
    fn go_object_reference(&self) -> String {
        let (kind, namespace, name, api_version, field_path) = match self {
            Requested::User(n) => ("User", "", n.as_str(), "", ""),
            Requested::ServiceAccount { namespace, name } => {
                ("ServiceAccount", namespace.as_str(), name.as_str(), "", "")
            }
            Requested::Group(n) => ("Group", "", n.as_str(), "", ""),
            Requested::Extra { key, value } => (
                "UserExtra",
                "",
                value.as_str(),
                "authentication.k8s.io/v1",
                key.as_str(),
            ),
            Requested::Uid(n) => ("UID", "", n.as_str(), "authentication.k8s.io/v1", ""),
        };
        format!("{{{kind} {namespace} {name}  {api_version}  {field_path}}}")
    }
}

/// What one request asks to act as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImpersonationRequest {
    /// The username; a service account's in full.
    pub user: String,
    pub uid: Option<String>,
    /// In the order received, duplicates kept (the apiserver keeps them).
    pub groups: Vec<String>,
    /// Key → values, keys in the order first seen.
    pub extra: Vec<(String, Vec<String>)>,
}

impl ImpersonationRequest {
    /// Every requested value, in the order the apiserver authorises them
    /// (user, groups, extras, uid), each once.
    pub fn requested(&self) -> Vec<Requested> {
        let mut out = Vec::with_capacity(2 + self.groups.len() + self.extra.len());
        out.push(match split_service_account(&self.user) {
            Some((namespace, name)) => Requested::ServiceAccount {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            },
            None => Requested::User(self.user.clone()),
        });
        out.extend(self.groups.iter().cloned().map(Requested::Group));
        for (key, values) in &self.extra {
            out.extend(values.iter().map(|value| Requested::Extra {
                key: key.clone(),
                value: value.clone(),
            }));
        }
        out.extend(self.uid.iter().cloned().map(Requested::Uid));
        let mut seen = std::collections::HashSet::with_capacity(out.len());
        out.retain(|r| seen.insert(r.clone()));
        out
    }
}

/// Why the impersonation headers of a request cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// More header values than the configured bound.
    #[error("{count} impersonation header values, more than the {max} allowed")]
    TooMany { count: usize, max: usize },
    /// Groups, extras or a uid without a user; the message is the
    /// apiserver's.
    #[error("requested [{0}] without impersonating a user")]
    NoUser(String),
    /// A value holding a comma where repeated lines may have been joined
    /// into one (Envoy's `headers` map joins them), so the values cannot be
    /// told apart.
    #[error(
        "{0} holds a comma: repeated impersonation headers are joined unless the gateway sends raw headers (ext_authz encode_raw_headers)"
    )]
    Joined(String),
    /// `Impersonate-Extra-` with no key.
    #[error("impersonate-extra- header without a key")]
    EmptyExtraKey,
}

/// Reads what a request asks to act as from its header lines (lowercase or
/// any case), as the apiserver does: the first `Impersonate-User` and
/// `Impersonate-Uid` line (an empty value counts as absent), every
/// `Impersonate-Group` line, every `Impersonate-Extra-<key>` line;
/// `None` when nothing is requested. Other `impersonate-*` names are
/// ignored, as the apiserver ignores them.
///
/// `joined` says that repeated lines may have been joined with commas
/// (Envoy's `headers` map): then a comma in any value is refused, since it
/// cannot be told from two lines. At most `max_values` impersonation
/// lines are read.
pub fn parse<'a>(
    headers: impl IntoIterator<Item = (&'a str, Cow<'a, str>)>,
    joined: bool,
    max_values: usize,
) -> Result<Option<ImpersonationRequest>, ParseError> {
    let mut count = 0;
    let mut user: Option<String> = None;
    let mut uid: Option<String> = None;
    let mut groups = Vec::new();
    let mut extra: Vec<(String, Vec<String>)> = Vec::new();
    for (name, value) in headers {
        if !is_impersonation_header(name) {
            continue;
        }
        count += 1;
        if count > max_values {
            return Err(ParseError::TooMany {
                count,
                max: max_values,
            });
        }
        if joined && value.contains(',') {
            return Err(ParseError::Joined(name.to_ascii_lowercase()));
        }
        if name.eq_ignore_ascii_case(USER) {
            if user.is_none() {
                user = Some(value.into_owned());
            }
        } else if name.eq_ignore_ascii_case(UID) {
            if uid.is_none() {
                uid = Some(value.into_owned());
            }
        } else if name.eq_ignore_ascii_case(GROUP) {
            groups.push(value.into_owned());
        } else if let Some(key) = extra_key(name) {
            if key.is_empty() {
                return Err(ParseError::EmptyExtraKey);
            }
            match extra.iter_mut().find(|(k, _)| *k == key) {
                Some((_, values)) => values.push(value.into_owned()),
                None => extra.push((key, vec![value.into_owned()])),
            }
        }
    }
    let user = user.filter(|u| !u.is_empty());
    let uid = uid.filter(|u| !u.is_empty());
    let Some(user) = user else {
        if groups.is_empty() && extra.is_empty() && uid.is_none() {
            return Ok(None);
        }
        let partial = ImpersonationRequest {
            user: String::new(),
            uid,
            groups,
            extra,
        };
        let listed: Vec<String> = partial
            .requested()
            .iter()
            .skip(1)
            .map(Requested::go_object_reference)
            .collect();
        return Err(ParseError::NoUser(listed.join(" ")));
    };
    Ok(Some(ImpersonationRequest {
        user,
        uid,
        groups,
        extra,
    }))
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

    fn lines<'a>(pairs: &'a [(&'a str, &'a str)]) -> Vec<(&'a str, Cow<'a, str>)> {
        pairs.iter().map(|(k, v)| (*k, Cow::Borrowed(*v))).collect()
    }

    #[test]
    fn reads_requests_as_the_apiserver_does() {
        let got = parse(
            lines(&[
                ("authorization", "Bearer x"),
                ("Impersonate-User", "bob"),
                ("impersonate-user", "ignored-second-line"),
                ("impersonate-group", "dev"),
                ("impersonate-group", "ops"),
                ("impersonate-group", "dev"),
                ("Impersonate-Extra-Example.COM%2Fteam", "a"),
                ("impersonate-extra-example.com%2fteam", "b"),
                ("impersonate-extra-scopes", "view"),
                ("impersonate-uid", "u-7"),
                ("impersonate-something-else", "ignored"),
            ]),
            false,
            64,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            got,
            ImpersonationRequest {
                user: "bob".into(),
                uid: Some("u-7".into()),
                groups: vec!["dev".into(), "ops".into(), "dev".into()],
                extra: vec![
                    ("example.com/team".into(), vec!["a".into(), "b".into()]),
                    ("scopes".into(), vec!["view".into()]),
                ],
            }
        );
        // Reviewed once each, in the apiserver's order.
        assert_eq!(
            got.requested(),
            vec![
                Requested::User("bob".into()),
                Requested::Group("dev".into()),
                Requested::Group("ops".into()),
                Requested::Extra {
                    key: "example.com/team".into(),
                    value: "a".into()
                },
                Requested::Extra {
                    key: "example.com/team".into(),
                    value: "b".into()
                },
                Requested::Extra {
                    key: "scopes".into(),
                    value: "view".into()
                },
                Requested::Uid("u-7".into()),
            ]
        );
    }

    #[test]
    fn parse_table() {
        type Case<'a> = (
            &'a [(&'a str, &'a str)],
            bool,
            usize,
            Result<Option<&'a str>, ParseError>,
        );
        let cases: &[Case<'_>] = &[
            (&[("authorization", "Bearer x")], false, 64, Ok(None)),
            // An empty user is no user; with nothing else, nothing is asked.
            (&[("impersonate-user", "")], false, 64, Ok(None)),
            (&[("impersonate-user", "bob")], false, 64, Ok(Some("bob"))),
            (
                &[("impersonate-group", "g")],
                false,
                64,
                Err(ParseError::NoUser("{Group  g    }".into())),
            ),
            (
                &[("impersonate-user", ""), ("impersonate-uid", "1")],
                false,
                64,
                Err(ParseError::NoUser(
                    "{UID  1  authentication.k8s.io/v1  }".into(),
                )),
            ),
            (
                &[("impersonate-extra-scopes", "x")],
                false,
                64,
                Err(ParseError::NoUser(
                    "{UserExtra  x  authentication.k8s.io/v1  scopes}".into(),
                )),
            ),
            // Joined lines cannot be told from a comma in one value.
            (
                &[("impersonate-user", "bob"), ("impersonate-group", "a,b")],
                true,
                64,
                Err(ParseError::Joined("impersonate-group".into())),
            ),
            (
                &[("impersonate-user", "bob"), ("impersonate-group", "a,b")],
                false,
                64,
                Ok(Some("bob")),
            ),
            (
                &[("impersonate-user", "bob"), ("impersonate-extra-", "x")],
                false,
                64,
                Err(ParseError::EmptyExtraKey),
            ),
            (
                &[
                    ("impersonate-user", "bob"),
                    ("impersonate-group", "a"),
                    ("impersonate-group", "b"),
                ],
                false,
                2,
                Err(ParseError::TooMany { count: 3, max: 2 }),
            ),
            (
                &[("impersonate-user", "bob"), ("impersonate-group", "a")],
                false,
                2,
                Ok(Some("bob")),
            ),
        ];
        for (headers, joined, max, want) in cases {
            let got = parse(lines(headers), *joined, *max).map(|r| r.map(|r| r.user));
            assert_eq!(
                got,
                want.clone().map(|u| u.map(str::to_owned)),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn each_value_is_authorised_with_the_apiserver_attributes() {
        let cases = [
            (
                Requested::User("bob".into()),
                ("", "", "users", "", "", "bob"),
            ),
            (
                Requested::ServiceAccount {
                    namespace: "ci".into(),
                    name: "deployer".into(),
                },
                ("", "", "serviceaccounts", "", "ci", "deployer"),
            ),
            (
                Requested::Group("dev".into()),
                ("", "", "groups", "", "", "dev"),
            ),
            (
                Requested::Extra {
                    key: "example.com/team".into(),
                    value: "a".into(),
                },
                (
                    "authentication.k8s.io",
                    "v1",
                    "userextras",
                    "example.com/team",
                    "",
                    "a",
                ),
            ),
            (
                Requested::Uid("u-1".into()),
                ("authentication.k8s.io", "v1", "uids", "", "", "u-1"),
            ),
        ];
        for (requested, (group, version, resource, sub, ns, name)) in cases {
            let a = requested.attributes();
            assert_eq!(a.verb, "impersonate");
            assert_eq!(
                (
                    a.group.as_str(),
                    a.version.as_str(),
                    a.resource.as_str(),
                    a.subresource.as_str(),
                    a.namespace.as_str(),
                    a.name.as_str()
                ),
                (group, version, resource, sub, ns, name),
                "{requested:?}"
            );
        }
        let sa = ImpersonationRequest {
            user: "system:serviceaccount:ci:deployer".into(),
            ..ImpersonationRequest::default()
        };
        assert_eq!(
            sa.requested(),
            [Requested::ServiceAccount {
                namespace: "ci".into(),
                name: "deployer".into()
            }]
        );
    }
}

//! The identity contract between the authz service, Envoy and the audit
//! forwarder: what an allowed Check writes into Envoy's dynamic metadata
//! under [`NAMESPACE`], read back by
//!
//! - `envoy/impersonation.lua`, which adds one `Impersonate-Group` line per
//!   entry of [`key::GROUPS`] and one line per value of
//!   [`key::IMPERSONATE_EXTRA`] (Envoy's gRPC ext_authz cannot append
//!   repeated headers itself), only when [`key::MODE`] is `impersonate`;
//! - the access-log format of `envoy/envoy.yaml` (`%DYNAMIC_METADATA(...)%`
//!   of [`key::USER`], [`key::GROUPS`], [`key::MODE`]);
//! - the audit forwarder's access-log intake, which builds the audit event's
//!   user from it ([`IdentityMetadata::from_struct`]).
//!
//! Field by field (all strings unless said):
//!
//! | key | value |
//! | --- | --- |
//! | `mode` | `impersonate` or `passthrough` |
//! | `user` | the username sent upstream (passthrough: the reviewed user) |
//! | `issuer` | the token's issuer (impersonate only) |
//! | `uid` | the uid, when there is one |
//! | `groups` | list of the groups sent upstream |
//! | `extra` | struct: extra key → list of values |
//! | `impersonate_extra` | struct: `impersonate-extra-<escaped key>` header name → list of values |

use std::collections::HashMap;

use envoy_types::pb::google::protobuf::{ListValue, Struct, Value, value::Kind};

use crate::k8s::impersonation::extra_header_name;

/// The dynamic metadata namespace: Envoy stores what ext_authz answers under
/// its filter name.
pub const NAMESPACE: &str = "envoy.filters.http.ext_authz";

/// The keys of the identity struct.
pub mod key {
    pub const MODE: &str = "mode";
    pub const USER: &str = "user";
    pub const ISSUER: &str = "issuer";
    pub const UID: &str = "uid";
    pub const GROUPS: &str = "groups";
    pub const EXTRA: &str = "extra";
    pub const IMPERSONATE_EXTRA: &str = "impersonate_extra";
}

/// How the request goes upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// With the proxy's token and `Impersonate-*` headers.
    Impersonate,
    /// With the caller's own token, unchanged (token passthrough).
    Passthrough,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Impersonate => "impersonate",
            Mode::Passthrough => "passthrough",
        }
    }

    fn parse(s: &str) -> Option<Mode> {
        match s {
            "impersonate" => Some(Mode::Impersonate),
            "passthrough" => Some(Mode::Passthrough),
            _ => None,
        }
    }
}

/// The identity of an allowed request, as it travels in the metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityMetadata {
    pub mode: Mode,
    pub user: String,
    /// Empty for passthrough.
    pub issuer: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    /// Extra key → values, in the order written.
    pub extra: Vec<(String, Vec<String>)>,
}

impl IdentityMetadata {
    /// A passthrough request of `user`: no groups, no extras.
    pub fn passthrough(user: impl Into<String>) -> Self {
        IdentityMetadata {
            mode: Mode::Passthrough,
            user: user.into(),
            issuer: String::new(),
            uid: None,
            groups: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// The metadata struct ext_authz answers with. Passthrough writes only
    /// `mode` and `user`.
    pub fn to_struct(&self) -> Struct {
        self.view().to_struct()
    }

    /// The same identity, borrowed.
    pub fn view(&self) -> IdentityView<'_> {
        IdentityView {
            mode: self.mode,
            user: &self.user,
            issuer: &self.issuer,
            uid: self.uid.as_deref(),
            groups: &self.groups,
            extra: &self.extra,
        }
    }

    /// Reads the identity back; `None` without a known `mode` and a
    /// non-empty `user`. Like the Lua filter, it skips values of the wrong
    /// type rather than failing: the reader must not lose an audit event
    /// over a malformed field. `extra` comes back sorted by key.
    pub fn from_struct(s: &Struct) -> Option<Self> {
        let mode = Mode::parse(&string_field(s, key::MODE)?)?;
        let user = string_field(s, key::USER).filter(|u| !u.is_empty())?;
        let mut extra: Vec<(String, Vec<String>)> = match s.fields.get(key::EXTRA) {
            Some(Value {
                kind: Some(Kind::StructValue(e)),
            }) => e
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), string_list(Some(v))))
                .collect(),
            _ => Vec::new(),
        };
        extra.sort();
        Some(IdentityMetadata {
            mode,
            user,
            issuer: string_field(s, key::ISSUER).unwrap_or_default(),
            uid: string_field(s, key::UID),
            groups: string_list(s.fields.get(key::GROUPS)),
            extra,
        })
    }
}

/// An identity to write, borrowed from wherever it lives, so that the
/// Check path builds the struct without copying the identity twice.
#[derive(Debug, Clone, Copy)]
pub struct IdentityView<'a> {
    pub mode: Mode,
    pub user: &'a str,
    pub issuer: &'a str,
    pub uid: Option<&'a str>,
    pub groups: &'a [String],
    pub extra: &'a [(String, Vec<String>)],
}

impl IdentityView<'_> {
    /// The metadata struct ext_authz answers with. Passthrough writes only
    /// `mode` and `user`.
    pub fn to_struct(&self) -> Struct {
        let mut fields = HashMap::with_capacity(7);
        fields.insert(key::MODE.to_owned(), string(self.mode.as_str()));
        fields.insert(key::USER.to_owned(), string(self.user));
        if self.mode == Mode::Passthrough {
            return Struct { fields };
        }
        fields.insert(key::ISSUER.to_owned(), string(self.issuer));
        if let Some(uid) = self.uid {
            fields.insert(key::UID.to_owned(), string(uid));
        }
        fields.insert(key::GROUPS.to_owned(), list(self.groups));
        fields.insert(
            key::IMPERSONATE_EXTRA.to_owned(),
            object(
                self.extra
                    .iter()
                    .map(|(k, v)| (extra_header_name(k), list(v)))
                    .collect(),
            ),
        );
        fields.insert(
            key::EXTRA.to_owned(),
            object(
                self.extra
                    .iter()
                    .map(|(k, v)| (k.clone(), list(v)))
                    .collect(),
            ),
        );
        Struct { fields }
    }
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_owned())),
    }
}

fn list<'a>(items: impl IntoIterator<Item = &'a String>) -> Value {
    Value {
        kind: Some(Kind::ListValue(ListValue {
            values: items.into_iter().map(|s| string(s)).collect(),
        })),
    }
}

fn object(fields: HashMap<String, Value>) -> Value {
    Value {
        kind: Some(Kind::StructValue(Struct { fields })),
    }
}

fn string_field(s: &Struct, key: &str) -> Option<String> {
    match s.fields.get(key) {
        Some(Value {
            kind: Some(Kind::StringValue(v)),
        }) => Some(v.clone()),
        _ => None,
    }
}

/// A list of strings; a lone string counts as a list of one.
fn string_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value {
            kind: Some(Kind::ListValue(l)),
        }) => l
            .values
            .iter()
            .filter_map(|v| match &v.kind {
                Some(Kind::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        Some(Value {
            kind: Some(Kind::StringValue(s)),
        }) => vec![s.clone()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> IdentityMetadata {
        IdentityMetadata {
            mode: Mode::Impersonate,
            user: "banyan:alice@example.com".into(),
            issuer: "https://issuer.example".into(),
            uid: Some("u-1".into()),
            groups: vec!["banyan:developers".into(), "banyan:a,b".into()],
            extra: vec![
                (
                    "authentication.kubernetes.io/credential-id".into(),
                    vec!["JTI=abc".into()],
                ),
                (
                    "remote-client-ip".into(),
                    vec!["10.0.0.1".into(), "10.0.0.2".into()],
                ),
            ],
        }
    }

    #[test]
    fn round_trips_through_struct() {
        for identity in [
            alice(),
            IdentityMetadata {
                uid: None,
                extra: Vec::new(),
                groups: Vec::new(),
                ..alice()
            },
            IdentityMetadata::passthrough("system:serviceaccount:ns:ci"),
        ] {
            assert_eq!(
                IdentityMetadata::from_struct(&identity.to_struct()),
                Some(identity)
            );
        }
    }

    #[test]
    fn writes_the_header_names_the_lua_filter_adds() {
        let s = alice().to_struct();
        let Some(Value {
            kind: Some(Kind::StructValue(ie)),
        }) = s.fields.get(key::IMPERSONATE_EXTRA)
        else {
            panic!("no impersonate_extra");
        };
        let mut names: Vec<_> = ie.fields.keys().cloned().collect();
        names.sort();
        assert_eq!(
            names,
            [
                "impersonate-extra-authentication.kubernetes.io%2fcredential-id",
                "impersonate-extra-remote-client-ip"
            ]
        );
        assert_eq!(
            string_list(ie.fields.get("impersonate-extra-remote-client-ip")),
            ["10.0.0.1", "10.0.0.2"]
        );
        let pass = IdentityMetadata::passthrough("bob").to_struct();
        let mut keys: Vec<_> = pass.fields.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, [key::MODE, key::USER]);
    }

    #[test]
    fn reading_skips_malformed_fields_and_needs_mode_and_user() {
        let mut s = alice().to_struct();
        s.fields.insert(key::GROUPS.into(), string("only-one"));
        s.fields
            .insert(key::UID.into(), list(&vec!["not-a-string".to_owned()]));
        let got = IdentityMetadata::from_struct(&s).unwrap();
        assert_eq!(got.groups, ["only-one"]);
        assert_eq!(got.uid, None);

        for missing in [key::MODE, key::USER] {
            let mut s = alice().to_struct();
            s.fields.remove(missing);
            assert_eq!(IdentityMetadata::from_struct(&s), None, "{missing}");
        }
        let mut s = alice().to_struct();
        s.fields.insert(key::MODE.into(), string("something-else"));
        assert_eq!(IdentityMetadata::from_struct(&s), None);
        s.fields.insert(key::MODE.into(), string("impersonate"));
        s.fields.insert(key::USER.into(), string(""));
        assert_eq!(IdentityMetadata::from_struct(&s), None);
    }
}

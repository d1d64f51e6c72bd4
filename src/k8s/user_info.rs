//! `authentication.k8s.io/v1` `UserInfo`: who the apiserver thinks made a
//! request, as audit events and `SelfSubjectReview` carry it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The group every authenticated user is in.
pub const ALL_AUTHENTICATED: &str = "system:authenticated";
/// The group of unauthenticated requests.
pub const ALL_UNAUTHENTICATED: &str = "system:unauthenticated";
/// The anonymous user's name.
pub const ANONYMOUS: &str = "system:anonymous";
/// The extra key the apiserver's JWT authenticator sets from a token's
/// `jti` (as `JTI=<jti>`), so that audit can tell credentials apart.
pub const CREDENTIAL_ID_EXTRA: &str = "authentication.kubernetes.io/credential-id";
/// The domain of this project's extras naming the original user of an
/// end-user impersonation (`kubectl --as` through the proxy). Callers
/// cannot ask for keys in it: only the proxy writes them.
pub const ORIGINAL_USER_DOMAIN: &str = "originaluser.kube-oidc-authz.io/";
/// The original user's name (kube-oidc-proxy: `originaluser.jetstack.io-user`).
pub const ORIGINAL_USER_EXTRA: &str = "originaluser.kube-oidc-authz.io/user";
/// The original user's uid, when it has one.
pub const ORIGINAL_UID_EXTRA: &str = "originaluser.kube-oidc-authz.io/uid";
/// One value per group of the original user, `system:authenticated`
/// included (kube-oidc-proxy: `originaluser.jetstack.io-groups`).
pub const ORIGINAL_GROUPS_EXTRA: &str = "originaluser.kube-oidc-authz.io/groups";
/// The original user's extras as one JSON object, when it has any
/// (kube-oidc-proxy: `originaluser.jetstack.io-extra`).
pub const ORIGINAL_EXTRA_EXTRA: &str = "originaluser.kube-oidc-authz.io/extra";
/// Every original-user extra key, for RBAC.
pub const ORIGINAL_USER_EXTRAS: [&str; 4] = [
    ORIGINAL_USER_EXTRA,
    ORIGINAL_UID_EXTRA,
    ORIGINAL_GROUPS_EXTRA,
    ORIGINAL_EXTRA_EXTRA,
];
/// The prefix of a service account's username.
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// `authentication.k8s.io/v1` `UserInfo`. Empty fields are left out of the
/// JSON, as the Go type's `omitempty` tags do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// The identity of a service account, as the token authenticator
    /// builds it: `system:serviceaccounts`, the namespace's group, and
    /// `system:authenticated`.
    pub fn service_account(username: &str, uid: &str) -> Self {
        let mut groups = vec!["system:serviceaccounts".to_owned()];
        if let Some((ns, _)) = split_service_account(username) {
            groups.push(format!("system:serviceaccounts:{ns}"));
        }
        groups.push(ALL_AUTHENTICATED.to_owned());
        UserInfo {
            username: username.to_owned(),
            uid: uid.to_owned(),
            groups,
            extra: BTreeMap::new(),
        }
    }

    /// Adds `system:authenticated` unless present, as the apiserver does
    /// for every authenticated (and impersonated) user other than
    /// `system:anonymous`.
    pub fn with_authenticated_group(mut self) -> Self {
        if self.username != ANONYMOUS && !self.groups.iter().any(|g| g == ALL_AUTHENTICATED) {
            self.groups.push(ALL_AUTHENTICATED.to_owned());
        }
        self
    }
}

/// `system:serviceaccount:<ns>:<name>` → `(ns, name)`.
pub fn split_service_account(username: &str) -> Option<(&str, &str)> {
    let rest = username.strip_prefix(SERVICE_ACCOUNT_PREFIX)?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

/// Checks an `extra` key of a structured JWT authenticator's claim
/// mappings as the apiserver validates it: a domain-prefixed path (a
/// DNS-1123 subdomain, `/`, then URL path characters), lowercase, and
/// outside the `kubernetes.io` and `k8s.io` domains, which Kubernetes
/// keeps for itself.
pub fn validate_extra_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("Required value".to_owned());
    }
    let (domain, path) = match key.split_once('/') {
        Some((d, p)) if !d.is_empty() && !p.is_empty() => (d, p),
        _ => {
            return Err(format!(
                "Invalid value: {key:?}: must be a domain-prefixed path (such as \"acme.io/foo\")"
            ));
        }
    };
    if !is_dns1123_subdomain(domain) {
        return Err(format!(
            "Invalid value: {domain:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        ));
    }
    let path_ok = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:".contains(&b));
    if !path_ok {
        return Err(format!("Invalid value: {path:?}: Invalid path"));
    }
    if key != key.to_lowercase() {
        return Err(format!("Invalid value: {key:?}: key must be lowercase"));
    }
    let reserved = |d: &str| domain == d || domain.ends_with(&format!(".{d}"));
    if reserved("kubernetes.io") || reserved("k8s.io") {
        return Err(format!(
            "Invalid value: {key:?}: k8s.io, kubernetes.io and their subdomains are reserved for Kubernetes use"
        ));
    }
    Ok(())
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn service_accounts_split_and_get_their_groups() {
        for (name, want) in [
            (
                "system:serviceaccount:kube-system:default",
                Some(("kube-system", "default")),
            ),
            ("system:serviceaccount:ns:a:b", None),
            ("system:serviceaccount::x", None),
            ("system:serviceaccount:ns:", None),
            ("alice", None),
        ] {
            assert_eq!(split_service_account(name), want, "{name}");
        }
        let sa = UserInfo::service_account("system:serviceaccount:ns:proxy", "u-1");
        assert_eq!(
            sa.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:ns",
                "system:authenticated"
            ]
        );
    }

    #[test]
    fn authenticated_group_is_added_once_and_never_to_anonymous() {
        let u = UserInfo {
            username: "alice".into(),
            groups: vec!["dev".into()],
            ..UserInfo::default()
        }
        .with_authenticated_group()
        .with_authenticated_group();
        assert_eq!(u.groups, ["dev", ALL_AUTHENTICATED]);
        let anon = UserInfo {
            username: ANONYMOUS.into(),
            ..UserInfo::default()
        }
        .with_authenticated_group();
        assert!(anon.groups.is_empty());
    }

    #[test]
    fn json_leaves_out_empty_fields() {
        let u = UserInfo {
            username: "alice".into(),
            groups: vec!["g".into()],
            ..UserInfo::default()
        };
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            json!({"username": "alice", "groups": ["g"]})
        );
        let back: UserInfo =
            serde_json::from_value(json!({"username": "alice", "groups": ["g"]})).unwrap();
        assert_eq!(back, u);
        assert_eq!(
            serde_json::to_value(UserInfo::default()).unwrap(),
            json!({})
        );
    }

    #[test]
    fn extra_keys_follow_the_apiserver_rules() {
        let table = [
            ("example.com/tenant", None),
            ("acme.io/a/b_c-d~e", None),
            ("", Some("Required value")),
            ("tenant", Some("domain-prefixed path")),
            ("/tenant", Some("domain-prefixed path")),
            ("example.com/", Some("domain-prefixed path")),
            ("Example.com/tenant", Some("RFC 1123 subdomain")),
            ("-x.com/tenant", Some("RFC 1123 subdomain")),
            ("example.com/Tenant", Some("key must be lowercase")),
            ("example.com/a b", Some("Invalid path")),
            ("kubernetes.io/x", Some("reserved for Kubernetes use")),
            (
                "authentication.kubernetes.io/credential-id",
                Some("reserved"),
            ),
            ("k8s.io/x", Some("reserved")),
            ("a.k8s.io/x", Some("reserved")),
            ("notk8s.io/x", None),
        ];
        for (key, want) in table {
            match (validate_extra_key(key), want) {
                (Ok(()), None) => {}
                (Err(e), Some(w)) => assert!(e.contains(w), "{key}: {e}"),
                (got, want) => panic!("{key}: got {got:?}, want {want:?}"),
            }
        }
    }
}

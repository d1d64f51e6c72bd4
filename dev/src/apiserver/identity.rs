//! Who is asking: bearer-token authentication and the apiserver's
//! impersonation rules, as k8s.io/apiserver's authentication and
//! impersonation filters apply them.

use std::collections::BTreeMap;

use http::HeaderMap;
use subtle::ConstantTimeEq;

use super::rbac::{Attributes, Rbac};
use super::status::ApiError;

pub use kube_oidc_authz::k8s::user_info::{
    ALL_AUTHENTICATED, ALL_UNAUTHENTICATED, ANONYMOUS, UserInfo, split_service_account,
};

const SA_PREFIX: &str = kube_oidc_authz::k8s::user_info::SERVICE_ACCOUNT_PREFIX;
/// The stand-in reads `Impersonate-*` lines with its own code, not the
/// product's, so that it checks what the product writes independently.
const EXTRA_PREFIX: &str = "impersonate-extra-";

/// Authenticates the request: only `Authorization: Bearer <token>` with
/// `token` succeeds, compared in constant time. Anything else is
/// 401, as on an apiserver with anonymous access disabled.
pub fn authenticate(
    headers: &HeaderMap,
    token: &str,
    who: &UserInfo,
) -> Result<UserInfo, ApiError> {
    let presented = presented(headers)?;
    if !bool::from(presented.ct_eq(token.as_bytes())) {
        return Err(ApiError::unauthorized());
    }
    Ok(who.clone())
}

/// The bearer token of the request: exactly one `Authorization` line with
/// scheme `Bearer` (any case) and a non-empty token; anything else is 401.
pub fn presented(headers: &HeaderMap) -> Result<&[u8], ApiError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(ApiError::unauthorized());
    };
    let value = value.as_bytes();
    let Some((scheme, presented)) = split_once_byte(value, b' ') else {
        return Err(ApiError::unauthorized());
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(ApiError::unauthorized());
    }
    let presented = trim_ascii(presented);
    if presented.is_empty() {
        return Err(ApiError::unauthorized());
    }
    Ok(presented)
}

fn split_once_byte(v: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let at = v.iter().position(|b| *b == sep)?;
    Some((&v[..at], &v[at + 1..]))
}

fn trim_ascii(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &v[start..end.max(start)]
}

/// One thing the requestor asks to act as; each is authorised on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    User(String),
    ServiceAccount { namespace: String, name: String },
    Group(String),
    Extra { key: String, value: String },
    Uid(String),
}

impl Requested {
    fn describe(&self) -> String {
        match self {
            Requested::User(n) => format!("{{User  {n}}}"),
            Requested::ServiceAccount { namespace, name } => {
                format!("{{ServiceAccount {namespace} {name}}}")
            }
            Requested::Group(n) => format!("{{Group  {n}}}"),
            Requested::Extra { key, value } => {
                format!("{{UserExtra  {value}  authentication.k8s.io/v1 {key}}}")
            }
            Requested::Uid(n) => format!("{{UID  {n}  authentication.k8s.io/v1}}"),
        }
    }

    fn attributes(&self, requestor: &UserInfo) -> Attributes {
        let (api_group, resource, subresource, namespace, name) = match self {
            Requested::User(n) => ("", "users", "", "", n.as_str()),
            Requested::ServiceAccount { namespace, name } => {
                ("", "serviceaccounts", "", namespace.as_str(), name.as_str())
            }
            Requested::Group(n) => ("", "groups", "", "", n.as_str()),
            Requested::Extra { key, value } => (
                "authentication.k8s.io",
                "userextras",
                key.as_str(),
                "",
                value.as_str(),
            ),
            Requested::Uid(n) => ("authentication.k8s.io", "uids", "", "", n.as_str()),
        };
        Attributes::resource(
            requestor.clone(),
            "impersonate",
            api_group,
            resource,
            subresource,
            namespace,
            name,
        )
    }
}

/// Reads the impersonation headers. Errors are the apiserver's 500
/// `InternalError`, which is what it answers for header combinations it
/// cannot use.
///
/// Stricter than the apiserver in one place, on purpose: several
/// `Impersonate-User` lines, or one holding a comma, are refused (the
/// apiserver would silently use the first line). A proxy that sends either
/// has a bug the tests must see.
pub fn requested(headers: &HeaderMap) -> Result<Vec<Requested>, ApiError> {
    let mut out = Vec::new();
    let text = |v: &http::HeaderValue| {
        v.to_str()
            .map(str::to_owned)
            .map_err(|_| ApiError::bad_request("impersonation header values must be visible ASCII"))
    };

    let users: Vec<_> = headers.get_all("impersonate-user").iter().collect();
    if users.len() > 1 {
        return Err(ApiError::internal(
            "several Impersonate-User headers: exactly one user may be impersonated",
        ));
    }
    let user = match users.first() {
        Some(v) => text(v)?,
        None => String::new(),
    };
    if user.contains(',') {
        return Err(ApiError::internal(
            "Impersonate-User holds a comma-joined list: exactly one user may be impersonated",
        ));
    }
    let has_user = !user.is_empty();
    if has_user {
        match split_service_account(&user) {
            Some((namespace, name)) => out.push(Requested::ServiceAccount {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            }),
            None => out.push(Requested::User(user.clone())),
        }
    }

    let mut has_groups = false;
    for v in headers.get_all("impersonate-group") {
        has_groups = true;
        out.push(Requested::Group(text(v)?));
    }

    let mut has_extra = false;
    let mut extra_names: Vec<&str> = headers
        .keys()
        .map(http::HeaderName::as_str)
        .filter(|n| n.starts_with(EXTRA_PREFIX))
        .collect();
    extra_names.sort_unstable();
    for name in extra_names {
        has_extra = true;
        let encoded = &name[EXTRA_PREFIX.len()..];
        // Header names arrive lowercased; the key is then percent-decoded,
        // in that order, as the apiserver does.
        let key = match percent_encoding::percent_decode_str(encoded).decode_utf8() {
            Ok(k) => k.into_owned(),
            Err(_) => encoded.to_owned(),
        };
        for v in headers.get_all(name) {
            out.push(Requested::Extra {
                key: key.clone(),
                value: text(v)?,
            });
        }
    }

    let uid = match headers.get("impersonate-uid") {
        Some(v) => text(v)?,
        None => String::new(),
    };
    let has_uid = !uid.is_empty();
    if has_uid {
        out.push(Requested::Uid(uid));
    }

    if (has_groups || has_extra || has_uid) && !has_user {
        let list: Vec<String> = out.iter().map(Requested::describe).collect();
        return Err(ApiError::internal(&format!(
            "requested [{}] without impersonating a user",
            list.join(" ")
        )));
    }
    Ok(out)
}

/// Applies impersonation: every requested item must be authorised for
/// `requestor` (verb `impersonate`), then the request acts as the new user.
/// With nothing requested, the requestor is returned unchanged.
pub fn impersonate(
    requestor: UserInfo,
    requested: &[Requested],
    rbac: &Rbac,
) -> Result<UserInfo, ApiError> {
    if requested.is_empty() {
        return Ok(requestor);
    }
    let groups_specified = requested.iter().any(|r| matches!(r, Requested::Group(_)));
    let mut user = UserInfo {
        username: String::new(),
        uid: String::new(),
        groups: Vec::new(),
        extra: BTreeMap::new(),
    };
    for item in requested {
        let attrs = item.attributes(&requestor);
        if !rbac.allows(&attrs) {
            return Err(ApiError::forbidden(&attrs));
        }
        match item {
            Requested::User(n) => user.username.clone_from(n),
            Requested::ServiceAccount { namespace, name } => {
                user.username = format!("{SA_PREFIX}{namespace}:{name}");
                if !groups_specified {
                    user.groups = vec![
                        "system:serviceaccounts".to_owned(),
                        format!("system:serviceaccounts:{namespace}"),
                    ];
                }
            }
            Requested::Group(g) => user.groups.push(g.clone()),
            Requested::Extra { key, value } => {
                user.extra
                    .entry(key.clone())
                    .or_default()
                    .push(value.clone());
            }
            Requested::Uid(u) => user.uid.clone_from(u),
        }
    }
    if user.username == ANONYMOUS {
        if !user.groups.iter().any(|g| g == ALL_UNAUTHENTICATED) {
            user.groups.push(ALL_UNAUTHENTICATED.to_owned());
        }
    } else if !user
        .groups
        .iter()
        .any(|g| g == ALL_AUTHENTICATED || g == ALL_UNAUTHENTICATED)
    {
        user.groups.push(ALL_AUTHENTICATED.to_owned());
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const SA: &str = "system:serviceaccount:kube-oidc-authz:kube-oidc-authz";

    fn proxy() -> UserInfo {
        UserInfo::service_account(SA, "uid-1")
    }

    #[test]
    fn authenticates_only_the_exact_bearer_token() {
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[("authorization", "Bearer s3cret")], true),
            (&[("authorization", "bearer s3cret")], true),
            (&[("authorization", "Bearer s3cre")], false),
            (&[("authorization", "Bearer s3cret2")], false),
            (&[("authorization", "Basic s3cret")], false),
            (&[("authorization", "Bearer")], false),
            (&[("authorization", "Bearer ")], false),
            (&[], false),
            (
                &[
                    ("authorization", "Bearer s3cret"),
                    ("authorization", "Bearer s3cret"),
                ],
                false,
            ),
        ];
        for (h, ok) in cases {
            let got = authenticate(&headers(h), "s3cret", &proxy());
            assert_eq!(got.is_ok(), *ok, "{h:?}");
            if let Err(e) = got {
                assert_eq!(e.code, 401);
            }
        }
    }

    #[test]
    fn reads_impersonation_headers_like_the_apiserver() {
        let got = requested(&headers(&[
            ("impersonate-user", "banyan:alice@example.com"),
            ("impersonate-group", "banyan:a"),
            ("impersonate-group", "banyan:b,c"),
            ("impersonate-extra-Example.COM%2Fteam", "x"),
            ("impersonate-extra-example.com%2fteam", "y"),
            ("impersonate-uid", "42"),
        ]))
        .unwrap();
        assert_eq!(
            got,
            vec![
                Requested::User("banyan:alice@example.com".into()),
                Requested::Group("banyan:a".into()),
                Requested::Group("banyan:b,c".into()),
                Requested::Extra {
                    key: "example.com/team".into(),
                    value: "x".into()
                },
                Requested::Extra {
                    key: "example.com/team".into(),
                    value: "y".into()
                },
                Requested::Uid("42".into()),
            ]
        );
    }

    #[test]
    fn refuses_header_combinations_the_apiserver_cannot_use() {
        let cases: &[&[(&str, &str)]] = &[
            &[("impersonate-group", "system:masters")],
            &[("impersonate-uid", "1")],
            &[("impersonate-extra-scopes", "x")],
            &[("impersonate-user", "a"), ("impersonate-user", "b")],
            &[("impersonate-user", "a,b")],
        ];
        for h in cases {
            let err = requested(&headers(h)).unwrap_err();
            assert_eq!(err.code, 500, "{h:?}");
        }
    }

    #[test]
    fn service_account_usernames() {
        assert_eq!(
            split_service_account(SA),
            Some(("kube-oidc-authz", "kube-oidc-authz"))
        );
        assert_eq!(split_service_account("system:serviceaccount:ns"), None);
        assert_eq!(split_service_account("system:serviceaccount::x"), None);
        assert_eq!(split_service_account("alice"), None);
    }

    #[test]
    fn adds_system_authenticated_unless_a_system_group_is_given() {
        let rbac = Rbac::new(SA, None, Vec::new());
        let u = impersonate(
            proxy(),
            &requested(&headers(&[
                ("impersonate-user", "alice"),
                ("impersonate-group", "g"),
            ]))
            .unwrap(),
            &rbac,
        )
        .unwrap();
        assert_eq!(u.groups, vec!["g", ALL_AUTHENTICATED]);
        let u = impersonate(
            proxy(),
            &requested(&headers(&[("impersonate-user", ANONYMOUS)])).unwrap(),
            &rbac,
        )
        .unwrap();
        assert_eq!(u.groups, vec![ALL_UNAUTHENTICATED]);
        let u = impersonate(
            proxy(),
            &requested(&headers(&[
                ("impersonate-user", "bob"),
                ("impersonate-group", ALL_AUTHENTICATED),
            ]))
            .unwrap(),
            &rbac,
        )
        .unwrap();
        assert_eq!(u.groups, vec![ALL_AUTHENTICATED]);
    }

    #[test]
    fn only_the_proxy_may_impersonate() {
        let rbac = Rbac::new(SA, None, Vec::new());
        let other = UserInfo::service_account("system:serviceaccount:default:other", "2");
        let err = impersonate(
            other,
            &requested(&headers(&[("impersonate-user", "alice")])).unwrap(),
            &rbac,
        )
        .unwrap_err();
        assert_eq!(err.code, 403);
        assert_eq!(
            err.message,
            "users \"alice\" is forbidden: User \"system:serviceaccount:default:other\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
        );
    }

    /// With the extra keys the chart grants, an extra of any other key is
    /// refused as the apiserver refuses it: 403 naming the userextras
    /// resource.
    #[test]
    fn only_granted_extra_keys_may_be_impersonated() {
        let rbac = Rbac::new(SA, Some(&["example.com/tenant".to_owned()]), Vec::new());
        let allowed = impersonate(
            proxy(),
            &requested(&headers(&[
                ("impersonate-user", "alice"),
                ("impersonate-group", "dev"),
                ("impersonate-uid", "u-1"),
                ("impersonate-extra-example.com%2ftenant", "t1"),
            ]))
            .unwrap(),
            &rbac,
        )
        .unwrap();
        assert_eq!(allowed.extra["example.com/tenant"], ["t1"]);
        let err = impersonate(
            proxy(),
            &requested(&headers(&[
                ("impersonate-user", "alice"),
                ("impersonate-extra-example.com%2fother", "x"),
            ]))
            .unwrap(),
            &rbac,
        )
        .unwrap_err();
        assert_eq!(err.code, 403);
        assert!(
            err.message.contains("cannot impersonate resource \"userextras/example.com/other\" in API group \"authentication.k8s.io\""),
            "{}",
            err.message
        );
    }
}

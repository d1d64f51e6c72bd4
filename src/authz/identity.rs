//! Verified claims → Kubernetes identity, with the apiserver's semantics
//! for username, groups, uid, required claims and `email_verified`.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::ops::Deref;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use serde_json::{Map, Value};

use super::cel::{Failure, Mapped};
use super::config::IssuerConfig;
use super::error::DenyReason;
use crate::k8s::user_info::CREDENTIAL_ID_EXTRA;

/// Who the caller is, as the apiserver will see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub uid: Option<String>,
    /// Mapped groups; the apiserver adds `system:authenticated` itself.
    /// Shared between the identities that have the same list.
    pub groups: Groups,
    /// Extra key (decoded, lowercase) → values, sorted by key, keys
    /// unique. A vector, not a map: an identity has zero or one extra
    /// (the credential id), and a map's node would be most of the memory
    /// a cached identity takes.
    pub extra: Vec<(String, Vec<String>)>,
    /// The issuer that vouched for this identity: the configured issuer's
    /// own string, shared by all its identities.
    pub issuer: Arc<str>,
}

/// An identity's group list, immutable and cheap to clone: identities
/// mapped from the same list of groups share one allocation (see
/// [`Groups::interned`]).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Groups(Arc<[String]>);

/// As the list itself, so logs read as they did with a `Vec`.
impl std::fmt::Debug for Groups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Groups {
    /// The list, shared with any live identity that has the same one.
    /// The interner holds weak references only, and at most
    /// [`INTERNED_GROUP_LISTS`] of them: when it is full of live lists (an
    /// issuer minting a list per user) a new list is simply not shared.
    pub fn interned(groups: Vec<String>) -> Self {
        if groups.is_empty() {
            return Groups::default();
        }
        GroupInterner::global().intern(groups)
    }

    /// Copies the list out, for a caller that extends it.
    pub fn to_vec(&self) -> Vec<String> {
        self.0.to_vec()
    }
}

impl Deref for Groups {
    type Target = [String];
    fn deref(&self) -> &[String] {
        &self.0
    }
}

/// Not interned: for identities built elsewhere than [`map_claims`].
impl From<Vec<String>> for Groups {
    fn from(groups: Vec<String>) -> Self {
        Groups(groups.into())
    }
}

impl<S: AsRef<str>> PartialEq<[S]> for Groups {
    fn eq(&self, other: &[S]) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(a, b)| a == b.as_ref())
    }
}

impl<S: AsRef<str>, const N: usize> PartialEq<[S; N]> for Groups {
    fn eq(&self, other: &[S; N]) -> bool {
        *self == other[..]
    }
}

impl<S: AsRef<str>> PartialEq<Vec<S>> for Groups {
    fn eq(&self, other: &Vec<S>) -> bool {
        *self == other[..]
    }
}

/// Most distinct group lists the interner tracks at once.
pub const INTERNED_GROUP_LISTS: usize = 4096;

/// Live group lists by content hash. Weak references: a list no cached
/// identity holds any more is dropped, and its slot reused.
struct GroupInterner {
    hasher: RandomState,
    lists: Mutex<HashMap<u64, Vec<Weak<[String]>>>>,
    capacity: usize,
}

impl GroupInterner {
    fn global() -> &'static GroupInterner {
        static INTERNER: OnceLock<GroupInterner> = OnceLock::new();
        INTERNER.get_or_init(|| GroupInterner::new(INTERNED_GROUP_LISTS))
    }

    fn new(capacity: usize) -> Self {
        GroupInterner {
            hasher: RandomState::new(),
            lists: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    fn intern(&self, groups: Vec<String>) -> Groups {
        let hash = self.hasher.hash_one(&groups);
        // A poisoned lock only means another thread panicked mid-insert;
        // the map is still a valid map of weak references.
        let mut lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = lists
            .get(&hash)
            .into_iter()
            .flatten()
            .filter_map(Weak::upgrade)
            .find(|l| **l == *groups)
        {
            return Groups(found);
        }
        let list: Arc<[String]> = groups.into();
        if lists.len() >= self.capacity {
            lists.retain(|_, ls| {
                ls.retain(|l| l.strong_count() > 0);
                !ls.is_empty()
            });
            if lists.len() >= self.capacity {
                return Groups(list);
            }
        }
        let slot = lists.entry(hash).or_default();
        slot.retain(|l| l.strong_count() > 0);
        slot.push(Arc::downgrade(&list));
        Groups(list)
    }
}

/// Options of the mapping that do not depend on the issuer.
#[derive(Debug, Clone, Copy)]
pub struct MappingOptions {
    pub credential_id_extra: bool,
    pub refuse_system_identities: bool,
}

/// Maps the claims of a verified token to an identity.
///
/// Claims decode as the apiserver's JWT authenticator decodes them (Go's
/// `encoding/json` into typed values): a JSON `null` is the type's zero
/// value, so a `null` groups claim means no groups and a `null` string
/// claim means `""`; a claim that is absent is not the same as `null` where
/// the apiserver tells them apart (a configured uid claim must be present).
pub fn map_claims(
    issuer: &IssuerConfig,
    claims: &Map<String, Value>,
    opts: MappingOptions,
) -> Result<Identity, DenyReason> {
    for (claim, want) in &issuer.required_claims {
        match claims.get(claim) {
            Some(Value::String(got)) if got == want => {}
            Some(Value::Null) if want.is_empty() => {}
            _ => return Err(DenyReason::RequiredClaim),
        }
    }

    // CEL runs here only, on a cache miss: a cached identity is final.
    let cel = issuer.cel.as_deref();
    let scope = cel
        .filter(|c| c.reads_claims())
        .map(|c| c.bind_claims(claims));
    let mapped = match (cel, &scope) {
        (Some(c), Some(scope)) => {
            let mapped = c.map(scope).map_err(denied)?;
            c.validate_claims(scope).map_err(denied)?;
            mapped
        }
        _ => Mapped::default(),
    };

    let user = match mapped.username {
        Some(u) => u,
        None => claim_username(issuer, claims)?,
    };

    let mut groups = Vec::new();
    if let Some(g) = mapped.groups {
        groups = g;
    } else if let Some(mapping) = &issuer.groups {
        match claims.get(&mapping.claim) {
            None | Some(Value::Null) => {}
            Some(Value::String(g)) => groups.push(format!("{}{g}", mapping.prefix)),
            Some(Value::Array(list)) => {
                groups.reserve(list.len());
                for g in list {
                    match g {
                        Value::String(g) => groups.push(format!("{}{g}", mapping.prefix)),
                        // A `null` element of a `[]string` is "".
                        Value::Null => groups.push(mapping.prefix.clone()),
                        _ => return Err(DenyReason::GroupsClaim),
                    }
                }
            }
            Some(_) => return Err(DenyReason::GroupsClaim),
        }
    }

    let uid = match (mapped.uid, &issuer.uid_claim) {
        (Some(uid), _) => uid,
        (None, None) => None,
        // A configured uid claim must be present, as the apiserver requires
        // (`claim not present`); `null` or "" gives no uid.
        (None, Some(claim)) => match claims.get(claim) {
            None => return Err(DenyReason::UidClaim),
            Some(Value::Null) => None,
            Some(Value::String(u)) if u.is_empty() => None,
            Some(Value::String(u)) => Some(u.clone()),
            Some(_) => return Err(DenyReason::UidClaim),
        },
    };

    let mut extra = Vec::new();
    if opts.credential_id_extra
        && let Some(Value::String(jti)) = claims.get("jti")
        && !jti.is_empty()
    {
        extra.push((CREDENTIAL_ID_EXTRA.to_owned(), vec![format!("JTI={jti}")]));
    }
    if !mapped.extra.is_empty() {
        // Configured keys are unique and never under kubernetes.io, so they
        // cannot collide with the credential id.
        extra.extend(mapped.extra);
        extra.sort_by(|a, b| a.0.cmp(&b.0));
    }
    if let Some(c) = cel {
        c.validate_user(&user, uid.as_deref(), &groups, &extra)
            .map_err(denied)?;
    }

    let identity = Identity {
        user,
        uid,
        groups: Groups::interned(groups),
        extra,
        issuer: Arc::clone(&issuer.url),
    };
    if opts.refuse_system_identities && identity.claims_system_name() {
        return Err(DenyReason::SystemIdentity);
    }
    if !identity.is_header_safe() {
        return Err(DenyReason::InvalidIdentity);
    }
    // Expressions can build values larger than the token they read (think
    // `replace`); the identity travels as request headers, which Envoy caps
    // at 60 KiB in all.
    if cel.is_some() && identity.approx_size() > MAX_MAPPED_IDENTITY_BYTES {
        return Err(DenyReason::ClaimExpression);
    }
    Ok(identity)
}

/// Largest identity CEL mappings may produce, in the bytes
/// [`Identity::approx_size`] counts: twice the largest token, well inside
/// Envoy's header limit.
pub const MAX_MAPPED_IDENTITY_BYTES: usize = 2 * super::verify::MAX_TOKEN_BYTES;

fn claim_username(
    issuer: &IssuerConfig,
    claims: &Map<String, Value>,
) -> Result<String, DenyReason> {
    if issuer.username.claim == "email" {
        // A present `email_verified` must be the boolean true; absent is
        // accepted, as the apiserver does.
        match claims.get("email_verified") {
            None | Some(Value::Bool(true)) => {}
            // `null` decodes to false: not verified.
            Some(Value::Bool(false) | Value::Null) => return Err(DenyReason::EmailNotVerified),
            Some(_) => return Err(DenyReason::InvalidClaim),
        }
    }
    match claims.get(&issuer.username.claim) {
        Some(Value::String(u)) if !u.is_empty() => Ok(format!("{}{u}", issuer.username.prefix)),
        _ => Err(DenyReason::UsernameClaim),
    }
}

/// The denial for a failed expression. The field or the rule's configured
/// message is logged (never a claim value); the decision log carries the
/// reason code.
fn denied(f: Failure) -> DenyReason {
    match f {
        Failure::Mapping { field } => {
            tracing::debug!(field = %field, "claim mapping expression failed");
            DenyReason::ClaimExpression
        }
        Failure::Rule { message } => {
            tracing::debug!(rule = %message, "validation rule failed");
            DenyReason::ValidationRule
        }
    }
}

impl Identity {
    /// Whether the username or a group is in the `system:` namespace, which
    /// only the apiserver itself may hand out.
    pub fn claims_system_name(&self) -> bool {
        self.user.starts_with("system:") || self.groups.iter().any(|g| g.starts_with("system:"))
    }

    /// Whether every value can travel as an HTTP header value: no control
    /// characters (CR and LF above all), no leading or trailing blanks.
    pub fn is_header_safe(&self) -> bool {
        let ok =
            |v: &str| !v.bytes().any(|b| b < 0x20 || b == 0x7f) && v.trim_matches([' ', '\t']) == v;
        ok(&self.user)
            && self.uid.as_deref().is_none_or(ok)
            && self.groups.iter().all(|g| ok(g))
            && self.extra.iter().flat_map(|(_, vs)| vs).all(|v| ok(v))
    }

    /// The values of one extra key.
    pub fn extra_values(&self, key: &str) -> Option<&[String]> {
        self.extra
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, vs)| vs.as_slice())
    }

    /// Approximate bytes held, for cache accounting.
    pub fn approx_size(&self) -> usize {
        self.user.len()
            + self.uid.as_ref().map_or(0, String::len)
            + self.groups.iter().map(String::len).sum::<usize>()
            + self
                .extra
                .iter()
                .map(|(k, v)| k.len() + v.iter().map(String::len).sum::<usize>())
                .sum::<usize>()
            + self.issuer.len()
            + 128
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::authz::config::ClaimMapping;
    use crate::authz::verify::SigningAlg;

    fn issuer(username: (&str, &str), groups: Option<(&str, &str)>) -> IssuerConfig {
        IssuerConfig {
            url: "https://idp.example.com".into(),
            discovery_url: "https://idp.example.com".into(),
            audiences: vec!["kube".into()],
            ca_pem: None,
            signing_algs: vec![SigningAlg::RS256],
            username: ClaimMapping {
                claim: username.0.into(),
                prefix: username.1.into(),
            },
            groups: groups.map(|(c, p)| ClaimMapping {
                claim: c.into(),
                prefix: p.into(),
            }),
            uid_claim: None,
            required_claims: vec![],
            cel: None,
        }
    }

    const OPTS: MappingOptions = MappingOptions {
        credential_id_extra: true,
        refuse_system_identities: true,
    };

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn product_defaults_map_alice() {
        let iss = issuer(("email", "banyan:"), Some(("roles", "banyan:")));
        let id = map_claims(
            &iss,
            &claims(json!({"email": "alice@example.com", "email_verified": true,
                "roles": ["any-employee-personal-device"], "jti": "abc"})),
            OPTS,
        )
        .unwrap();
        assert_eq!(id.user, "banyan:alice@example.com");
        assert_eq!(id.groups, ["banyan:any-employee-personal-device"]);
        assert_eq!(
            id.extra_values(CREDENTIAL_ID_EXTRA).unwrap(),
            &vec!["JTI=abc".to_string()]
        );
    }

    #[test]
    fn identities_share_the_issuer_and_equal_group_lists() {
        let iss = issuer(("sub", ""), Some(("roles", "g:")));
        let map = |sub: &str, roles: Value| {
            map_claims(&iss, &claims(json!({"sub": sub, "roles": roles})), OPTS).unwrap()
        };
        let a = map("a", json!(["x", "y"]));
        let b = map("b", json!(["x", "y"]));
        let c = map("c", json!(["y", "x"]));
        assert!(Arc::ptr_eq(&a.groups.0, &b.groups.0));
        assert!(!Arc::ptr_eq(&a.groups.0, &c.groups.0));
        assert_eq!(c.groups, ["g:y", "g:x"]);
        assert!(Arc::ptr_eq(&a.issuer, &iss.url));
        assert!(Arc::ptr_eq(&b.issuer, &iss.url));
    }

    #[test]
    fn group_interner_is_bounded_and_forgets_dropped_lists() {
        let interner = GroupInterner::new(2);
        let list = |g: &str| vec![g.to_owned()];
        let a = interner.intern(list("a"));
        let b = interner.intern(list("b"));
        // Full of live lists: a third is not shared, nor remembered.
        let c1 = interner.intern(list("c"));
        let c2 = interner.intern(list("c"));
        assert!(!Arc::ptr_eq(&c1.0, &c2.0));
        assert_eq!(c1, c2);
        assert!(Arc::ptr_eq(&a.0, &interner.intern(list("a")).0));
        // Once a list is dropped, its slot is reused.
        drop(b);
        let d1 = interner.intern(list("d"));
        let d2 = interner.intern(list("d"));
        assert!(Arc::ptr_eq(&d1.0, &d2.0));
        let tracked = interner.lists.lock().unwrap().len();
        assert_eq!(tracked, 2);
    }

    #[test]
    fn table_of_mapping_rules() {
        type Case = (
            &'static str,
            (&'static str, &'static str),
            Value,
            Result<(&'static str, Vec<&'static str>), DenyReason>,
        );
        let cases: Vec<Case> = vec![
            (
                "email_verified missing is accepted",
                ("email", ""),
                json!({"email": "a@x", "roles": "r"}),
                Ok(("a@x", vec!["g:r"])),
            ),
            (
                "email_verified false",
                ("email", ""),
                json!({"email": "a@x", "email_verified": false}),
                Err(DenyReason::EmailNotVerified),
            ),
            (
                "email_verified string",
                ("email", ""),
                json!({"email": "a@x", "email_verified": "true"}),
                Err(DenyReason::InvalidClaim),
            ),
            (
                "email_verified ignored for sub",
                ("sub", "p#"),
                json!({"sub": "u1", "email_verified": false}),
                Ok(("p#u1", vec![])),
            ),
            (
                "groups as string",
                ("sub", ""),
                json!({"sub": "u", "roles": "one"}),
                Ok(("u", vec!["g:one"])),
            ),
            (
                "groups as array",
                ("sub", ""),
                json!({"sub": "u", "roles": ["a", "b"]}),
                Ok(("u", vec!["g:a", "g:b"])),
            ),
            (
                "groups missing",
                ("sub", ""),
                json!({"sub": "u"}),
                Ok(("u", vec![])),
            ),
            (
                "groups with a number",
                ("sub", ""),
                json!({"sub": "u", "roles": ["a", 1]}),
                Err(DenyReason::GroupsClaim),
            ),
            (
                "groups as object",
                ("sub", ""),
                json!({"sub": "u", "roles": {"a": 1}}),
                Err(DenyReason::GroupsClaim),
            ),
            (
                "username missing",
                ("email", ""),
                json!({"sub": "u"}),
                Err(DenyReason::UsernameClaim),
            ),
            (
                "username not a string",
                ("sub", ""),
                json!({"sub": 42}),
                Err(DenyReason::UsernameClaim),
            ),
            (
                "username empty",
                ("sub", ""),
                json!({"sub": ""}),
                Err(DenyReason::UsernameClaim),
            ),
            (
                "system user refused",
                ("sub", ""),
                json!({"sub": "system:admin"}),
                Err(DenyReason::SystemIdentity),
            ),
            (
                "system group behind a prefix is fine",
                ("sub", "x:"),
                json!({"sub": "u", "roles": ["system:masters"]}),
                Ok(("x:u", vec!["g:system:masters"])),
            ),
            (
                "header injection refused",
                ("sub", ""),
                json!({"sub": "u\r\nimpersonate-group: system:masters"}),
                Err(DenyReason::InvalidIdentity),
            ),
        ];
        for (name, username, c, want) in cases {
            let iss = issuer(username, Some(("roles", "g:")));
            let got = map_claims(&iss, &claims(c), OPTS);
            match (got, want) {
                (Ok(id), Ok((user, groups))) => {
                    assert_eq!(id.user, user, "{name}");
                    assert_eq!(id.groups, groups, "{name}");
                }
                (Err(e), Err(w)) => assert_eq!(e, w, "{name}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn system_group_with_empty_prefix_is_refused_unless_allowed() {
        let iss = issuer(("sub", ""), Some(("roles", "")));
        let c = claims(json!({"sub": "u", "roles": ["system:masters"]}));
        assert_eq!(map_claims(&iss, &c, OPTS), Err(DenyReason::SystemIdentity));
        let allow = MappingOptions {
            refuse_system_identities: false,
            ..OPTS
        };
        assert_eq!(
            map_claims(&iss, &c, allow).unwrap().groups,
            ["system:masters"]
        );
    }

    #[test]
    fn required_claims_must_be_equal_strings() {
        let mut iss = issuer(("sub", ""), None);
        iss.required_claims = vec![("hd".into(), "example.com".into())];
        let ok = claims(json!({"sub": "u", "hd": "example.com"}));
        assert!(map_claims(&iss, &ok, OPTS).is_ok());
        for bad in [
            json!({"sub": "u"}),
            json!({"sub": "u", "hd": "evil.com"}),
            json!({"sub": "u", "hd": ["example.com"]}),
        ] {
            assert_eq!(
                map_claims(&iss, &claims(bad), OPTS),
                Err(DenyReason::RequiredClaim)
            );
        }
    }

    #[test]
    fn uid_claim_and_credential_id_switch() {
        let mut iss = issuer(("sub", ""), None);
        iss.uid_claim = Some("oid".into());
        let c = claims(json!({"sub": "u", "oid": "1234", "jti": "j"}));
        let id = map_claims(
            &iss,
            &c,
            MappingOptions {
                credential_id_extra: false,
                ..OPTS
            },
        )
        .unwrap();
        assert_eq!(id.uid.as_deref(), Some("1234"));
        assert!(id.extra.is_empty());
        let bad = claims(json!({"sub": "u", "oid": 5}));
        assert_eq!(map_claims(&iss, &bad, OPTS), Err(DenyReason::UidClaim));
    }

    /// JSON `null` and absent claims, decoded as the apiserver's JWT
    /// authenticator decodes them (Go `encoding/json` into typed values).
    #[test]
    fn null_and_absent_claims_decode_as_the_apiserver_does() {
        let mut iss = issuer(("email", "banyan:"), Some(("roles", "banyan:")));
        iss.uid_claim = Some("oid".into());
        iss.required_claims = vec![("tenant".into(), "t1".into())];
        let base =
            json!({"email": "a@example.com", "roles": ["dev"], "oid": "o-1", "tenant": "t1"});
        let with = |k: &str, v: Value| {
            let mut c = claims(base.clone());
            c.insert(k.into(), v);
            c
        };
        let without = |k: &str| {
            let mut c = claims(base.clone());
            c.remove(k);
            c
        };
        type Row = (
            &'static str,
            Map<String, Value>,
            Result<(Vec<&'static str>, Option<&'static str>), DenyReason>,
        );
        let ok = |groups: Vec<&'static str>, uid: Option<&'static str>| Ok((groups, uid));
        let table: Vec<Row> = vec![
            (
                "everything present",
                claims(base.clone()),
                ok(vec!["banyan:dev"], Some("o-1")),
            ),
            (
                "null groups: no groups",
                with("roles", Value::Null),
                ok(vec![], Some("o-1")),
            ),
            (
                "absent groups: no groups",
                without("roles"),
                ok(vec![], Some("o-1")),
            ),
            (
                "null element: the prefix alone",
                with("roles", json!(["dev", null])),
                ok(vec!["banyan:dev", "banyan:"], Some("o-1")),
            ),
            (
                "number in groups",
                with("roles", json!(["dev", 1])),
                Err(DenyReason::GroupsClaim),
            ),
            (
                "null uid: no uid",
                with("oid", Value::Null),
                ok(vec!["banyan:dev"], None),
            ),
            (
                "empty uid: no uid",
                with("oid", json!("")),
                ok(vec!["banyan:dev"], None),
            ),
            (
                "absent uid claim fails the token",
                without("oid"),
                Err(DenyReason::UidClaim),
            ),
            (
                "numeric uid",
                with("oid", json!(7)),
                Err(DenyReason::UidClaim),
            ),
            (
                "null username",
                with("email", Value::Null),
                Err(DenyReason::UsernameClaim),
            ),
            (
                "null email_verified is not verified",
                with("email_verified", Value::Null),
                Err(DenyReason::EmailNotVerified),
            ),
            (
                "string email_verified",
                with("email_verified", json!("true")),
                Err(DenyReason::InvalidClaim),
            ),
            (
                "null required claim",
                with("tenant", Value::Null),
                Err(DenyReason::RequiredClaim),
            ),
            (
                "absent required claim",
                without("tenant"),
                Err(DenyReason::RequiredClaim),
            ),
        ];
        for (name, c, want) in table {
            let got = map_claims(&iss, &c, OPTS).map(|id| (id.groups.to_vec(), id.uid));
            let want = want.map(|(g, u)| {
                (
                    g.into_iter().map(String::from).collect::<Vec<_>>(),
                    u.map(String::from),
                )
            });
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn cel_mappings_run_through_map_claims() {
        let cfg = r#"
apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer: {url: "https://idp.example.com", audiences: [kube]}
  claimValidationRules:
  - expression: "claims.?email_verified.orValue(true) == true"
    message: email must be verified
  claimMappings:
    username: {expression: "'oidc:' + claims.email.split('@')[0]"}
    groups: {expression: "claims.groups.filter(g, g.startsWith('k8s-'))"}
    extra:
    - key: example.com/tenant
      valueExpression: "claims.tid"
    - key: example.com/padded
      valueExpression: "has(claims.pad) ? claims.pad.replace('', '0123456789') : ''"
  userValidationRules:
  - expression: "user.username != 'oidc:root' && user.groups.all(g, g != 'k8s-root')"
    message: no root
"#;
        let iss = &crate::authz::config::parse_authentication_config(cfg).unwrap()[0];
        let base = json!({"email": "alice@example.com", "groups": ["k8s-dev", "mail"],
            "tid": "t1", "jti": "j1"});
        let id = map_claims(iss, &claims(base.clone()), OPTS).unwrap();
        assert_eq!(id.user, "oidc:alice");
        assert_eq!(id.groups, ["k8s-dev"]);
        let keys: Vec<&str> = id.extra.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [CREDENTIAL_ID_EXTRA, "example.com/tenant"],
            "sorted, the credential id kept"
        );

        let with = |k: &str, v: Value| {
            let mut c = claims(base.clone());
            c.insert(k.into(), v);
            c
        };
        let table = [
            (
                "unverified email",
                with("email_verified", json!(false)),
                DenyReason::ValidationRule,
            ),
            (
                "root user",
                with("email", json!("root@example.com")),
                DenyReason::ValidationRule,
            ),
            (
                "root group",
                with("groups", json!(["k8s-root"])),
                DenyReason::ValidationRule,
            ),
            (
                "username expression errors",
                with("email", json!(5)),
                DenyReason::ClaimExpression,
            ),
            (
                "groups of the wrong type",
                with("groups", json!("k8s-a")),
                DenyReason::ClaimExpression,
            ),
            (
                "identity too large",
                with("pad", json!("x".repeat(4000))),
                DenyReason::ClaimExpression,
            ),
        ];
        for (name, c, want) in table {
            assert_eq!(map_claims(iss, &c, OPTS), Err(want), "{name}");
        }
    }
}

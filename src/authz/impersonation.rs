//! End-user impersonation (`kubectl --as`, `--as-group`, `--as-uid`), off
//! unless `--allow-impersonation`: the caller is authenticated as usual,
//! then every value it asks to act as is authorised with a
//! SubjectAccessReview *as the caller*, with the attributes the
//! apiserver's impersonation filter checks; the requested identity is
//! forwarded instead of the caller's, with the caller named in
//! [`ORIGINAL_USER_EXTRAS`].
//!
//! Bounded: at most `--impersonation-max-values` header lines (431 past
//! it), each distinct value reviewed once, the reviews of one request run
//! concurrently under one deadline, at most [`MAX_CONCURRENT_REVIEWS`] in
//! flight, allow and deny answers cached apart. A review that fails or
//! does not answer in time fails the request closed (503).

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::apiserver::ApiserverClient;
use super::config::ImpersonationConfig;
use super::error::{Denial, DenyReason};
use super::identity::Identity;
use super::metrics::{AuthzMetrics, ResultLabels};
use super::token::InboundRequest;
use crate::k8s::Status;
use crate::k8s::access_review::{
    ResourceAttributes, SUBJECT_ACCESS_REVIEWS_PATH, Subject, forbidden, review_body, review_status,
};
use crate::k8s::impersonation::{ImpersonationRequest, ParseError, Requested, parse};
use crate::k8s::user_info::ALL_AUTHENTICATED;
pub use crate::k8s::user_info::{
    ORIGINAL_EXTRA_EXTRA, ORIGINAL_GROUPS_EXTRA, ORIGINAL_UID_EXTRA, ORIGINAL_USER_DOMAIN,
    ORIGINAL_USER_EXTRA, ORIGINAL_USER_EXTRAS,
};

/// Reviews in flight at once, over all requests.
pub const MAX_CONCURRENT_REVIEWS: usize = 64;

/// The prefix of the identities the apiserver reserves for itself.
const SYSTEM_PREFIX: &str = "system:";

/// A cached review answer.
#[derive(Debug, Clone)]
struct Answer {
    allowed: bool,
    /// The authorizer's reason, for the forbidden message.
    reason: Arc<str>,
}

/// Keeps allowing answers for `allow` and denying ones for `deny`.
struct AnswerTtl {
    allow: Duration,
    deny: Duration,
}

impl moka::Expiry<[u8; 32], Answer> for AnswerTtl {
    fn expire_after_create(&self, _: &[u8; 32], value: &Answer, _: Instant) -> Option<Duration> {
        Some(if value.allowed { self.allow } else { self.deny })
    }
}

/// One review's outcome for one request.
enum Reviewed {
    Answer(Answer),
    Failed,
}

/// What an authorised impersonation becomes.
#[derive(Debug, Clone)]
pub struct ActAs {
    /// The identity forwarded upstream.
    pub identity: Arc<Identity>,
    /// Whether every review answer came from the cache.
    pub reviews_cached: bool,
}

/// Authorises and builds impersonated identities.
pub struct Impersonator {
    apiserver: ApiserverClient,
    max_values: usize,
    review_timeout: Duration,
    refuse_system: bool,
    answers: Cache<[u8; 32], Answer>,
    slots: Semaphore,
    metrics: AuthzMetrics,
}

impl Impersonator {
    /// `refuse_system` (`--refuse-system-identities`) refuses `system:`
    /// users and groups before any review.
    pub fn new(
        cfg: &ImpersonationConfig,
        refuse_system: bool,
        apiserver: ApiserverClient,
        metrics: AuthzMetrics,
    ) -> Self {
        Impersonator {
            apiserver,
            max_values: cfg.max_values,
            review_timeout: cfg.review_timeout,
            refuse_system,
            answers: Cache::builder()
                .max_capacity(cfg.cache_max_entries)
                .expire_after(AnswerTtl {
                    allow: cfg.allow_ttl,
                    deny: cfg.deny_ttl,
                })
                .build(),
            slots: Semaphore::new(MAX_CONCURRENT_REVIEWS),
            metrics,
        }
    }

    /// The identity `caller` acts as for this request: `None` when the
    /// request asks for nothing (an empty `Impersonate-User` alone, say),
    /// then the caller is forwarded as itself.
    pub async fn act_as(
        &self,
        caller: &Identity,
        inbound: InboundRequest<'_>,
    ) -> Result<Option<ActAs>, Denial> {
        let request = match parse(inbound.headers(), inbound.headers_joined(), self.max_values) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(None),
            Err(e) => return Err(parse_denial(&e)),
        };
        self.refuse_reserved(&request)?;
        let subject = SubjectOf::new(caller);
        let requested = request.requested();
        let reviews_cached = self.authorise(&subject, &requested).await?;
        Ok(Some(ActAs {
            identity: Arc::new(outbound(&request, &subject)),
            reviews_cached,
        }))
    }

    /// `system:` users and groups (with `--refuse-system-identities`) and
    /// the proxy's own extra keys are refused before anything is reviewed.
    fn refuse_reserved(&self, request: &ImpersonationRequest) -> Result<(), Denial> {
        let system = self.refuse_system
            && std::iter::once(&request.user)
                .chain(&request.groups)
                .any(|n| n.starts_with(SYSTEM_PREFIX));
        let reserved_key = request
            .extra
            .iter()
            .any(|(k, _)| k.starts_with(ORIGINAL_USER_DOMAIN));
        if system || reserved_key {
            let what = if system {
                "system: users and groups"
            } else {
                "extras under originaluser.kube-oidc-authz.io/"
            };
            return Err(Denial::with_status(
                DenyReason::ImpersonationReserved,
                Status::forbidden(format!(
                    "impersonating {what} is not allowed through this proxy"
                )),
            ));
        }
        Ok(())
    }

    /// Reviews every value (cached answers first, the rest concurrently
    /// under one deadline); the first denied one in the apiserver's order
    /// is the answer, else a failed one fails closed. Returns whether
    /// every answer was cached.
    async fn authorise(
        &self,
        subject: &SubjectOf<'_>,
        requested: &[Requested],
    ) -> Result<bool, Denial> {
        let attributes: Vec<ResourceAttributes> =
            requested.iter().map(Requested::attributes).collect();
        let keys: Vec<[u8; 32]> = attributes.iter().map(|a| subject.key(a)).collect();
        let mut answers: Vec<Option<Reviewed>> = keys
            .iter()
            .map(|k| self.answers.get(k).map(Reviewed::Answer))
            .collect();
        let misses: Vec<usize> = (0..answers.len())
            .filter(|i| answers[*i].is_none())
            .collect();
        self.count_cache("hit", answers.len() - misses.len());
        self.count_cache("miss", misses.len());
        if !misses.is_empty() {
            let reviews = futures::future::join_all(
                misses.iter().map(|i| self.review(subject, &attributes[*i])),
            );
            let fetched = tokio::time::timeout(self.review_timeout, reviews)
                .await
                .unwrap_or_else(|_| {
                    tracing::warn!(
                        timeout_ms = self.review_timeout.as_millis() as u64,
                        "impersonation reviews did not answer in time"
                    );
                    misses.iter().map(|_| Reviewed::Failed).collect()
                });
            for (i, reviewed) in misses.iter().zip(fetched) {
                if let Reviewed::Answer(a) = &reviewed {
                    self.answers.insert(keys[*i], a.clone());
                }
                answers[*i] = Some(reviewed);
            }
        }
        let mut failed = false;
        for (i, answer) in answers.iter().enumerate() {
            match answer {
                Some(Reviewed::Answer(a)) if a.allowed => {}
                Some(Reviewed::Answer(a)) => {
                    return Err(Denial::with_status(
                        DenyReason::ImpersonationDenied,
                        forbidden(subject.identity.user.as_str(), &attributes[i], &a.reason),
                    ));
                }
                Some(Reviewed::Failed) | None => failed = true,
            }
        }
        if failed {
            return Err(Denial::with_status(
                DenyReason::ImpersonationUnavailable,
                Status::service_unavailable(
                    "the authentication service cannot authorize impersonation right now",
                ),
            ));
        }
        Ok(misses.is_empty())
    }

    /// One SubjectAccessReview.
    async fn review(&self, subject: &SubjectOf<'_>, attributes: &ResourceAttributes) -> Reviewed {
        // Waiting for a slot counts against the request's one deadline.
        let Ok(_slot) = self.slots.acquire().await else {
            return Reviewed::Failed;
        };
        let body = review_body(subject.subject(), attributes);
        let result = self
            .apiserver
            .create(SUBJECT_ACCESS_REVIEWS_PATH, &body)
            .await;
        let reviewed = match result {
            Ok(created) => match review_status(&created) {
                Some(s) => Reviewed::Answer(Answer {
                    allowed: s.allowed && !s.denied,
                    reason: Arc::from(bounded(&s.reason)),
                }),
                None => {
                    tracing::warn!("subject access review answered without a status");
                    Reviewed::Failed
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "subject access review failed");
                Reviewed::Failed
            }
        };
        let result = match &reviewed {
            Reviewed::Answer(a) if a.allowed => "allowed",
            Reviewed::Answer(_) => "denied",
            Reviewed::Failed => "error",
        };
        self.metrics
            .impersonation_reviews
            .get_or_create(&ResultLabels { result })
            .inc();
        reviewed
    }

    fn count_cache(&self, result: &'static str, n: usize) {
        if n > 0 {
            self.metrics
                .impersonation_review_cache
                .get_or_create(&ResultLabels { result })
                .inc_by(n as u64);
        }
    }
}

/// Bytes of an authorizer's reason kept for a forbidden message: it is
/// cached and sent to the client, so it must not be as large as the
/// apiserver's answer may be.
const MAX_REASON_BYTES: usize = 1024;

/// `reason` cut to [`MAX_REASON_BYTES`] at a character boundary.
fn bounded(reason: &str) -> &str {
    if reason.len() <= MAX_REASON_BYTES {
        return reason;
    }
    let mut end = MAX_REASON_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// The denial for impersonation headers that cannot be used.
fn parse_denial(e: &ParseError) -> Denial {
    match e {
        ParseError::TooMany { .. } => Denial::with_status(
            DenyReason::ImpersonationTooManyValues,
            Status::failure(431, Status::reason_for(431), e.to_string()),
        ),
        ParseError::NoUser(_) => {
            // As the apiserver's responsewriters.InternalError writes it.
            let mut status = Status::failure(
                500,
                "InternalError",
                format!("Internal error occurred: {e}"),
            );
            status
                .details
                .insert("causes".into(), json!([{ "message": e.to_string() }]));
            Denial::with_status(DenyReason::ImpersonationWithoutUser, status)
        }
        ParseError::Joined(_) | ParseError::EmptyExtraKey => Denial::with_status(
            DenyReason::ImpersonationMalformed,
            Status::bad_request(e.to_string()),
        ),
    }
}

/// The caller as the apiserver sees it (its mapped groups and
/// `system:authenticated`), the subject of every review, and the prefix
/// of its cache keys.
struct SubjectOf<'a> {
    identity: &'a Identity,
    groups: Vec<String>,
    digest: Sha256,
}

impl<'a> SubjectOf<'a> {
    fn new(identity: &'a Identity) -> Self {
        let mut groups = identity.groups.to_vec();
        if !groups.iter().any(|g| g == ALL_AUTHENTICATED) {
            groups.push(ALL_AUTHENTICATED.to_owned());
        }
        let mut digest = Sha256::new();
        // Length-prefixed fields: no two identities hash alike by shifting
        // text from one field into the next.
        let mut field = |s: &str| {
            digest.update((s.len() as u64).to_be_bytes());
            digest.update(s.as_bytes());
        };
        field(&identity.user);
        field(identity.uid.as_deref().unwrap_or(""));
        field(&groups.len().to_string());
        for g in &groups {
            field(g);
        }
        for (k, vs) in &identity.extra {
            field(k);
            field(&vs.len().to_string());
            for v in vs {
                field(v);
            }
        }
        SubjectOf {
            identity,
            groups,
            digest,
        }
    }

    fn subject(&self) -> Subject<'_> {
        Subject {
            user: &self.identity.user,
            uid: self.identity.uid.as_deref(),
            groups: &self.groups,
            extra: &self.identity.extra,
        }
    }

    /// The cache key of a review of `attributes` for this subject.
    fn key(&self, a: &ResourceAttributes) -> [u8; 32] {
        let mut d = self.digest.clone();
        for s in [
            &a.verb,
            &a.group,
            &a.version,
            &a.resource,
            &a.subresource,
            &a.namespace,
            &a.name,
        ] {
            d.update((s.len() as u64).to_be_bytes());
            d.update(s.as_bytes());
        }
        d.finalize().into()
    }
}

/// The identity forwarded for an authorised request: what it asked for,
/// plus the original user's extras. Groups and extras stay as asked (the
/// apiserver adds `system:authenticated`, and a service account's groups
/// when none are asked for, itself).
fn outbound(request: &ImpersonationRequest, caller: &SubjectOf<'_>) -> Identity {
    let original = caller.identity;
    let mut extra = request.extra.clone();
    extra.push((ORIGINAL_USER_EXTRA.to_owned(), vec![original.user.clone()]));
    if let Some(uid) = &original.uid {
        extra.push((ORIGINAL_UID_EXTRA.to_owned(), vec![uid.clone()]));
    }
    extra.push((ORIGINAL_GROUPS_EXTRA.to_owned(), caller.groups.clone()));
    if !original.extra.is_empty() {
        let map: std::collections::BTreeMap<&str, &Vec<String>> = original
            .extra
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .collect();
        extra.push((
            ORIGINAL_EXTRA_EXTRA.to_owned(),
            vec![json!(map).to_string()],
        ));
    }
    extra.sort_by(|a, b| a.0.cmp(&b.0));
    Identity {
        user: request.user.clone(),
        uid: request.uid.clone(),
        groups: request.groups.clone().into(),
        extra,
        issuer: original.issuer.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Identity {
        Identity {
            user: "banyan:alice@example.com".into(),
            uid: Some("u-1".into()),
            groups: vec!["banyan:sre".into()].into(),
            extra: vec![(
                "authentication.kubernetes.io/credential-id".into(),
                vec!["JTI=j1".into()],
            )],
            issuer: "https://idp.example.com".into(),
        }
    }

    #[test]
    fn outbound_identity_is_the_requested_one_with_the_original_user_in_extras() {
        let caller = alice();
        let subject = SubjectOf::new(&caller);
        let request = ImpersonationRequest {
            user: "bob".into(),
            uid: Some("u-bob".into()),
            groups: vec!["dev".into()],
            extra: vec![("scopes".into(), vec!["view".into()])],
        };
        let got = outbound(&request, &subject);
        assert_eq!(got.user, "bob");
        assert_eq!(got.uid.as_deref(), Some("u-bob"));
        assert_eq!(got.groups, ["dev"]);
        assert_eq!(&*got.issuer, "https://idp.example.com");
        let extra: Vec<(&str, Vec<&str>)> = got
            .extra
            .iter()
            .map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            extra,
            vec![
                (
                    ORIGINAL_EXTRA_EXTRA,
                    vec![r#"{"authentication.kubernetes.io/credential-id":["JTI=j1"]}"#]
                ),
                (
                    ORIGINAL_GROUPS_EXTRA,
                    vec!["banyan:sre", "system:authenticated"]
                ),
                (ORIGINAL_UID_EXTRA, vec!["u-1"]),
                (ORIGINAL_USER_EXTRA, vec!["banyan:alice@example.com"]),
                ("scopes", vec!["view"]),
            ]
        );
        // Without a uid or extras of its own, the caller's extras say less.
        let plain = Identity {
            uid: None,
            extra: Vec::new(),
            ..alice()
        };
        let got = outbound(&request, &SubjectOf::new(&plain));
        let keys: Vec<&str> = got.extra.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, [ORIGINAL_GROUPS_EXTRA, ORIGINAL_USER_EXTRA, "scopes"]);
    }

    #[test]
    fn cache_keys_tell_callers_and_attributes_apart() {
        let a = alice();
        let b = Identity {
            groups: vec!["banyan:sre".into(), "banyan:admins".into()].into(),
            ..alice()
        };
        // Text moved between fields does not collide.
        let c = Identity {
            user: "banyan:alice@example.co".into(),
            uid: Some("mu-1".into()),
            ..alice()
        };
        let bob = Requested::User("bob".into()).attributes();
        let carol = Requested::User("carol".into()).attributes();
        let group_bob = Requested::Group("bob".into()).attributes();
        let sa = SubjectOf::new(&a);
        let keys = [
            sa.key(&bob),
            sa.key(&carol),
            sa.key(&group_bob),
            SubjectOf::new(&b).key(&bob),
            SubjectOf::new(&c).key(&bob),
        ];
        for i in 0..keys.len() {
            for j in i + 1..keys.len() {
                assert_ne!(keys[i], keys[j], "{i} {j}");
            }
        }
        assert_eq!(SubjectOf::new(&alice()).key(&bob), keys[0]);
    }

    #[test]
    fn authorizer_reasons_are_bounded() {
        assert_eq!(bounded("RBAC: no"), "RBAC: no");
        let long = "é".repeat(MAX_REASON_BYTES);
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_REASON_BYTES && cut.len() > MAX_REASON_BYTES - 2);
        assert!(long.starts_with(cut));
    }

    #[test]
    fn parse_failures_answer_with_the_right_status() {
        for (e, code, reason, message) in [
            (
                ParseError::TooMany { count: 65, max: 64 },
                431,
                "Unknown",
                "65 impersonation header values, more than the 64 allowed",
            ),
            (
                ParseError::NoUser("{Group  g    }".into()),
                500,
                "InternalError",
                "Internal error occurred: requested [{Group  g    }] without impersonating a user",
            ),
            (
                ParseError::EmptyExtraKey,
                400,
                "BadRequest",
                "impersonate-extra- header without a key",
            ),
        ] {
            let d = parse_denial(&e);
            assert_eq!(d.reason.http_status(), code);
            let s = d.status.unwrap();
            assert_eq!(
                (s.code, s.reason.as_str(), s.message.as_str()),
                (code, reason, message)
            );
        }
    }
}

//! Prometheus metrics of the authz service. Labels are few and fixed:
//! never a user, a group or a token.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    pub decision: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

/// Handles to every metric; cheap to clone.
#[derive(Clone)]
pub struct AuthzMetrics {
    pub decisions: Family<DecisionLabels, Counter>,
    pub check_duration: Histogram,
    pub cache_lookups: Family<ResultLabels, Counter>,
    pub jwks_refreshes: Family<ResultLabels, Counter>,
    pub passthrough_reviews: Family<ResultLabels, Counter>,
    pub passthrough_refusals: Family<ReasonLabels, Counter>,
    pub impersonation_reviews: Family<ResultLabels, Counter>,
    pub impersonation_review_cache: Family<ResultLabels, Counter>,
}

impl AuthzMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = AuthzMetrics {
            decisions: Family::default(),
            // 5 µs .. ~20 ms
            check_duration: Histogram::new(exponential_buckets(0.000_005, 2.5, 10)),
            cache_lookups: Family::default(),
            jwks_refreshes: Family::default(),
            passthrough_reviews: Family::default(),
            passthrough_refusals: Family::default(),
            impersonation_reviews: Family::default(),
            impersonation_review_cache: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("kube_oidc_authz");
        r.register(
            "decisions",
            "Check decisions by outcome and fixed reason code",
            m.decisions.clone(),
        );
        r.register(
            "check_duration_seconds",
            "Time to decide one Check request",
            m.check_duration.clone(),
        );
        r.register(
            "cache_lookups",
            "Decision cache lookups by result (hit, miss)",
            m.cache_lookups.clone(),
        );
        r.register(
            "jwks_refreshes",
            "Issuer key refreshes triggered by an unknown key id, by result (fetched, failed, shared: another caller's fetch changed the keys, skipped: rate-limited beyond the wait bound)",
            m.jwks_refreshes.clone(),
        );
        r.register(
            "passthrough_reviews",
            "TokenReviews sent for token passthrough, by result (authenticated, rejected, error)",
            m.passthrough_reviews.clone(),
        );
        r.register(
            "passthrough_refusals",
            "Passthrough tokens refused without a TokenReview, by reason (not_jwt, audience, saturated)",
            m.passthrough_refusals.clone(),
        );
        r.register(
            "impersonation_reviews",
            "SubjectAccessReviews sent for end-user impersonation, by result (allowed, denied, error)",
            m.impersonation_reviews.clone(),
        );
        r.register(
            "impersonation_review_cache",
            "Impersonation review answers looked up in the cache, by result (hit, miss)",
            m.impersonation_review_cache.clone(),
        );
        m
    }
}

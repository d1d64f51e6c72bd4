//! The decision for one `CheckRequest`: refuse forged identity, find the
//! token, verify it (or reuse a cached verification), map it, fall back to
//! passthrough, and answer. No gRPC here: [`super::service`] is the edge.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use envoy_types::ext_authz::v3::CheckRequestExt;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use ipnet::IpNet;

use super::apiserver::ApiserverClient;
use super::cache::{CachedIdentity, DecisionCache, token_hash};
use super::client_ip::client_ip;
use super::config::{Config, IssuerConfig};
use super::decision::{Allowed, Decision};
use super::error::{Denial, DenyReason};
use super::identity::{Identity, MappingOptions, map_claims};
use super::impersonation::Impersonator;
use super::jwks::{IssuerKeys, UnknownKidRefresh};
use super::metrics::{AuthzMetrics, ResultLabels};
use super::passthrough::TokenReviewer;
use super::response;
use super::token::{InboundRequest, bearer_token};
use super::upstream_token::UpstreamToken;
use super::verify::{self, check_registered_claims};
use crate::clock::{SharedClock, SystemClock};

/// Extra key for the caller's address, as kube-oidc-proxy names it.
pub const CLIENT_IP_EXTRA: &str = "remote-client-ip";

/// One trusted issuer with its keys.
pub struct Issuer {
    pub config: IssuerConfig,
    pub keys: Arc<IssuerKeys>,
}

/// Makes decisions. Shared by every request.
pub struct Authorizer {
    /// Keyed by the exact issuer URL a token's `iss` must equal.
    issuers: HashMap<String, Issuer>,
    mapping: MappingOptions,
    cache: DecisionCache,
    upstream: UpstreamToken,
    client_ip_extra: bool,
    static_extras: Vec<(String, String)>,
    trusted_proxies: Vec<IpNet>,
    passthrough: Option<TokenReviewer>,
    impersonator: Option<Impersonator>,
    unknown_kid_max_wait: std::time::Duration,
    metrics: AuthzMetrics,
    clock: SharedClock,
}

// === impl Authorizer: set-up ===

impl Authorizer {
    /// An authorizer on the system clock. Every problem with the issuers'
    /// or passthrough's set-up is returned together.
    pub fn new(
        config: &Config,
        upstream: UpstreamToken,
        metrics: AuthzMetrics,
    ) -> Result<Self, Vec<String>> {
        Self::with_clock(config, upstream, metrics, SystemClock::shared())
    }

    /// An authorizer that judges token lifetimes, and ages its cache, by
    /// `clock`.
    pub fn with_clock(
        config: &Config,
        upstream: UpstreamToken,
        metrics: AuthzMetrics,
        clock: SharedClock,
    ) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();
        let mut issuers = HashMap::new();
        for cfg in &config.issuers {
            match IssuerKeys::new(cfg, config.jwks_min_refresh_interval) {
                Ok(keys) => {
                    issuers.insert(
                        cfg.url.to_string(),
                        Issuer {
                            config: cfg.clone(),
                            keys: Arc::new(keys),
                        },
                    );
                }
                Err(e) => errors.push(format!("issuer {}: {e}", cfg.url)),
            }
        }
        let apiserver = if config.passthrough.is_some() || config.impersonation.is_some() {
            match ApiserverClient::new(
                &config.apiserver.url,
                &config.apiserver.ca_file,
                upstream.clone(),
            ) {
                Ok(c) => Some(c),
                Err(e) => {
                    errors.push(e);
                    None
                }
            }
        } else {
            None
        };
        let passthrough = match (&config.passthrough, &apiserver) {
            (Some(p), Some(api)) => Some(TokenReviewer::new(p, api.clone(), metrics.clone())),
            _ => None,
        };
        let impersonator = match (&config.impersonation, apiserver) {
            (Some(i), Some(api)) => Some(Impersonator::new(
                i,
                config.refuse_system_identities,
                api,
                metrics.clone(),
            )),
            _ => None,
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Authorizer {
            issuers,
            mapping: MappingOptions {
                credential_id_extra: config.credential_id_extra,
                refuse_system_identities: config.refuse_system_identities,
            },
            cache: DecisionCache::new(config.cache_max_entries, clock.clone()),
            upstream,
            client_ip_extra: config.client_ip_extra,
            static_extras: config
                .static_extras
                .iter()
                .flat_map(|(k, vs)| vs.iter().map(move |v| (k.clone(), v.clone())))
                .collect(),
            trusted_proxies: config.trusted_proxies.clone(),
            passthrough,
            impersonator,
            unknown_kid_max_wait: config.jwks_unknown_kid_max_wait,
            metrics,
            clock,
        })
    }

    /// The issuers, for readiness and background refresh.
    pub fn issuers(&self) -> impl Iterator<Item = &Issuer> {
        self.issuers.values()
    }

    /// Whether every issuer's keys are loaded.
    pub fn is_ready(&self) -> bool {
        self.issuers.values().all(|i| i.keys.is_loaded())
    }

    pub fn cache(&self) -> &DecisionCache {
        &self.cache
    }
}

// === impl Authorizer: deciding ===

impl Authorizer {
    /// Verifies a bearer token and maps it to an identity, using the cache.
    /// The flag is whether the identity came from the cache.
    pub async fn authenticate(&self, token: &str) -> Result<(Arc<Identity>, bool), DenyReason> {
        let key = token_hash(token);
        if let Some(identity) = self.cache.get(&key) {
            self.count_cache_lookup("hit");
            return Ok((identity, true));
        }
        self.count_cache_lookup("miss");

        let parsed = verify::parse(token)?;
        let issuer = parsed.select_issuer(&self.issuers)?;
        if !issuer.config.signing_algs.contains(&parsed.alg) {
            return Err(DenyReason::AlgorithmRefused);
        }
        if !issuer.keys.is_loaded() {
            issuer.keys.refresh_rate_limited().await;
            if !issuer.keys.is_loaded() {
                return Err(DenyReason::KeysUnavailable);
            }
        }
        let seen = issuer.keys.current();
        match parsed.verify_signature(seen.iter()) {
            Err(DenyReason::UnknownKey) => {
                // Perhaps the issuer rotated its keys: one refresh, shared
                // by concurrent callers and rate-limited against floods,
                // waited for (briefly) when the window is closed.
                let refreshed = issuer
                    .keys
                    .refresh_for_unknown_kid(&seen, self.unknown_kid_max_wait)
                    .await;
                let result = match refreshed {
                    UnknownKidRefresh::Fetched(true) => "fetched",
                    UnknownKidRefresh::Fetched(false) => "failed",
                    UnknownKidRefresh::Shared => "shared",
                    UnknownKidRefresh::Skipped => "skipped",
                };
                self.metrics
                    .jwks_refreshes
                    .get_or_create(&ResultLabels { result })
                    .inc();
                parsed.verify_signature(issuer.keys.current().iter())?;
            }
            other => other?,
        }
        let now = self.clock.now_unix();
        let exp = check_registered_claims(&parsed.claims, &issuer.config.audiences, now)?;
        let identity = Arc::new(map_claims(&issuer.config, &parsed.claims, self.mapping)?);
        self.cache.insert(
            key,
            CachedIdentity {
                identity: Arc::clone(&identity),
                exp,
            },
        );
        Ok((identity, false))
    }

    fn count_cache_lookup(&self, result: &'static str) {
        self.metrics
            .cache_lookups
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    async fn outcome(&self, inbound: InboundRequest<'_>) -> Result<Allowed, Denial> {
        // Without the opt-in, a client's own impersonation is refused
        // before anything else is looked at.
        let impersonating = inbound.has_impersonation_header();
        if impersonating && self.impersonator.is_none() {
            return Err(DenyReason::ImpersonationRefused.into());
        }
        let authorization = inbound.header("authorization");
        let token = bearer_token(authorization.as_deref())?;
        match self.authenticate(token).await {
            Ok((identity, cached)) => match &self.impersonator {
                Some(impersonator) if impersonating => {
                    match impersonator.act_as(&identity, inbound).await? {
                        Some(act_as) => Ok(Allowed::ActAs {
                            caller: identity,
                            identity: act_as.identity,
                            cached,
                            reviews_cached: act_as.reviews_cached,
                        }),
                        None => Ok(Allowed::Impersonate { identity, cached }),
                    }
                }
                _ => Ok(Allowed::Impersonate { identity, cached }),
            },
            Err(reason) => match &self.passthrough {
                Some(reviewer) if reason.http_status() == 401 => {
                    let user = reviewer.review(token).await.map_err(|e| {
                        // A token the apiserver does not know either keeps
                        // the reason it failed as one of ours.
                        if e == DenyReason::PassthroughRejected {
                            reason
                        } else {
                            e
                        }
                    })?;
                    // A passthrough token goes upstream as itself: what it
                    // asks to act as is the apiserver's to check, and this
                    // proxy does not forward it.
                    if impersonating {
                        return Err(DenyReason::ImpersonationRefused.into());
                    }
                    Ok(Allowed::Passthrough { user })
                }
                _ => Err(reason.into()),
            },
        }
    }

    /// Decides one request. Nothing is logged or counted yet: that is
    /// [`Decision::report`].
    pub async fn decide<'r>(&self, req: &'r CheckRequest) -> Decision<'r> {
        let inbound = InboundRequest::new(req);
        let (outcome, detail) = match self.outcome(inbound).await {
            Ok(allowed) => (Ok(allowed), None),
            Err(denial) => (Err(denial.reason), denial.status),
        };
        let peer: Option<IpAddr> = req.get_client_address().and_then(|a| a.parse().ok());
        let forwarded_for = inbound.header("x-forwarded-for");
        Decision {
            outcome,
            detail,
            source_ip: client_ip(peer, forwarded_for.as_deref(), &self.trusted_proxies),
            forwarded_for,
            method: inbound.method(),
            path: inbound.path(),
        }
    }

    /// Envoy's answer to a decision: header mutations and metadata that
    /// impersonate the identity with the proxy's own credential, the
    /// caller's token untouched for passthrough, or a denied `Status`.
    pub fn respond(&self, decision: &Decision<'_>) -> CheckResponse {
        match &decision.outcome {
            Ok(Allowed::Impersonate { identity, .. } | Allowed::ActAs { identity, .. }) => {
                let ip_text = match (self.client_ip_extra, decision.source_ip) {
                    (true, Some(ip)) => Some(ip.to_string()),
                    _ => None,
                };
                let mut extras: Vec<(&str, &str)> = self
                    .static_extras
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                if let Some(ip) = &ip_text {
                    extras.push((CLIENT_IP_EXTRA, ip));
                }
                response::allow(identity, &self.upstream.current(), &extras)
            }
            Ok(Allowed::Passthrough { user }) => response::allow_passthrough(user),
            Err(reason) => match &decision.detail {
                Some(status) => response::deny_with(*reason, status),
                None => response::deny(*reason),
            },
        }
    }

    /// Decides one request, reports the decision and returns Envoy's
    /// answer. Never fails: every problem is a denied `CheckResponse`.
    pub async fn check(&self, req: &CheckRequest) -> CheckResponse {
        let started = std::time::Instant::now();
        let decision = self.decide(req).await;
        let response = self.respond(&decision);
        decision.report(&self.metrics, started.elapsed());
        response
    }
}

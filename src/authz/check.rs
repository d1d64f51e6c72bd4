//! The decision for one `CheckRequest`: refuse forged identity, find the
//! token, verify it (or reuse a cached verification), map it, and answer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use envoy_types::ext_authz::v3::CheckRequestExt;
use envoy_types::pb::envoy::service::auth::v3::authorization_server::Authorization;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use ipnet::IpNet;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::cache::{CachedIdentity, DecisionCache, token_hash};
use super::client_ip::client_ip;
use super::config::{Config, IssuerConfig};
use super::error::DenyReason;
use super::identity::{Identity, MappingOptions, map_claims};
use super::jwks::IssuerKeys;
use super::metrics::{AuthzMetrics, DecisionLabels, ResultLabels};
use super::passthrough::TokenReviewer;
use super::response;
use super::token::{InboundRequest, bearer_token};
use super::upstream_token::UpstreamToken;
use super::verify::{self, check_registered_claims};
use crate::clock::{SharedClock, SystemClock};
use crate::telemetry::{self, TraceHeaders};

/// Extra key for the caller's address, as kube-oidc-proxy names it.
pub const CLIENT_IP_EXTRA: &str = "remote-client-ip";

/// One trusted issuer with its keys.
pub struct Issuer {
    pub config: IssuerConfig,
    pub keys: Arc<IssuerKeys>,
}

/// Makes decisions. Shared by every request.
pub struct Authorizer {
    issuers: HashMap<String, Issuer>,
    mapping: MappingOptions,
    cache: DecisionCache,
    upstream: UpstreamToken,
    client_ip_extra: bool,
    static_extras: Vec<(String, String)>,
    trusted_proxies: Vec<IpNet>,
    passthrough: Option<TokenReviewer>,
    metrics: AuthzMetrics,
    clock: SharedClock,
}

/// What an allowed request becomes.
#[derive(Debug, Clone)]
pub enum Allowed {
    Impersonate {
        identity: Arc<Identity>,
        cached: bool,
    },
    Passthrough {
        user: String,
    },
}

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
                        cfg.url.clone(),
                        Issuer {
                            config: cfg.clone(),
                            keys: Arc::new(keys),
                        },
                    );
                }
                Err(e) => errors.push(format!("issuer {}: {e}", cfg.url)),
            }
        }
        let passthrough = match &config.passthrough {
            Some(p) => match TokenReviewer::new(p, upstream.clone()) {
                Ok(r) => Some(r),
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
            None => None,
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

    /// Verifies a bearer token and maps it to an identity, using the cache.
    pub async fn authenticate(&self, token: &str) -> Result<(Arc<Identity>, bool), DenyReason> {
        let key = token_hash(token);
        if let Some(identity) = self.cache.get(&key) {
            self.metrics
                .cache_lookups
                .get_or_create(&ResultLabels { result: "hit" })
                .inc();
            return Ok((identity, true));
        }
        self.metrics
            .cache_lookups
            .get_or_create(&ResultLabels { result: "miss" })
            .inc();

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
        match parsed.verify_signature(issuer.keys.current().iter()) {
            Err(DenyReason::UnknownKey) => {
                // Perhaps the issuer rotated its keys: one refresh, shared
                // by concurrent callers and rate-limited against floods.
                let refreshed = issuer.keys.refresh_rate_limited().await;
                self.metrics
                    .jwks_refreshes
                    .get_or_create(&ResultLabels {
                        result: if refreshed { "fetched" } else { "skipped" },
                    })
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

    async fn decide(&self, inbound: InboundRequest<'_>) -> Result<Allowed, DenyReason> {
        if inbound.has_impersonation_header() {
            return Err(DenyReason::ImpersonationRefused);
        }
        let authorization = inbound.header("authorization");
        let token = bearer_token(authorization.as_deref())?;
        match self.authenticate(token).await {
            Ok((identity, cached)) => Ok(Allowed::Impersonate { identity, cached }),
            Err(reason) => match &self.passthrough {
                Some(reviewer) if reason.http_status() == 401 => {
                    let user = reviewer.review(token).await.map_err(|e| {
                        if e == DenyReason::PassthroughRejected {
                            reason
                        } else {
                            e
                        }
                    })?;
                    Ok(Allowed::Passthrough { user })
                }
                _ => Err(reason),
            },
        }
    }

    /// Decides one request and returns Envoy's answer. Never fails: every
    /// problem is a denied `CheckResponse`.
    pub async fn check(&self, req: &CheckRequest) -> CheckResponse {
        let started = std::time::Instant::now();
        let inbound = InboundRequest::new(req);
        let outcome = self.decide(inbound).await;

        let peer: Option<IpAddr> = req.get_client_address().and_then(|a| a.parse().ok());
        let xff = inbound.header("x-forwarded-for");
        let source_ip = client_ip(peer, xff.as_deref(), &self.trusted_proxies);

        let (resp, decision, reason) = match &outcome {
            Ok(Allowed::Impersonate { identity, cached }) => {
                let ip_text = source_ip.map(|ip| ip.to_string());
                let mut extras: Vec<(&str, &str)> = self
                    .static_extras
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                if self.client_ip_extra
                    && let Some(ip) = &ip_text
                {
                    extras.push((CLIENT_IP_EXTRA, ip));
                }
                let upstream = self.upstream.current();
                tracing::info!(
                    target: "kube_oidc_authz::decision",
                    decision = "allow",
                    reason = "ok",
                    user = %identity.user,
                    groups = ?identity.groups,
                    uid = identity.uid.as_deref().unwrap_or(""),
                    issuer = %identity.issuer,
                    cached = *cached,
                    source_ip = ip_text.as_deref().unwrap_or(""),
                    forwarded_for = xff.as_deref().unwrap_or(""),
                    method = inbound.method(),
                    path = inbound.path(),
                );
                (response::allow(identity, &upstream, &extras), "allow", "ok")
            }
            Ok(Allowed::Passthrough { user }) => {
                tracing::info!(
                    target: "kube_oidc_authz::decision",
                    decision = "allow",
                    reason = "passthrough",
                    user = %user,
                    source_ip = source_ip.map(|i| i.to_string()).unwrap_or_default(),
                    method = inbound.method(),
                    path = inbound.path(),
                );
                (response::allow_passthrough(user), "allow", "passthrough")
            }
            Err(reason) => {
                tracing::info!(
                    target: "kube_oidc_authz::decision",
                    decision = "deny",
                    reason = reason.code(),
                    status = reason.http_status(),
                    source_ip = source_ip.map(|i| i.to_string()).unwrap_or_default(),
                    forwarded_for = xff.as_deref().unwrap_or(""),
                    method = inbound.method(),
                    path = inbound.path(),
                );
                (response::deny(*reason), "deny", reason.code())
            }
        };
        let span = tracing::Span::current();
        span.record("decision", decision);
        span.record("reason", reason);
        self.metrics
            .decisions
            .get_or_create(&DecisionLabels { decision, reason })
            .inc();
        self.metrics
            .check_duration
            .observe(started.elapsed().as_secs_f64());
        resp
    }
}

/// The caller's trace context: from the Check call's own gRPC metadata
/// (Envoy's tracer sets it on the ext_authz call), else from the checked
/// HTTP request's headers (a client's `traceparent`, when Envoy's
/// `allowed_headers` let it through).
fn trace_headers(request: &Request<CheckRequest>) -> TraceHeaders {
    let inbound = InboundRequest::new(request.get_ref());
    let lookup = |name: &str| {
        request
            .metadata()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| inbound.header(name).map(|v| v.into_owned()))
    };
    TraceHeaders {
        traceparent: lookup("traceparent"),
        tracestate: lookup("tracestate"),
    }
}

/// The tonic service for `envoy.service.auth.v3.Authorization`.
#[derive(Clone)]
pub struct CheckService(pub Arc<Authorizer>);

#[tonic::async_trait]
impl Authorization for CheckService {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        // Only when spans leave the process: the log layer would otherwise
        // format the span's fields on every request for nothing.
        let span = if telemetry::traces_exported() {
            let span = tracing::info_span!(
                "envoy.service.auth.v3.Authorization/Check",
                otel.kind = "server",
                rpc.system = "grpc",
                rpc.service = "envoy.service.auth.v3.Authorization",
                rpc.method = "Check",
                decision = tracing::field::Empty,
                reason = tracing::field::Empty,
            );
            telemetry::set_remote_parent(&span, &trace_headers(&request));
            span
        } else {
            tracing::Span::none()
        };
        // A policy outcome is always a CheckResponse, never a gRPC error:
        // Envoy treats errors per `failure_mode_allow`, which is for outages.
        let response = self.0.check(request.get_ref()).instrument(span).await;
        Ok(Response::new(response))
    }
}

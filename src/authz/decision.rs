//! One request's decision as a value: what was decided (allow with an
//! identity, allow by passthrough, or deny with a reason), about which
//! request. It writes the one decision log line and labels the metrics,
//! each exactly once, from the same fields.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::error::DenyReason;
use super::identity::Identity;
use super::metrics::{AuthzMetrics, DecisionLabels};

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
    /// End-user impersonation: `caller` (authenticated from its token)
    /// acts as `identity`, which is what goes upstream.
    ActAs {
        caller: Arc<Identity>,
        identity: Arc<Identity>,
        /// Whether the caller's token verification came from the cache.
        cached: bool,
        /// Whether every impersonation review answer came from the cache.
        reviews_cached: bool,
    },
}

/// The decision for one `CheckRequest` and the request facts it is
/// logged with. Borrows from the request it describes.
#[derive(Debug)]
pub struct Decision<'r> {
    pub outcome: Result<Allowed, DenyReason>,
    /// The `Status` a denial answers with when its reason's fixed body
    /// would say too little (the apiserver's forbidden message, say).
    pub detail: Option<crate::k8s::Status>,
    /// The caller's address (see [`super::client_ip`]).
    pub source_ip: Option<IpAddr>,
    pub forwarded_for: Option<Cow<'r, str>>,
    pub method: &'r str,
    pub path: &'r str,
}

/// Bytes of a client-controlled field (path, X-Forwarded-For) that a
/// decision line holds at most; longer values are cut and marked with
/// [`TRUNCATED`], so a client cannot make log lines as large as its
/// request.
pub const LOGGED_FIELD_MAX_BYTES: usize = 1024;

/// Bytes of the request method a decision line holds at most.
const LOGGED_METHOD_MAX_BYTES: usize = 32;

/// Appended to a logged field that was cut.
pub const TRUNCATED: &str = "...[truncated]";

/// `value` cut to at most `max` bytes (at a character boundary) and marked,
/// or whole when it fits.
fn truncated(value: &str, max: usize) -> Cow<'_, str> {
    if value.len() <= max {
        return Cow::Borrowed(value);
    }
    let mut end = max;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{TRUNCATED}", &value[..end]))
}

/// `decision` label of an allowed request.
pub const ALLOW: &str = "allow";
/// `decision` label of a denied request.
pub const DENY: &str = "deny";

impl Decision<'_> {
    /// `allow` or `deny`.
    pub fn decision(&self) -> &'static str {
        match self.outcome {
            Ok(_) => ALLOW,
            Err(_) => DENY,
        }
    }

    /// The fixed reason code: `ok`, `passthrough`, or the deny reason's.
    pub fn reason(&self) -> &'static str {
        match &self.outcome {
            Ok(Allowed::Impersonate { .. }) => "ok",
            Ok(Allowed::Passthrough { .. }) => "passthrough",
            Ok(Allowed::ActAs { .. }) => "impersonated",
            Err(reason) => reason.code(),
        }
    }

    /// The HTTP status Envoy answers a denied request with.
    pub fn status(&self) -> Option<u16> {
        match (&self.outcome, &self.detail) {
            (Ok(_), _) => None,
            (Err(_), Some(status)) => Some(status.code),
            (Err(r), None) => Some(r.http_status()),
        }
    }

    /// The labels of the `decisions` counter.
    pub fn labels(&self) -> DecisionLabels {
        DecisionLabels {
            decision: self.decision(),
            reason: self.reason(),
        }
    }

    /// Logs, labels the current span and counts the decision; `elapsed`
    /// is the time it took to decide.
    pub fn report(&self, metrics: &AuthzMetrics, elapsed: Duration) {
        self.log();
        let span = tracing::Span::current();
        span.record("decision", self.decision());
        span.record("reason", self.reason());
        metrics.decisions.get_or_create(&self.labels()).inc();
        metrics.check_duration.observe(elapsed.as_secs_f64());
    }

    /// Writes the decision line (target `kube_oidc_authz::decision`).
    /// Fields absent from an outcome are left out of the line, not
    /// written empty: an impersonation names the identity, a passthrough
    /// only the user the apiserver reported, a denial its status. With
    /// end-user impersonation, `user`, `groups` and `uid` are the outbound
    /// identity and `original_*` the authenticated caller, as
    /// kube-oidc-proxy's `AuSuccess` line shows both. Never the token,
    /// never the claims. What the client controls (method, path,
    /// X-Forwarded-For, the requested identity in a denial's message) is
    /// cut to a fixed length.
    pub fn log(&self) {
        let (identity, cached, user) = match &self.outcome {
            Ok(
                Allowed::Impersonate { identity, cached }
                | Allowed::ActAs {
                    identity, cached, ..
                },
            ) => (Some(identity.as_ref()), Some(*cached), Some(&identity.user)),
            Ok(Allowed::Passthrough { user }) => (None, None, Some(user)),
            Err(_) => (None, None, None),
        };
        let (original, reviews_cached) = match &self.outcome {
            Ok(Allowed::ActAs {
                caller,
                reviews_cached,
                ..
            }) => (Some(caller.as_ref()), Some(*reviews_cached)),
            _ => (None, None),
        };
        let message = self
            .detail
            .as_ref()
            .map(|s| truncated(&s.message, LOGGED_FIELD_MAX_BYTES));
        // The passthrough line has never carried X-Forwarded-For.
        let forwarded_for = match self.outcome {
            Ok(Allowed::Passthrough { .. }) => None,
            _ => Some(truncated(
                self.forwarded_for.as_deref().unwrap_or(""),
                LOGGED_FIELD_MAX_BYTES,
            )),
        };
        let source_ip = self.source_ip.map(|ip| ip.to_string()).unwrap_or_default();
        tracing::info!(
            target: "kube_oidc_authz::decision",
            decision = self.decision(),
            reason = self.reason(),
            status = self.status(),
            user = user.map(String::as_str),
            groups = identity.map(|i| tracing::field::debug(&i.groups)),
            uid = identity.map(|i| i.uid.as_deref().unwrap_or("")),
            issuer = identity.map(|i| &*i.issuer),
            cached,
            original_user = original.map(|i| i.user.as_str()),
            original_groups = original.map(|i| tracing::field::debug(&i.groups)),
            original_uid = original.map(|i| i.uid.as_deref().unwrap_or("")),
            reviews_cached,
            message = message.as_deref(),
            source_ip = source_ip.as_str(),
            forwarded_for = forwarded_for.as_deref(),
            method = truncated(self.method, LOGGED_METHOD_MAX_BYTES).as_ref(),
            path = truncated(self.path, LOGGED_FIELD_MAX_BYTES).as_ref(),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Mutex;

    use serde_json::{Value, json};

    use super::*;

    fn alice() -> Arc<Identity> {
        Arc::new(Identity {
            user: "banyan:alice@example.com".into(),
            uid: None,
            groups: vec!["banyan:a".into(), "banyan:b".into()].into(),
            extra: Vec::new(),
            issuer: "https://idp.example.com".into(),
        })
    }

    fn decision(outcome: Result<Allowed, DenyReason>) -> Decision<'static> {
        Decision {
            outcome,
            detail: None,
            source_ip: "203.0.113.7".parse().ok(),
            forwarded_for: Some(Cow::Borrowed("198.51.100.1")),
            method: "GET",
            path: "/api/v1/pods",
        }
    }

    #[test]
    fn labels_and_status_per_outcome() {
        let cases = [
            (
                Ok(Allowed::Impersonate {
                    identity: alice(),
                    cached: true,
                }),
                ("allow", "ok", None),
            ),
            (
                Ok(Allowed::Passthrough { user: "sa".into() }),
                ("allow", "passthrough", None),
            ),
            (Err(DenyReason::Expired), ("deny", "expired", Some(401))),
            (
                Err(DenyReason::ImpersonationRefused),
                ("deny", "impersonation_refused", Some(403)),
            ),
            (
                Err(DenyReason::KeysUnavailable),
                ("deny", "keys_unavailable", Some(503)),
            ),
        ];
        for (outcome, (d, r, status)) in cases {
            let got = decision(outcome);
            assert_eq!((got.decision(), got.reason(), got.status()), (d, r, status));
            assert_eq!(
                got.labels(),
                DecisionLabels {
                    decision: d,
                    reason: r
                }
            );
        }
    }

    /// Collects what a JSON subscriber writes, as the service's own
    /// `--log-format json` does.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(d: &Decision<'_>) -> Vec<Value> {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || d.log());
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The line's fields, without the formatter's own (time, level, target).
    fn fields(line: &Value) -> Value {
        let mut map = line.as_object().unwrap().clone();
        for k in ["timestamp", "level", "target"] {
            map.remove(k);
        }
        Value::Object(map)
    }

    #[test]
    fn each_outcome_logs_one_line_with_its_fields() {
        let cases = [
            (
                Ok(Allowed::Impersonate {
                    identity: alice(),
                    cached: false,
                }),
                json!({
                    "decision": "allow", "reason": "ok",
                    "user": "banyan:alice@example.com",
                    "groups": "[\"banyan:a\", \"banyan:b\"]",
                    "uid": "", "issuer": "https://idp.example.com", "cached": false,
                    "source_ip": "203.0.113.7", "forwarded_for": "198.51.100.1",
                    "method": "GET", "path": "/api/v1/pods",
                }),
            ),
            (
                Ok(Allowed::Passthrough {
                    user: "system:serviceaccount:ci:deployer".into(),
                }),
                json!({
                    "decision": "allow", "reason": "passthrough",
                    "user": "system:serviceaccount:ci:deployer",
                    "source_ip": "203.0.113.7",
                    "method": "GET", "path": "/api/v1/pods",
                }),
            ),
            (
                Ok(Allowed::ActAs {
                    caller: alice(),
                    identity: Arc::new(Identity {
                        user: "banyan:bob@example.com".into(),
                        uid: Some("bob-uid".into()),
                        groups: vec!["banyan:readers".into()].into(),
                        extra: Vec::new(),
                        issuer: "https://idp.example.com".into(),
                    }),
                    cached: true,
                    reviews_cached: false,
                }),
                json!({
                    "decision": "allow", "reason": "impersonated",
                    "user": "banyan:bob@example.com",
                    "groups": "[\"banyan:readers\"]",
                    "uid": "bob-uid", "issuer": "https://idp.example.com", "cached": true,
                    "original_user": "banyan:alice@example.com",
                    "original_groups": "[\"banyan:a\", \"banyan:b\"]",
                    "original_uid": "", "reviews_cached": false,
                    "source_ip": "203.0.113.7", "forwarded_for": "198.51.100.1",
                    "method": "GET", "path": "/api/v1/pods",
                }),
            ),
            (
                Err(DenyReason::AudienceMismatch),
                json!({
                    "decision": "deny", "reason": "audience_mismatch", "status": 401,
                    "source_ip": "203.0.113.7", "forwarded_for": "198.51.100.1",
                    "method": "GET", "path": "/api/v1/pods",
                }),
            ),
        ];
        for (outcome, want) in cases {
            let lines = logged(&decision(outcome));
            assert_eq!(lines.len(), 1, "{lines:?}");
            assert_eq!(lines[0]["target"], "kube_oidc_authz::decision");
            assert_eq!(lines[0]["level"], "INFO");
            assert_eq!(fields(&lines[0]), want);
        }
    }

    #[test]
    fn a_denial_with_its_own_status_answers_and_logs_it() {
        let mut d = decision(Err(DenyReason::ImpersonationDenied));
        d.detail = Some(crate::k8s::Status::failure(
            431,
            "Unknown",
            "65 impersonation header values, more than the 64 allowed",
        ));
        assert_eq!(d.status(), Some(431));
        let line = &logged(&d)[0];
        assert_eq!(line["status"], 431);
        assert_eq!(
            line["message"],
            "65 impersonation header values, more than the 64 allowed"
        );
    }

    #[test]
    fn unknown_source_and_no_forwarded_for_log_as_empty_strings() {
        let mut d = decision(Err(DenyReason::MissingToken));
        d.source_ip = None;
        d.forwarded_for = None;
        let line = &logged(&d)[0];
        assert_eq!(line["source_ip"], "");
        assert_eq!(line["forwarded_for"], "");
    }

    #[test]
    fn client_controlled_fields_are_logged_truncated() {
        let path = format!("/api/v1/{}", "p".repeat(100 * 1024));
        let xff = format!("{}203.0.113.9", "1.2.3.4, ".repeat(10 * 1024));
        let mut d = decision(Err(DenyReason::MissingToken));
        d.path = &path;
        d.forwarded_for = Some(Cow::Borrowed(&xff));
        d.method = "GETGETGETGETGETGETGETGETGETGETGETGETGETGETGETGETGETGETGETGETGETGETGETGET";
        let line = &logged(&d)[0];
        for (field, full) in [("path", path.as_str()), ("forwarded_for", xff.as_str())] {
            let got = line[field].as_str().unwrap();
            assert!(got.len() < 1100, "{field}: {} bytes logged", got.len());
            let kept = got.strip_suffix("...[truncated]").unwrap();
            assert_eq!(kept, &full[..LOGGED_FIELD_MAX_BYTES], "{field}");
        }
        assert!(line["method"].as_str().unwrap().ends_with("...[truncated]"));
        // Short values stay whole.
        let short = &logged(&decision(Err(DenyReason::MissingToken)))[0];
        assert_eq!(short["path"], "/api/v1/pods");
    }
}

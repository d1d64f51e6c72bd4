//! The `meta/v1` `Status` object the apiserver answers errors with; kubectl
//! prints its `message` and keys its behaviour on `reason` and `code`
//! (a 401 with `reason: Unauthorized` makes it say "You must be logged in
//! to the server").

use serde::Serialize;
use serde_json::{Map, Value};

/// A failure `Status`. [`Status::to_json`] writes it as the apiserver does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The HTTP status code, repeated in the body.
    pub code: u16,
    /// A `StatusReason` such as `Unauthorized`, `Forbidden`, `BadRequest`.
    pub reason: String,
    /// A human-readable description.
    pub message: String,
    /// `details` (name, group, kind, ...); omitted when empty.
    pub details: Map<String, Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Wire<'a> {
    kind: &'static str,
    api_version: &'static str,
    metadata: Map<String, Value>,
    status: &'static str,
    message: &'a str,
    reason: &'a str,
    #[serde(skip_serializing_if = "Map::is_empty")]
    details: &'a Map<String, Value>,
    code: u16,
}

impl Status {
    /// A failure with `code`, `reason` and `message` and no details.
    pub fn failure(code: u16, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Status {
            code,
            reason: reason.into(),
            message: message.into(),
            details: Map::new(),
        }
    }

    /// `401 Unauthorized`, with the message the apiserver's authentication
    /// filter writes.
    pub fn unauthorized() -> Self {
        Status::failure(401, "Unauthorized", "Unauthorized")
    }

    /// `403 Forbidden` with `message`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Status::failure(403, "Forbidden", message)
    }

    /// `400 BadRequest` with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Status::failure(400, "BadRequest", message)
    }

    /// `503 ServiceUnavailable` with `message`.
    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Status::failure(503, "ServiceUnavailable", message)
    }

    /// The `reason` the apiserver uses for an HTTP status code, as
    /// `apierrors.NewGenericServerResponse` maps them.
    pub fn reason_for(code: u16) -> &'static str {
        match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            406 => "NotAcceptable",
            409 => "Conflict",
            410 => "Expired",
            413 => "RequestEntityTooLarge",
            415 => "UnsupportedMediaType",
            422 => "Invalid",
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "Unknown",
        }
    }

    /// The body, as JSON.
    pub fn to_json(&self) -> String {
        // Serializing strings and maps of JSON values cannot fail.
        serde_json::to_string(&self.wire()).unwrap_or_default()
    }

    /// The body, as a JSON value.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self.wire()).unwrap_or(Value::Null)
    }

    fn wire(&self) -> Wire<'_> {
        Wire {
            kind: "Status",
            api_version: "v1",
            metadata: Map::new(),
            status: "Failure",
            message: &self.message,
            reason: &self.reason,
            details: &self.details,
            code: self.code,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn bodies_are_what_the_apiserver_writes() {
        let cases = [
            (
                Status::unauthorized(),
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": "Unauthorized", "reason": "Unauthorized", "code": 401}),
            ),
            (
                Status::forbidden("impersonation is not allowed"),
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": "impersonation is not allowed", "reason": "Forbidden", "code": 403}),
            ),
            (
                Status {
                    details: json!({"name": "db", "kind": "secrets"})
                        .as_object()
                        .cloned()
                        .unwrap(),
                    ..Status::forbidden("no")
                },
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": "no", "reason": "Forbidden", "code": 403,
                       "details": {"name": "db", "kind": "secrets"}}),
            ),
        ];
        for (status, want) in cases {
            let got: Value = serde_json::from_str(&status.to_json()).unwrap();
            assert_eq!(got, want);
            assert_eq!(status.to_value(), want);
        }
    }

    #[test]
    fn reasons_follow_the_status_code() {
        for (code, reason) in [
            (400, "BadRequest"),
            (401, "Unauthorized"),
            (403, "Forbidden"),
            (404, "NotFound"),
            (405, "MethodNotAllowed"),
            (413, "RequestEntityTooLarge"),
            (415, "UnsupportedMediaType"),
            (429, "TooManyRequests"),
            (503, "ServiceUnavailable"),
            (418, "Unknown"),
        ] {
            assert_eq!(Status::reason_for(code), reason, "{code}");
        }
    }
}

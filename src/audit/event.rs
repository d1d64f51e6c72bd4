//! Kubernetes audit events (`audit.k8s.io/v1`), as the apiserver's audit
//! webhook backend posts them and as the forwarder ships them.
//!
//! Only the fields of the `Event` schema are kept; anything else a sender
//! adds (`v1beta1`'s `timestamp` and `metadata`) is dropped, which is exactly
//! the `v1beta1` → `v1` conversion.

use std::collections::BTreeMap;

use crate::k8s::UserInfo;
use serde::{Deserialize, Serialize};

/// The API version every forwarded event list carries.
pub const API_VERSION_V1: &str = "audit.k8s.io/v1";
/// The older version still accepted on input.
pub const API_VERSION_V1BETA1: &str = "audit.k8s.io/v1beta1";

/// One audit event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(default)]
    pub level: String,
    #[serde(rename = "auditID", default)]
    pub audit_id: String,
    #[serde(default)]
    pub stage: String,
    #[serde(rename = "requestURI", default)]
    pub request_uri: String,
    #[serde(default)]
    pub verb: String,
    #[serde(default)]
    pub user: UserInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impersonated_user: Option<UserInfo>,
    #[serde(rename = "sourceIPs", default, skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_ref: Option<ObjectReference>,
    /// A `meta.k8s.io/v1` `Status`, forwarded as received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_status: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_object: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_object: Option<serde_json::Value>,
    #[serde(default)]
    pub request_received_timestamp: String,
    #[serde(default)]
    pub stage_timestamp: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The object a resource request addressed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subresource: String,
}

const LEVELS: [&str; 4] = ["None", "Metadata", "Request", "RequestResponse"];
const STAGES: [&str; 4] = [
    "RequestReceived",
    "ResponseStarted",
    "ResponseComplete",
    "Panic",
];

impl Event {
    /// Checks the fields every apiserver sets. The message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.audit_id.is_empty() {
            return Err("auditID is missing".into());
        }
        if !LEVELS.contains(&self.level.as_str()) {
            return Err(format!("level {:?} is not one of {LEVELS:?}", self.level));
        }
        if !STAGES.contains(&self.stage.as_str()) {
            return Err(format!("stage {:?} is not one of {STAGES:?}", self.stage));
        }
        if self.stage_timestamp.is_empty() {
            return Err("stageTimestamp is missing".into());
        }
        Ok(())
    }
}

/// An `EventList` as received, before its version is checked.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventListIn {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub items: Vec<Event>,
}

/// Only the type fields of an `EventList`, to explain why a body whose
/// items do not parse was refused.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeMeta {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub api_version: String,
}

/// Formats a point in time as a Kubernetes `MicroTime`
/// (RFC 3339, UTC, microseconds).
pub fn micro_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    t.format(&format).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_time_is_utc_with_microseconds() {
        let t = time::macros::datetime!(2024-03-05 06:07:08.123456789 +02:00);
        assert_eq!(micro_time(t), "2024-03-05T04:07:08.123456Z");
    }

    #[test]
    fn v1beta1_fields_are_dropped_and_the_rest_round_trips() {
        let raw = r#"{"level":"Metadata","auditID":"a","stage":"ResponseComplete",
            "requestURI":"/api/v1/pods","verb":"list","user":{"username":"u","groups":["g"]},
            "sourceIPs":["10.0.0.1"],"objectRef":{"resource":"pods","apiVersion":"v1"},
            "responseStatus":{"metadata":{},"code":200},
            "requestReceivedTimestamp":"2024-01-01T00:00:00.000000Z",
            "stageTimestamp":"2024-01-01T00:00:00.000001Z",
            "timestamp":"2024-01-01T00:00:00Z","metadata":{"creationTimestamp":null}}"#;
        let ev: Event = serde_json::from_str(raw).unwrap();
        ev.validate().unwrap();
        let out = serde_json::to_value(&ev).unwrap();
        assert!(out.get("timestamp").is_none());
        assert!(out.get("metadata").is_none());
        assert_eq!(out["objectRef"]["resource"], "pods");
        assert_eq!(out["responseStatus"]["code"], 200);
        assert_eq!(out["sourceIPs"][0], "10.0.0.1");
    }

    #[test]
    fn validation_names_the_field() {
        let mut ev: Event = serde_json::from_str(
            r#"{"level":"Metadata","auditID":"a","stage":"ResponseComplete","stageTimestamp":"x"}"#,
        )
        .unwrap();
        assert!(ev.validate().is_ok());
        ev.stage = "Done".into();
        assert!(ev.validate().unwrap_err().contains("stage"));
        ev.stage = "Panic".into();
        ev.audit_id.clear();
        assert!(ev.validate().unwrap_err().contains("auditID"));
    }
}

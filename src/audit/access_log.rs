//! Turning one Envoy `HttpAccessLogEntry` into the audit event the
//! apiserver would have recorded for that request: pure, so the table tests
//! live here and the gRPC service in [`super::als`] only feeds it.
//!
//! The identity comes from the authz service's ext_authz dynamic metadata
//! ([`crate::metadata`]);
//! the verb and `objectRef` from method and path, resolved as the
//! apiserver does ([`crate::k8s::request_info`]).

use std::collections::BTreeMap;
use std::net::IpAddr;

use envoy_types::pb::envoy::config::core::v3::{RequestMethod, address};
use envoy_types::pb::envoy::data::accesslog::v3::{
    AccessLogCommon, HttpAccessLogEntry, HttpRequestProperties,
};

use super::event::{Event, ObjectReference, micro_time};
use crate::k8s::UserInfo;
use crate::k8s::request_info;
use crate::k8s::user_info::{
    ORIGINAL_EXTRA_EXTRA, ORIGINAL_GROUPS_EXTRA, ORIGINAL_UID_EXTRA, ORIGINAL_USER_DOMAIN,
    ORIGINAL_USER_EXTRA,
};
use crate::metadata::{self, IdentityMetadata};

/// Annotation naming where an event came from.
pub const SOURCE_ANNOTATION: &str = "audit.kube-oidc-authz.io/source";
/// Annotation carrying Envoy's `x-request-id`, to correlate with its logs.
pub const REQUEST_ID_ANNOTATION: &str = "audit.kube-oidc-authz.io/envoy-request-id";
/// Annotation with the authz service's mode (`impersonate`, `passthrough`).
pub const MODE_ANNOTATION: &str = "audit.kube-oidc-authz.io/mode";

/// Builds the audit event the apiserver would have recorded at stage
/// `ResponseComplete` for the request in `entry`.
pub fn event_from_entry(entry: &HttpAccessLogEntry) -> Event {
    let default_request = HttpRequestProperties::default();
    let default_common = AccessLogCommon::default();
    let request = entry.request.as_ref().unwrap_or(&default_request);
    let common = entry.common_properties.as_ref().unwrap_or(&default_common);
    let method = RequestMethod::try_from(request.request_method)
        .ok()
        .filter(|m| *m != RequestMethod::MethodUnspecified)
        .map(|m| m.as_str_name())
        .unwrap_or("");
    let uri = if request.original_path.is_empty() {
        request.path.clone()
    } else {
        request.original_path.clone()
    };
    let info = request_info::resolve(method, &uri);

    let start = common
        .start_time
        .as_ref()
        .and_then(|t| {
            time::OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos),
            )
            .ok()
        })
        .unwrap_or_else(time::OffsetDateTime::now_utc);
    // Checked: a duration the date range cannot hold (any i64 seconds may
    // arrive) ends the request when it started rather than panicking.
    let done = common
        .time_to_last_downstream_tx_byte
        .as_ref()
        .or(common.duration.as_ref())
        .and_then(|d| {
            start.checked_add(time::Duration::new(
                d.seconds,
                d.nanos.clamp(-999_999_999, 999_999_999),
            ))
        })
        .unwrap_or(start);

    let identity = identity(common);
    let mut annotations = BTreeMap::new();
    annotations.insert(SOURCE_ANNOTATION.to_owned(), "envoy-access-log".to_owned());
    if !request.request_id.is_empty() {
        annotations.insert(
            REQUEST_ID_ANNOTATION.to_owned(),
            truncate_chars(&request.request_id, 128),
        );
    }
    if let Some(identity) = &identity {
        annotations.insert(
            MODE_ANNOTATION.to_owned(),
            identity.mode.as_str().to_owned(),
        );
    }

    let code = entry
        .response
        .as_ref()
        .and_then(|r| r.response_code)
        .map(|c| c.value)
        .unwrap_or(0);

    let (user, impersonated_user) = match identity {
        Some(identity) => users(identity),
        None => (UserInfo::default(), None),
    };
    Event {
        level: "Metadata".to_owned(),
        // Random (version 4) from the thread-local generator: no system
        // call per event.
        audit_id: uuid::Builder::from_random_bytes(rand::random())
            .into_uuid()
            .to_string(),
        stage: "ResponseComplete".to_owned(),
        request_uri: uri,
        verb: info.verb.clone(),
        user,
        impersonated_user,
        source_ips: source_ips(&request.forwarded_for, common),
        user_agent: (!request.user_agent.is_empty()).then(|| request.user_agent.clone()),
        object_ref: info.is_resource_request.then(|| ObjectReference {
            resource: info.resource,
            namespace: info.namespace,
            name: info.name,
            api_group: info.api_group,
            api_version: info.api_version,
            subresource: info.subresource,
            ..ObjectReference::default()
        }),
        response_status: Some(serde_json::json!({ "metadata": {}, "code": code })),
        request_object: None,
        response_object: None,
        request_received_timestamp: micro_time(start),
        stage_timestamp: micro_time(done),
        annotations,
    }
}

/// Whether ext_authz put an identity in `entry`'s metadata. Requests
/// without one (no or a bad credential, mostly answered 401) can be sent
/// by anyone who reaches Envoy, as many as they like.
pub fn has_identity(entry: &HttpAccessLogEntry) -> bool {
    entry
        .common_properties
        .as_ref()
        .and_then(identity)
        .is_some()
}

fn identity(common: &AccessLogCommon) -> Option<IdentityMetadata> {
    common
        .metadata
        .as_ref()
        .and_then(|m| m.filter_metadata.get(metadata::NAMESPACE))
        .and_then(IdentityMetadata::from_struct)
}

fn truncate_chars(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// The identity the authz service put in the metadata. Like the apiserver
/// for any authenticated user, `system:authenticated` is among the groups.
fn user_info(identity: IdentityMetadata) -> UserInfo {
    UserInfo {
        username: identity.user,
        uid: identity.uid.unwrap_or_default(),
        groups: identity.groups,
        extra: identity.extra.into_iter().collect(),
    }
    .with_authenticated_group()
}

/// The event's `user` and `impersonatedUser`. An end-user impersonation
/// (`kubectl --as` through the proxy) is recorded as the apiserver records
/// one made directly: `user` is the signed-in caller, rebuilt from the
/// `originaluser.kube-oidc-authz.io/*` extras, and `impersonatedUser` the
/// identity it acted as, without those extras.
fn users(identity: IdentityMetadata) -> (UserInfo, Option<UserInfo>) {
    let mut acted_as = user_info(identity);
    let Some(original) = acted_as
        .extra
        .get(ORIGINAL_USER_EXTRA)
        .and_then(|v| v.first())
        .cloned()
    else {
        return (acted_as, None);
    };
    let mut take = |key: &str| acted_as.extra.remove(key).unwrap_or_default();
    let groups = take(ORIGINAL_GROUPS_EXTRA);
    let uid = take(ORIGINAL_UID_EXTRA)
        .into_iter()
        .next()
        .unwrap_or_default();
    // The extras travel as one JSON object; one that does not parse is
    // dropped rather than the event.
    let extra = take(ORIGINAL_EXTRA_EXTRA)
        .first()
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default();
    take(ORIGINAL_USER_EXTRA);
    acted_as
        .extra
        .retain(|k, _| !k.starts_with(ORIGINAL_USER_DOMAIN));
    let caller = UserInfo {
        username: original,
        uid,
        groups,
        extra,
    };
    (caller, Some(acted_as))
}

/// `X-Forwarded-For` addresses first, then the peer, as the apiserver's
/// `utilnet.SourceIPs` orders them.
fn source_ips(forwarded_for: &str, common: &AccessLogCommon) -> Vec<String> {
    let mut ips: Vec<String> = forwarded_for
        .split(',')
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_string())
        .take(16)
        .collect();
    let peer = common
        .downstream_remote_address
        .as_ref()
        .and_then(|a| match &a.address {
            Some(address::Address::SocketAddress(sa)) => sa.address.parse::<IpAddr>().ok(),
            _ => None,
        })
        .map(|ip| ip.to_string());
    if let Some(peer) = peer
        && !ips.contains(&peer)
    {
        ips.push(peer);
    }
    ips
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::{Address, Metadata, SocketAddress};
    use envoy_types::pb::envoy::data::accesslog::v3::HttpResponseProperties;
    use envoy_types::pb::google::protobuf::{Timestamp, UInt32Value};

    fn entry(method: RequestMethod, path: &str, with_identity: bool) -> HttpAccessLogEntry {
        let identity = IdentityMetadata {
            mode: metadata::Mode::Impersonate,
            user: "banyan:alice@example.com".into(),
            issuer: "https://issuer.example".into(),
            uid: Some("u-1".into()),
            groups: vec!["banyan:developers".into()],
            extra: vec![("example.com/team".into(), vec!["a".into(), "b".into()])],
        };
        let mut filter_metadata = std::collections::HashMap::new();
        if with_identity {
            filter_metadata.insert(metadata::NAMESPACE.to_owned(), identity.to_struct());
        }
        HttpAccessLogEntry {
            common_properties: Some(AccessLogCommon {
                downstream_remote_address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: "192.0.2.10".into(),
                        ..SocketAddress::default()
                    })),
                }),
                start_time: Some(Timestamp {
                    seconds: 1_700_000_000,
                    nanos: 5_000,
                }),
                time_to_last_downstream_tx_byte: Some(
                    envoy_types::pb::google::protobuf::Duration {
                        seconds: 0,
                        nanos: 2_000_000,
                    },
                ),
                metadata: Some(Metadata {
                    filter_metadata,
                    ..Metadata::default()
                }),
                ..AccessLogCommon::default()
            }),
            request: Some(HttpRequestProperties {
                request_method: method as i32,
                path: path.into(),
                user_agent: "kubectl/v1.32.0".into(),
                forwarded_for: "203.0.113.7, not-an-ip".into(),
                request_id: "req-1".into(),
                ..HttpRequestProperties::default()
            }),
            response: Some(HttpResponseProperties {
                response_code: Some(UInt32Value { value: 200 }),
                ..HttpResponseProperties::default()
            }),
            ..HttpAccessLogEntry::default()
        }
    }

    /// Found by the `access_log` fuzz target: `start + duration` panicked
    /// once the sum left the date range.
    #[test]
    fn a_duration_out_of_the_date_range_ends_at_the_start() {
        for seconds in [i64::MAX, i64::MIN, 1 << 62, -(1 << 40)] {
            let mut e = entry(RequestMethod::Get, "/api/v1/pods", true);
            if let Some(common) = e.common_properties.as_mut() {
                common.time_to_last_downstream_tx_byte =
                    Some(envoy_types::pb::google::protobuf::Duration {
                        seconds,
                        nanos: 999_999_999,
                    });
            }
            let event = event_from_entry(&e);
            assert_eq!(
                event.stage_timestamp, event.request_received_timestamp,
                "{seconds}"
            );
            assert_eq!(event.validate(), Ok(()));
        }
    }

    #[test]
    fn an_impersonated_request_records_the_caller_and_who_it_acted_as() {
        let mut e = entry(RequestMethod::Get, "/api/v1/namespaces/default/pods", true);
        let bob = IdentityMetadata {
            mode: metadata::Mode::Impersonate,
            user: "banyan:bob@example.com".into(),
            issuer: "https://issuer.example".into(),
            uid: Some("bob-uid".into()),
            groups: vec!["banyan:readers".into()],
            extra: vec![
                (
                    ORIGINAL_EXTRA_EXTRA.into(),
                    vec![r#"{"authentication.kubernetes.io/credential-id":["JTI=j"]}"#.into()],
                ),
                (
                    ORIGINAL_GROUPS_EXTRA.into(),
                    vec!["banyan:developers".into(), "system:authenticated".into()],
                ),
                (ORIGINAL_UID_EXTRA.into(), vec!["u-1".into()]),
                (
                    ORIGINAL_USER_EXTRA.into(),
                    vec!["banyan:alice@example.com".into()],
                ),
                ("scopes".into(), vec!["view".into()]),
            ],
        };
        if let Some(m) = e
            .common_properties
            .as_mut()
            .and_then(|c| c.metadata.as_mut())
        {
            m.filter_metadata
                .insert(metadata::NAMESPACE.to_owned(), bob.to_struct());
        }
        let ev = event_from_entry(&e);
        ev.validate().unwrap();
        assert_eq!(ev.user.username, "banyan:alice@example.com");
        assert_eq!(ev.user.uid, "u-1");
        assert_eq!(
            ev.user.groups,
            ["banyan:developers", "system:authenticated"]
        );
        assert_eq!(
            ev.user.extra["authentication.kubernetes.io/credential-id"],
            ["JTI=j"]
        );
        let acted = ev.impersonated_user.unwrap();
        assert_eq!(acted.username, "banyan:bob@example.com");
        assert_eq!(acted.uid, "bob-uid");
        assert_eq!(acted.groups, ["banyan:readers", "system:authenticated"]);
        assert_eq!(acted.extra.keys().collect::<Vec<_>>(), ["scopes"]);
        // An ordinary request has no impersonated user.
        let plain = event_from_entry(&entry(RequestMethod::Get, "/api/v1/pods", true));
        assert!(plain.impersonated_user.is_none());
    }

    #[test]
    fn builds_the_event_the_apiserver_would_record() {
        let ev = event_from_entry(&entry(
            RequestMethod::Get,
            "/api/v1/namespaces/default/pods?limit=500",
            true,
        ));
        ev.validate().unwrap();
        assert_eq!(ev.verb, "list");
        assert_eq!(ev.stage, "ResponseComplete");
        assert_eq!(ev.request_uri, "/api/v1/namespaces/default/pods?limit=500");
        assert_eq!(ev.user.username, "banyan:alice@example.com");
        assert_eq!(ev.user.uid, "u-1");
        assert_eq!(
            ev.user.groups,
            ["banyan:developers", "system:authenticated"]
        );
        assert_eq!(ev.user.extra["example.com/team"], ["a", "b"]);
        assert_eq!(ev.source_ips, ["203.0.113.7", "192.0.2.10"]);
        assert_eq!(ev.user_agent.as_deref(), Some("kubectl/v1.32.0"));
        let obj = ev.object_ref.unwrap();
        assert_eq!(
            (
                obj.resource.as_str(),
                obj.namespace.as_str(),
                obj.api_version.as_str()
            ),
            ("pods", "default", "v1")
        );
        assert_eq!(ev.response_status.unwrap()["code"], 200);
        assert_eq!(ev.request_received_timestamp, "2023-11-14T22:13:20.000005Z");
        assert_eq!(ev.stage_timestamp, "2023-11-14T22:13:20.002005Z");
        assert_eq!(ev.annotations[MODE_ANNOTATION], "impersonate");
        assert_eq!(ev.annotations[REQUEST_ID_ANNOTATION], "req-1");
        assert!(uuid::Uuid::parse_str(&ev.audit_id).is_ok());
    }

    #[test]
    fn non_resource_and_anonymous_requests() {
        assert!(has_identity(&entry(RequestMethod::Get, "/healthz", true)));
        assert!(!has_identity(&entry(RequestMethod::Get, "/healthz", false)));
        assert!(!has_identity(&HttpAccessLogEntry::default()));
        let ev = event_from_entry(&entry(RequestMethod::Get, "/healthz", false));
        assert_eq!(ev.verb, "get");
        assert!(ev.object_ref.is_none());
        assert_eq!(ev.user, UserInfo::default());
        let empty = event_from_entry(&HttpAccessLogEntry::default());
        assert_eq!(empty.verb, "");
        empty.validate().unwrap();
        let a = event_from_entry(&HttpAccessLogEntry::default());
        assert_ne!(a.audit_id, empty.audit_id);
    }
}

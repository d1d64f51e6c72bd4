//! Decision → wire: Envoy header mutations and the identity metadata
//! ([`crate::metadata`]) for an allowed request, a Kubernetes `Status` body
//! ([`crate::k8s::Status`]) for a denied one.

use std::borrow::Cow;

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::protobuf::Struct;
use envoy_types::pb::google::rpc;

use super::error::DenyReason;
use super::identity::Identity;
use crate::k8s::{Status, impersonation};
use crate::metadata::{IdentityMetadata, IdentityView, Mode};

/// gRPC status codes carried inside `CheckResponse.status`.
const GRPC_OK: i32 = 0;
const GRPC_PERMISSION_DENIED: i32 = 7;
const GRPC_UNAVAILABLE: i32 = 14;
const GRPC_UNAUTHENTICATED: i32 = 16;

/// A header mutation that replaces any value the request carries: the
/// protocol's default is append, which would keep a forged value.
fn overwrite(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value: value.to_owned(),
            raw_value: Vec::new(),
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}

fn ok(metadata: Struct, headers: Vec<HeaderValueOption>) -> CheckResponse {
    CheckResponse {
        status: Some(rpc::Status {
            code: GRPC_OK,
            message: String::new(),
            details: Vec::new(),
        }),
        dynamic_metadata: Some(metadata),
        http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
            headers,
            ..Default::default()
        })),
    }
}

/// An allowed request: impersonate `identity` with the proxy's own token.
/// `request_extras` are per-request extras (client address, static extras)
/// merged after the identity's own. The single-valued headers are header
/// mutations; groups and extras go only into the metadata, from which
/// `envoy/impersonation.lua` writes one line per value.
pub fn allow(
    identity: &Identity,
    upstream_token: &str,
    request_extras: &[(&str, &str)],
) -> CheckResponse {
    let mut headers = Vec::with_capacity(3);
    headers.push(overwrite(
        "authorization",
        &format!("Bearer {upstream_token}"),
    ));
    headers.push(overwrite(impersonation::USER, &identity.user));
    if let Some(uid) = &identity.uid {
        headers.push(overwrite(impersonation::UID, uid));
    }

    // Per-request extras are rare; only then is the identity's list copied.
    let extra: Cow<'_, [(String, Vec<String>)]> = if request_extras.is_empty() {
        Cow::Borrowed(&identity.extra)
    } else {
        let mut merged = identity.extra.clone();
        for (k, v) in request_extras {
            match merged.iter_mut().find(|(key, _)| key == k) {
                Some((_, values)) => values.push((*v).to_owned()),
                None => merged.push(((*k).to_owned(), vec![(*v).to_owned()])),
            }
        }
        Cow::Owned(merged)
    };
    let metadata = IdentityView {
        mode: Mode::Impersonate,
        user: &identity.user,
        issuer: &identity.issuer,
        uid: identity.uid.as_deref(),
        groups: &identity.groups,
        extra: &extra,
    };
    ok(metadata.to_struct(), headers)
}

/// An allowed passthrough request: the caller's own token goes upstream
/// unchanged, with no impersonation.
pub fn allow_passthrough(user: &str) -> CheckResponse {
    ok(IdentityMetadata::passthrough(user).to_struct(), Vec::new())
}

/// A denied request, answered by Envoy with a Kubernetes `Status` body.
pub fn deny(reason: DenyReason) -> CheckResponse {
    let status = match reason.http_status() {
        403 => Status::forbidden("impersonation is not allowed through this proxy"),
        503 => Status::service_unavailable(
            "the authentication service cannot verify credentials right now",
        ),
        401 => Status::unauthorized(),
        code => Status::failure(code, Status::reason_for(code), reason.to_string()),
    };
    deny_with(reason, &status)
}

/// A denied request answered with `status` (its code is the HTTP status).
pub fn deny_with(reason: DenyReason, status: &Status) -> CheckResponse {
    let grpc = match status.code {
        401 => GRPC_UNAUTHENTICATED,
        503 => GRPC_UNAVAILABLE,
        _ => GRPC_PERMISSION_DENIED,
    };
    CheckResponse {
        status: Some(rpc::Status {
            code: grpc,
            message: reason.code().to_owned(),
            details: Vec::new(),
        }),
        dynamic_metadata: None,
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: status.code.into(),
            }),
            headers: vec![
                overwrite("content-type", "application/json"),
                overwrite("cache-control", "no-store"),
            ],
            body: status.to_json(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::google::protobuf::{Value, value::Kind};

    use super::*;

    fn alice() -> Identity {
        Identity {
            user: "banyan:alice@example.com".into(),
            uid: Some("u-1".into()),
            groups: vec!["banyan:a".into(), "banyan:b".into()].into(),
            extra: vec![(
                "authentication.kubernetes.io/credential-id".to_owned(),
                vec!["JTI=x".to_owned()],
            )],
            issuer: "https://idp".into(),
        }
    }

    #[test]
    fn allow_sets_single_valued_headers_with_overwrite_and_everything_in_metadata() {
        let resp = allow(&alice(), "sa-token", &[("remote-client-ip", "10.0.0.1")]);
        assert_eq!(resp.status.as_ref().unwrap().code, 0);
        let Some(HttpResponse::OkResponse(ok)) = &resp.http_response else {
            panic!("not ok")
        };
        let got: Vec<(String, String, i32)> = ok
            .headers
            .iter()
            .map(|h| {
                let hv = h.header.as_ref().unwrap();
                (hv.key.clone(), hv.value.clone(), h.append_action)
            })
            .collect();
        let ow = HeaderAppendAction::OverwriteIfExistsOrAdd as i32;
        assert_eq!(
            got,
            vec![
                ("authorization".into(), "Bearer sa-token".into(), ow),
                (
                    "impersonate-user".into(),
                    "banyan:alice@example.com".into(),
                    ow
                ),
                ("impersonate-uid".into(), "u-1".into(), ow),
            ]
        );
        let md = &resp.dynamic_metadata.as_ref().unwrap().fields;
        let as_list = |v: &Value| match &v.kind {
            Some(Kind::ListValue(l)) => l
                .values
                .iter()
                .map(|v| match &v.kind {
                    Some(Kind::StringValue(s)) => s.clone(),
                    _ => panic!(),
                })
                .collect::<Vec<_>>(),
            _ => panic!("not a list"),
        };
        assert_eq!(as_list(&md["groups"]), ["banyan:a", "banyan:b"]);
        let Some(Kind::StructValue(ie)) = &md["impersonate_extra"].kind else {
            panic!()
        };
        assert_eq!(
            as_list(&ie.fields["impersonate-extra-authentication.kubernetes.io%2fcredential-id"]),
            ["JTI=x"]
        );
        assert_eq!(
            as_list(&ie.fields["impersonate-extra-remote-client-ip"]),
            ["10.0.0.1"]
        );
        let Some(Kind::StringValue(mode)) = &md["mode"].kind else {
            panic!()
        };
        assert_eq!(mode, "impersonate");
    }

    #[test]
    fn deny_bodies_are_kubernetes_status_objects() {
        for (reason, code, k8s) in [
            (DenyReason::Expired, 401, "Unauthorized"),
            (DenyReason::ImpersonationRefused, 403, "Forbidden"),
            (DenyReason::KeysUnavailable, 503, "ServiceUnavailable"),
        ] {
            let resp = deny(reason);
            assert_ne!(resp.status.as_ref().unwrap().code, 0);
            let Some(HttpResponse::DeniedResponse(d)) = &resp.http_response else {
                panic!()
            };
            assert_eq!(d.status.as_ref().unwrap().code, code);
            let body: serde_json::Value = serde_json::from_str(&d.body).unwrap();
            assert_eq!(body["kind"], "Status");
            assert_eq!(body["apiVersion"], "v1");
            assert_eq!(body["status"], "Failure");
            assert_eq!(body["reason"], k8s);
            assert_eq!(body["code"], code);
        }
    }
}

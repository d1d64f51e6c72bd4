//! Decision → wire: Envoy header mutations and dynamic metadata for an
//! allowed request, a Kubernetes `Status` body for a denied one.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::protobuf::{ListValue, Struct, Value, value::Kind};
use envoy_types::pb::google::rpc;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::error::DenyReason;
use super::identity::Identity;

/// gRPC status codes carried inside `CheckResponse.status`.
const GRPC_OK: i32 = 0;
const GRPC_PERMISSION_DENIED: i32 = 7;
const GRPC_UNAVAILABLE: i32 = 14;
const GRPC_UNAUTHENTICATED: i32 = 16;

/// Characters escaped in an `Impersonate-Extra-` key, as client-go does:
/// everything that is not an RFC 7230 token character, and `%` itself.
const EXTRA_KEY_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'*')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// The header name carrying one extra key.
pub fn extra_header_name(key: &str) -> String {
    format!(
        "impersonate-extra-{}",
        utf8_percent_encode(key, EXTRA_KEY_ESCAPE)
    )
    .to_ascii_lowercase()
}

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

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_owned())),
    }
}

fn list<'a>(items: impl IntoIterator<Item = &'a String>) -> Value {
    Value {
        kind: Some(Kind::ListValue(ListValue {
            values: items.into_iter().map(|s| string(s)).collect(),
        })),
    }
}

fn object(fields: HashMap<String, Value>) -> Value {
    Value {
        kind: Some(Kind::StructValue(Struct { fields })),
    }
}

/// An allowed request: impersonate `identity` with the proxy's own token.
/// `request_extras` are per-request extras (client address, static extras)
/// merged after the identity's own.
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
    headers.push(overwrite("impersonate-user", &identity.user));
    if let Some(uid) = &identity.uid {
        headers.push(overwrite("impersonate-uid", uid));
    }

    let mut extra: HashMap<String, Vec<String>> = identity
        .extra
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in request_extras {
        extra
            .entry((*k).to_owned())
            .or_default()
            .push((*v).to_owned());
    }

    let mut fields = HashMap::with_capacity(7);
    fields.insert("mode".to_owned(), string("impersonate"));
    fields.insert("user".to_owned(), string(&identity.user));
    fields.insert("issuer".to_owned(), string(&identity.issuer));
    if let Some(uid) = &identity.uid {
        fields.insert("uid".to_owned(), string(uid));
    }
    fields.insert("groups".to_owned(), list(&identity.groups));
    fields.insert(
        "impersonate_extra".to_owned(),
        object(
            extra
                .iter()
                .map(|(k, v)| (extra_header_name(k), list(v)))
                .collect(),
        ),
    );
    fields.insert(
        "extra".to_owned(),
        object(extra.iter().map(|(k, v)| (k.clone(), list(v))).collect()),
    );

    CheckResponse {
        status: Some(rpc::Status {
            code: GRPC_OK,
            message: String::new(),
            details: Vec::new(),
        }),
        dynamic_metadata: Some(Struct { fields }),
        http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
            headers,
            ..Default::default()
        })),
    }
}

/// An allowed passthrough request: the caller's own token goes upstream
/// unchanged, with no impersonation.
pub fn allow_passthrough(user: &str) -> CheckResponse {
    let mut fields = HashMap::with_capacity(2);
    fields.insert("mode".to_owned(), string("passthrough"));
    fields.insert("user".to_owned(), string(user));
    CheckResponse {
        status: Some(rpc::Status {
            code: GRPC_OK,
            message: String::new(),
            details: Vec::new(),
        }),
        dynamic_metadata: Some(Struct { fields }),
        http_response: Some(HttpResponse::OkResponse(OkHttpResponse::default())),
    }
}

/// A denied request, answered by Envoy with a Kubernetes `Status` body.
pub fn deny(reason: DenyReason) -> CheckResponse {
    let code = reason.http_status();
    let (k8s_reason, message, grpc) = match code {
        403 => (
            "Forbidden",
            "impersonation is not allowed through this proxy",
            GRPC_PERMISSION_DENIED,
        ),
        503 => (
            "ServiceUnavailable",
            "the authentication service cannot verify credentials right now",
            GRPC_UNAVAILABLE,
        ),
        _ => ("Unauthorized", "Unauthorized", GRPC_UNAUTHENTICATED),
    };
    let body = status_body(code, k8s_reason, message);
    CheckResponse {
        status: Some(rpc::Status {
            code: grpc,
            message: reason.code().to_owned(),
            details: Vec::new(),
        }),
        dynamic_metadata: None,
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus { code: code.into() }),
            headers: vec![
                overwrite("content-type", "application/json"),
                overwrite("cache-control", "no-store"),
            ],
            body,
        })),
    }
}

/// A `meta/v1` `Status` object as the apiserver writes it.
pub fn status_body(code: u16, reason: &str, message: &str) -> String {
    serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
    .to_string()
}

#[cfg(test)]
mod tests {

    use super::*;

    fn alice() -> Identity {
        Identity {
            user: "banyan:alice@example.com".into(),
            uid: Some("u-1".into()),
            groups: vec!["banyan:a".into(), "banyan:b".into()],
            extra: vec![(
                "authentication.kubernetes.io/credential-id".to_owned(),
                vec!["JTI=x".to_owned()],
            )],
            issuer: "https://idp".into(),
        }
    }

    #[test]
    fn extra_header_names_escape_like_client_go() {
        assert_eq!(
            extra_header_name("authentication.kubernetes.io/credential-id"),
            "impersonate-extra-authentication.kubernetes.io%2fcredential-id"
        );
        assert_eq!(
            extra_header_name("remote-client-ip"),
            "impersonate-extra-remote-client-ip"
        );
        assert_eq!(extra_header_name("a%b c"), "impersonate-extra-a%25b%20c");
        assert_eq!(extra_header_name("ünï"), "impersonate-extra-%c3%bcn%c3%af");
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

//! `POST /apis/authorization.k8s.io/v1/subjectaccessreviews`, as the
//! apiserver's SubjectAccessReview storage answers it
//! (k8s.io/kubernetes `pkg/registry/authorization/subjectaccessreview`):
//! the spec is validated (one of resource or non-resource attributes, a
//! user or a group), the stand-in's RBAC table decides for the subject
//! exactly as it decides for a request, and the review comes back created
//! with `status.allowed` (a denial carries no reason, as the RBAC
//! authorizer gives none). Who may create reviews at all is decided before,
//! like every other request.

use std::collections::BTreeMap;

use axum::response::Response;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::identity::UserInfo;
use super::rbac::{Attributes, Rbac};
use super::status::ApiError;

/// A field error of an invalid review, as `field.Invalid` words it.
fn invalid(field: &str, value: &Value, detail: &str) -> ApiError {
    let shown = match value {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "\"\"".to_owned(),
        other => other.to_string(),
    };
    let cause = format!("Invalid value: {shown}: {detail}");
    let mut details = Map::new();
    details.insert("group".to_owned(), json!("authorization.k8s.io"));
    details.insert("kind".to_owned(), json!("SubjectAccessReview"));
    details.insert(
        "causes".to_owned(),
        json!([{"reason": "FieldValueInvalid", "message": cause, "field": field}]),
    );
    ApiError {
        code: 422,
        reason: "Invalid",
        message: format!(
            "SubjectAccessReview.authorization.k8s.io \"\" is invalid: {field}: {cause}"
        ),
        details,
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// Answers a SubjectAccessReview from `rbac`.
pub fn create(rbac: &Rbac, body: &[u8]) -> Result<Response, ApiError> {
    let review: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(&format!("invalid SubjectAccessReview: {e}")))?;
    let spec = &review["spec"];
    let resource = spec.get("resourceAttributes").filter(|v| v.is_object());
    let non_resource = spec.get("nonResourceAttributes").filter(|v| v.is_object());
    let user = text(spec, "user").to_owned();
    let groups = strings(&spec["groups"]);
    let exactly_one = || {
        invalid(
            "spec.resourceAttributes",
            &Value::Null,
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )
    };
    if resource.is_some() == non_resource.is_some() {
        return Err(exactly_one());
    }
    if user.is_empty() && groups.is_empty() {
        return Err(invalid(
            "spec.user",
            &json!(user),
            "at least one of user or group must be specified",
        ));
    }
    let extra: BTreeMap<String, Vec<String>> = spec["extra"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), strings(v))).collect())
        .unwrap_or_default();
    // The subject is taken as given: the apiserver adds no group to it.
    let subject = UserInfo {
        username: user,
        uid: text(spec, "uid").to_owned(),
        groups,
        extra,
    };
    let attrs = match (resource, non_resource) {
        (Some(r), _) => Attributes::resource(
            subject,
            text(r, "verb"),
            text(r, "group"),
            text(r, "resource"),
            text(r, "subresource"),
            text(r, "namespace"),
            text(r, "name"),
        ),
        (None, Some(n)) => Attributes {
            resource_request: false,
            path: text(n, "path").to_owned(),
            ..Attributes::resource(subject, text(n, "verb"), "", "", "", "", "")
        },
        (None, None) => return Err(exactly_one()),
    };
    let status = if rbac.allows(&attrs) {
        json!({"allowed": true, "reason": "RBAC: allowed by the stand-in's RBAC table"})
    } else {
        json!({"allowed": false})
    };
    Ok(super::resources::json_response(
        StatusCode::CREATED,
        &json!({
            "kind": "SubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": spec,
            "status": status,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::rbac::Rule;

    const SA: &str = "system:serviceaccount:kube-oidc-authz:kube-oidc-authz";

    async fn answer(body: Value) -> Result<Value, ApiError> {
        let rbac = Rbac::new(SA, None, Rule::guide_example());
        let resp = create(&rbac, body.to_string().as_bytes())?;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        Ok(serde_json::from_slice(&bytes).unwrap())
    }

    fn review(user: &str, groups: &[&str], attrs: Value) -> Value {
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {"user": user, "groups": groups, "resourceAttributes": attrs},
        })
    }

    #[tokio::test]
    async fn decides_for_the_subject_from_rbac() {
        let bob =
            json!({"verb": "impersonate", "resource": "users", "name": "banyan:bob@example.com"});
        let admins = json!({"verb": "impersonate", "resource": "groups", "name": "banyan:all-admins-corporate-device"});
        let cases = [
            // The developers may impersonate bob, not the admins group.
            (
                review(
                    "banyan:alice@example.com",
                    &["banyan:developers"],
                    bob.clone(),
                ),
                true,
            ),
            (
                review(
                    "banyan:alice@example.com",
                    &["banyan:developers"],
                    admins.clone(),
                ),
                false,
            ),
            // Readers may impersonate no one.
            (
                review(
                    "banyan:carol@example.com",
                    &[
                        "banyan:any-employee-personal-device",
                        "system:authenticated",
                    ],
                    bob.clone(),
                ),
                false,
            ),
            // Groups are the subject's, as given: without them, no rule binds.
            (review("banyan:alice@example.com", &[], bob.clone()), false),
            (
                review("x", &["banyan:all-admins-corporate-device"], admins),
                true,
            ),
        ];
        for (body, allowed) in cases {
            let got = answer(body.clone()).await.unwrap();
            assert_eq!(got["status"]["allowed"], allowed, "{body}");
            assert_eq!(got["kind"], "SubjectAccessReview");
            if !allowed {
                assert!(got["status"].get("reason").is_none(), "{got}");
            }
        }
        let non_resource = json!({
            "spec": {"groups": ["system:authenticated"], "nonResourceAttributes": {"verb": "get", "path": "/version"}},
        });
        assert_eq!(
            answer(non_resource).await.unwrap()["status"]["allowed"],
            true
        );
    }

    #[tokio::test]
    async fn invalid_reviews_are_422() {
        let attrs = json!({"verb": "get", "resource": "pods"});
        for (body, field) in [
            (json!({"spec": {"user": "a"}}), "spec.resourceAttributes"),
            (
                json!({"spec": {"user": "a", "resourceAttributes": attrs, "nonResourceAttributes": {"verb": "get", "path": "/"}}}),
                "spec.resourceAttributes",
            ),
            (json!({"spec": {"resourceAttributes": attrs}}), "spec.user"),
        ] {
            let e = answer(body.clone()).await.unwrap_err();
            assert_eq!((e.code, e.reason), (422, "Invalid"), "{body}");
            assert!(e.message.contains(field), "{}", e.message);
        }
        assert_eq!(answer(json!("x")).await.unwrap_err().code, 422);
        let rbac = Rbac::new(SA, None, Vec::new());
        assert_eq!(create(&rbac, b"{").unwrap_err().code, 400);
    }
}

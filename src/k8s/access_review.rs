//! `authorization.k8s.io/v1` `SubjectAccessReview`: asking the apiserver's
//! authorizer whether a user may do something, and the `Forbidden` status
//! the apiserver answers when it may not (k8s.io/apiserver
//! `responsewriters.Forbidden`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::status::Status;

/// The path reviews are created at.
pub const SUBJECT_ACCESS_REVIEWS_PATH: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

/// `ResourceAttributes` of a review: what is asked about. Empty fields are
/// left out of the JSON, as the Go type's `omitempty` tags do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceAttributes {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub verb: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subresource: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// The subject of a review: who is asking.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub user: &'a str,
    pub uid: Option<&'a str>,
    pub groups: &'a [String],
    pub extra: &'a [(String, Vec<String>)],
}

/// The body of a `SubjectAccessReview` create.
pub fn review_body(subject: Subject<'_>, attributes: &ResourceAttributes) -> Value {
    let extra: BTreeMap<&str, &Vec<String>> =
        subject.extra.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut spec = Map::new();
    spec.insert("resourceAttributes".into(), json!(attributes));
    spec.insert("user".into(), json!(subject.user));
    if !subject.groups.is_empty() {
        spec.insert("groups".into(), json!(subject.groups));
    }
    if let Some(uid) = subject.uid.filter(|u| !u.is_empty()) {
        spec.insert("uid".into(), json!(uid));
    }
    if !extra.is_empty() {
        spec.insert("extra".into(), json!(extra));
    }
    json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": spec,
    })
}

/// `SubjectAccessReviewStatus`: the authorizer's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewStatus {
    #[serde(default)]
    pub allowed: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub denied: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub evaluation_error: String,
}

/// The status of a created review, from the apiserver's response body.
pub fn review_status(body: &Value) -> Option<ReviewStatus> {
    serde_json::from_value(body.get("status")?.clone()).ok()
}

/// The `403 Forbidden` the apiserver answers when `user` may not do
/// `attributes`: `<resource>[.<group>] ["<name>"] is forbidden: User
/// "<user>" cannot <verb> resource "<resource>[/<subresource>]" in API
/// group "<group>" at the cluster scope` (or `in the namespace "<ns>"`),
/// then `: <reason>` when the authorizer gave one.
pub fn forbidden(user: &str, attributes: &ResourceAttributes, reason: &str) -> Status {
    let a = attributes;
    let resource = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_owned()
    } else {
        format!("in the namespace {:?}", a.namespace)
    };
    let mut why = format!(
        "User {user:?} cannot {} resource {resource:?} in API group {:?} {scope}",
        a.verb, a.group
    );
    if !reason.is_empty() {
        why = format!("{why}: {reason}");
    }
    let group_resource = if a.group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.group)
    };
    let message = if a.name.is_empty() {
        format!("{group_resource} is forbidden: {why}")
    } else {
        format!("{group_resource} {:?} is forbidden: {why}", a.name)
    };
    let mut details = Map::new();
    if !a.name.is_empty() {
        details.insert("name".into(), json!(a.name));
    }
    if !a.group.is_empty() {
        details.insert("group".into(), json!(a.group));
    }
    details.insert("kind".into(), json!(a.resource));
    Status {
        details,
        ..Status::forbidden(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> ResourceAttributes {
        ResourceAttributes {
            namespace: ns.into(),
            verb: "impersonate".into(),
            group: group.into(),
            version: String::new(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
        }
    }

    #[test]
    fn forbidden_messages_are_the_apiservers() {
        let cases = [
            (
                attrs("", "users", "", "", "bob"),
                "",
                r#"users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope"#,
            ),
            (
                attrs("", "serviceaccounts", "", "ci", "deployer"),
                "",
                r#"serviceaccounts "deployer" is forbidden: User "alice" cannot impersonate resource "serviceaccounts" in API group "" in the namespace "ci""#,
            ),
            (
                attrs("authentication.k8s.io", "userextras", "scopes", "", "view"),
                "no rule",
                r#"userextras.authentication.k8s.io "view" is forbidden: User "alice" cannot impersonate resource "userextras/scopes" in API group "authentication.k8s.io" at the cluster scope: no rule"#,
            ),
        ];
        for (a, reason, want) in cases {
            let s = forbidden("alice", &a, reason);
            assert_eq!(s.message, want);
            assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
            assert_eq!(s.details["kind"], json!(a.resource));
        }
    }

    #[test]
    fn review_bodies_carry_the_subject_and_leave_out_empty_fields() {
        let groups = vec!["dev".to_owned(), "system:authenticated".to_owned()];
        let extra = vec![("scopes".to_owned(), vec!["a".to_owned()])];
        let body = review_body(
            Subject {
                user: "alice",
                uid: Some("u-1"),
                groups: &groups,
                extra: &extra,
            },
            &attrs("", "groups", "", "", "ops"),
        );
        assert_eq!(
            body,
            json!({
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "resourceAttributes": {"verb": "impersonate", "resource": "groups", "name": "ops"},
                    "user": "alice",
                    "groups": ["dev", "system:authenticated"],
                    "uid": "u-1",
                    "extra": {"scopes": ["a"]},
                },
            })
        );
        let bare = review_body(
            Subject {
                user: "alice",
                uid: None,
                groups: &[],
                extra: &[],
            },
            &attrs("", "users", "", "", "bob"),
        );
        assert_eq!(
            bare["spec"].as_object().unwrap().keys().collect::<Vec<_>>(),
            ["resourceAttributes", "user"]
        );
        for (status, want) in [
            (
                json!({"status": {"allowed": true, "reason": "ok"}}),
                Some((true, "ok")),
            ),
            (json!({"status": {"allowed": false}}), Some((false, ""))),
            (json!({"status": {}}), Some((false, ""))),
            (json!({"status": {"allowed": "yes"}}), None),
            (json!({}), None),
        ] {
            let got = review_status(&status);
            assert_eq!(
                got.as_ref().map(|s| (s.allowed, s.reason.as_str())),
                want,
                "{status}"
            );
        }
    }
}

//! `meta/v1` `Status` errors with the apiserver's codes, reasons and
//! message shapes (k8s.io/apimachinery `api/errors` and
//! k8s.io/apiserver `responsewriters`).

use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use kube_oidc_authz::k8s::Status;
use serde_json::{Map, Value, json};

use super::rbac::Attributes;

/// An error answered as a Kubernetes `Status`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Map<String, Value>,
}

impl ApiError {
    /// 401 as the authentication filter writes it.
    pub fn unauthorized() -> Self {
        ApiError {
            code: 401,
            reason: "Unauthorized",
            message: "Unauthorized".to_owned(),
            details: Map::new(),
        }
    }

    /// 400 `BadRequest`.
    pub fn bad_request(message: &str) -> Self {
        ApiError {
            code: 400,
            reason: "BadRequest",
            message: message.to_owned(),
            details: Map::new(),
        }
    }

    /// 500 `InternalError`, as `responsewriters.InternalError` writes it.
    pub fn internal(cause: &str) -> Self {
        let mut details = Map::new();
        details.insert("causes".to_owned(), json!([{ "message": cause }]));
        ApiError {
            code: 500,
            reason: "InternalError",
            message: format!("Internal error occurred: {cause}"),
            details,
        }
    }

    /// 404 for a path or resource the server does not serve.
    pub fn not_found_path() -> Self {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: "the server could not find the requested resource".to_owned(),
            details: Map::new(),
        }
    }

    /// 404 for a named object that does not exist.
    pub fn not_found(resource: &str, name: &str) -> Self {
        let mut details = Map::new();
        details.insert("name".to_owned(), json!(name));
        details.insert("kind".to_owned(), json!(resource));
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("{resource} \"{name}\" not found"),
            details,
        }
    }

    /// 403 for a request RBAC does not allow: `<resource>[.<group>] ["name"]
    /// is forbidden: User "<user>" cannot <verb> resource "<resource>" in API
    /// group "<group>" in the namespace "<ns>"` (or `at the cluster scope`,
    /// or `cannot <verb> path "<path>"` for a non-resource URL).
    pub fn forbidden(attrs: &Attributes) -> Self {
        let user = &attrs.user.username;
        let why = if attrs.resource_request {
            let resource = if attrs.subresource.is_empty() {
                attrs.resource.clone()
            } else {
                format!("{}/{}", attrs.resource, attrs.subresource)
            };
            if attrs.namespace.is_empty() {
                format!(
                    "User {user:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope",
                    attrs.verb, attrs.api_group
                )
            } else {
                format!(
                    "User {user:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}",
                    attrs.verb, attrs.api_group, attrs.namespace
                )
            }
        } else {
            format!("User {user:?} cannot {} path {:?}", attrs.verb, attrs.path)
        };
        let group_resource = if attrs.api_group.is_empty() {
            attrs.resource.clone()
        } else {
            format!("{}.{}", attrs.resource, attrs.api_group)
        };
        let message = match (group_resource.is_empty(), attrs.name.is_empty()) {
            (true, _) => format!("forbidden: {why}"),
            (false, true) => format!("{group_resource} is forbidden: {why}"),
            (false, false) => format!("{group_resource} {:?} is forbidden: {why}", attrs.name),
        };
        let mut details = Map::new();
        if !attrs.name.is_empty() {
            details.insert("name".to_owned(), json!(attrs.name));
        }
        if !attrs.api_group.is_empty() {
            details.insert("group".to_owned(), json!(attrs.api_group));
        }
        if !attrs.resource.is_empty() {
            details.insert("kind".to_owned(), json!(attrs.resource));
        }
        ApiError {
            code: 403,
            reason: "Forbidden",
            message,
            details,
        }
    }

    /// The `Status` object.
    pub fn body(&self) -> Value {
        Status {
            code: self.code,
            reason: self.reason.to_owned(),
            message: self.message.clone(),
            details: self.details.clone(),
        }
        .to_value()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            code,
            [(header::CONTENT_TYPE, "application/json")],
            self.body().to_string(),
        )
            .into_response()
    }
}

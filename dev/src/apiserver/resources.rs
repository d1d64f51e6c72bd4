//! What the stand-in serves once a request is authorised: discovery, the
//! pods of `default` (list, get, watch, log), an empty service list, and
//! SelfSubjectReview. Objects are answered as JSON, or as a `meta.k8s.io/v1`
//! `Table` when the client asks for one (kubectl does).

use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use super::identity::UserInfo;
use super::status::ApiError;

/// The one pod the stand-in knows, in namespace `default`.
pub const POD_NAME: &str = "web";
/// Its container.
pub const CONTAINER_NAME: &str = "app";
/// The namespace that holds it.
pub const NAMESPACE: &str = "default";
const CREATED: &str = "2026-01-01T00:00:00Z";
/// Kubernetes version the stand-in reports.
pub const GIT_VERSION: &str = "v1.32.0";

pub(super) fn json_response(code: StatusCode, body: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `200 OK` with a JSON body.
pub fn ok(body: &Value) -> Response {
    json_response(StatusCode::OK, body)
}

/// Discovery and other non-resource paths.
pub fn non_resource(path: &str) -> Result<Response, ApiError> {
    let body = match path.trim_end_matches('/') {
        "/api" => json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "kubernetes.default.svc:443"}],
        }),
        "/apis" => json!({
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [authentication_group()],
        }),
        "/apis/authentication.k8s.io" => {
            let mut g = authentication_group();
            g["kind"] = json!("APIGroup");
            g["apiVersion"] = json!("v1");
            g
        }
        "/api/v1" => json!({
            "kind": "APIResourceList",
            "groupVersion": "v1",
            "resources": [
                {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
                 "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                 "shortNames": ["po"], "categories": ["all"]},
                {"name": "pods/exec", "singularName": "", "namespaced": true, "kind": "PodExecOptions", "verbs": ["create", "get"]},
                {"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]},
                {"name": "services", "singularName": "service", "namespaced": true, "kind": "Service",
                 "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                 "shortNames": ["svc"], "categories": ["all"]},
                {"name": "namespaces", "singularName": "namespace", "namespaced": false, "kind": "Namespace",
                 "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"], "shortNames": ["ns"]},
            ],
        }),
        "/apis/authentication.k8s.io/v1" => json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": "authentication.k8s.io/v1",
            "resources": [
                {"name": "selfsubjectreviews", "singularName": "selfsubjectreview", "namespaced": false,
                 "kind": "SelfSubjectReview", "verbs": ["create"]},
                {"name": "tokenreviews", "singularName": "tokenreview", "namespaced": false,
                 "kind": "TokenReview", "verbs": ["create"]},
            ],
        }),
        "/version" => json!({
            "major": "1",
            "minor": "32",
            "gitVersion": GIT_VERSION,
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": CREATED,
            "goVersion": "go1.23.0",
            "compiler": "gc",
            "platform": "linux/amd64",
        }),
        "/healthz" | "/livez" | "/readyz" => {
            return Ok(
                (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "ok").into_response(),
            );
        }
        _ => return Err(ApiError::not_found_path()),
    };
    Ok(ok(&body))
}

fn authentication_group() -> Value {
    let gv = json!({"groupVersion": "authentication.k8s.io/v1", "version": "v1"});
    json!({"name": "authentication.k8s.io", "versions": [gv], "preferredVersion": gv})
}

/// The pod as the apiserver would return it.
pub fn pod(resource_version: u64) -> Value {
    json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": POD_NAME,
            "namespace": NAMESPACE,
            "uid": "5f0c6a4e-6d1b-4f43-9a55-3a1c3bde0a01",
            "resourceVersion": resource_version.to_string(),
            "creationTimestamp": CREATED,
            "labels": {"app": "web"},
        },
        "spec": {
            "containers": [{"name": CONTAINER_NAME, "image": "registry.k8s.io/pause:3.10"}],
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{
                "name": CONTAINER_NAME,
                "ready": true,
                "started": true,
                "restartCount": 0,
                "image": "registry.k8s.io/pause:3.10",
                "imageID": "",
                "state": {"running": {"startedAt": CREATED}},
            }],
        },
    })
}

/// Whether the client accepts a `meta.k8s.io/v1` `Table`.
pub fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("as=Table") && v.contains("g=meta.k8s.io"))
}

fn pod_columns() -> Value {
    json!([
        {"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0},
        {"name": "Ready", "type": "string", "format": "", "description": "The aggregate readiness state of this pod for accepting traffic.", "priority": 0},
        {"name": "Status", "type": "string", "format": "", "description": "The aggregate status of the containers in this pod.", "priority": 0},
        {"name": "Restarts", "type": "string", "format": "", "description": "The number of times the containers in this pod have been restarted.", "priority": 0},
        {"name": "Age", "type": "string", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created.", "priority": 0},
    ])
}

fn pod_row(resource_version: u64) -> Value {
    let p = pod(resource_version);
    json!({
        "cells": [POD_NAME, "1/1", "Running", "0", "1d"],
        "object": {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": p["metadata"],
        },
    })
}

/// `GET /api/v1/namespaces/<ns>/pods`.
pub fn list_pods(namespace: &str, resource_version: u64, table: bool) -> Response {
    let present = namespace == NAMESPACE;
    let rv = resource_version.to_string();
    if table {
        let rows: Vec<Value> = if present {
            vec![pod_row(resource_version)]
        } else {
            Vec::new()
        };
        return ok(&json!({
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": rv},
            "columnDefinitions": pod_columns(),
            "rows": rows,
        }));
    }
    let items: Vec<Value> = if present {
        vec![pod(resource_version)]
    } else {
        Vec::new()
    };
    ok(
        &json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": rv}, "items": items}),
    )
}

/// `GET /api/v1/namespaces/<ns>/pods/<name>`.
pub fn get_pod(
    namespace: &str,
    name: &str,
    resource_version: u64,
    table: bool,
) -> Result<Response, ApiError> {
    if namespace != NAMESPACE || name != POD_NAME {
        return Err(ApiError::not_found("pods", name));
    }
    if table {
        return Ok(ok(&json!({
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": resource_version.to_string()},
            "columnDefinitions": pod_columns(),
            "rows": [pod_row(resource_version)],
        })));
    }
    Ok(ok(&pod(resource_version)))
}

/// `GET .../pods/<name>/log`: two fixed lines.
pub fn pod_log(namespace: &str, name: &str) -> Result<Response, ApiError> {
    if namespace != NAMESPACE || name != POD_NAME {
        return Err(ApiError::not_found("pods", name));
    }
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain")],
        "listening on :8080\nready\n",
    )
        .into_response())
}

/// `GET /api/v1/namespaces/<ns>/services`: there are none.
pub fn list_services(table: bool) -> Response {
    if table {
        return ok(&json!({
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": "1"},
            "columnDefinitions": [
                {"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0},
                {"name": "Type", "type": "string", "format": "", "description": "Type", "priority": 0},
                {"name": "Cluster-IP", "type": "string", "format": "", "description": "Cluster IP", "priority": 0},
            ],
            "rows": [],
        }));
    }
    ok(
        &json!({"kind": "ServiceList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": []}),
    )
}

/// `POST /apis/authentication.k8s.io/v1/selfsubjectreviews`: the identity
/// the request arrived with, after impersonation.
pub fn self_subject_review(user: &UserInfo) -> Response {
    json_response(
        StatusCode::CREATED,
        &json!({
            "kind": "SelfSubjectReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "status": {"userInfo": user},
        }),
    )
}

/// The watch parameters the stand-in honours.
#[derive(Debug, Clone, Copy)]
pub struct WatchParams {
    /// Start after this version; `None` or 0 replays the current state as
    /// `ADDED` first.
    pub resource_version: Option<u64>,
    /// Server-side end of the watch (`timeoutSeconds`).
    pub timeout: Option<Duration>,
}

impl WatchParams {
    /// Reads `resourceVersion` and `timeoutSeconds` from a query string.
    pub fn from_query(query: &str) -> Self {
        let mut p = WatchParams {
            resource_version: None,
            timeout: None,
        };
        for kv in query.split('&') {
            match kv.split_once('=') {
                Some(("resourceVersion", v)) => p.resource_version = v.parse().ok(),
                Some(("timeoutSeconds", v)) => {
                    p.timeout = v.parse::<u64>().ok().map(Duration::from_secs);
                }
                _ => {}
            }
        }
        p
    }
}

/// A watch on the pods of `namespace`: a `MODIFIED` event for the pod every
/// `interval` (its resourceVersion bumped each time), newline-delimited
/// JSON, until the client goes away or `timeoutSeconds` passes. As the
/// apiserver does, only the first `Table` event carries column definitions.
pub fn watch_pods(
    namespace: &str,
    start_version: u64,
    params: WatchParams,
    interval: Duration,
    table: bool,
) -> Response {
    let present = namespace == NAMESPACE;
    let stream = async_stream(present, start_version, params, interval, table);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn event(kind: &str, version: u64, table: bool, first: bool) -> Bytes {
    let object = if table {
        json!({
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": version.to_string()},
            "columnDefinitions": if first { pod_columns() } else { json!([]) },
            "rows": [pod_row(version)],
        })
    } else {
        pod(version)
    };
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn async_stream(
    present: bool,
    start_version: u64,
    params: WatchParams,
    interval: Duration,
    table: bool,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let deadline = params.timeout.map(|t| tokio::time::Instant::now() + t);
    let replay = matches!(params.resource_version, None | Some(0));
    futures::stream::unfold(
        (start_version, replay, true),
        move |(version, replay, first)| async move {
            if !present {
                // Nothing will ever change in an empty namespace: hold the
                // stream open until the deadline, like an idle watch.
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending::<()>().await,
                }
                return None;
            }
            if replay {
                return Some((
                    Ok(event("ADDED", version, table, first)),
                    (version, false, false),
                ));
            }
            let next = tokio::time::Instant::now() + interval;
            if deadline.is_some_and(|d| d <= next) {
                if let Some(d) = deadline {
                    tokio::time::sleep_until(d).await;
                }
                return None;
            }
            tokio::time::sleep_until(next).await;
            let version = version + 1;
            Some((
                Ok(event("MODIFIED", version, table, first)),
                (version, false, false),
            ))
        },
    )
}

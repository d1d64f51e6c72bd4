//! The Kubernetes vocabulary the product speaks, in one place: pure types
//! and functions, no I/O. The authz service, the audit forwarder and the
//! development stand-ins all use these; the stand-in apiserver keeps its own
//! reading of `Impersonate-*` lines, so that it stays an independent check
//! of what the product writes.
//!
//! - [`status`]: the `meta/v1` `Status` body of an error response.
//! - [`user_info`]: `authentication.k8s.io/v1` `UserInfo` and the groups the
//!   apiserver adds.
//! - [`request_info`]: verb, resource, namespace and name of a request
//!   path, as the apiserver's request-info resolver reads them.
//! - [`impersonation`]: the `Impersonate-*` header names, the encoding of
//!   extra keys, and what a request asks to act as.
//! - [`access_review`]: `SubjectAccessReview` bodies and the `Forbidden`
//!   status the apiserver answers for a denied request.

pub mod access_review;
pub mod impersonation;
pub mod request_info;
pub mod status;
pub mod user_info;

pub use status::Status;
pub use user_info::UserInfo;

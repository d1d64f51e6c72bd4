//! Why a request is denied: a fixed set of reasons, each with a short code
//! for logs and metrics and the HTTP status kubectl needs to see.

/// A denial reason. The code is stable: dashboards and alerts use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DenyReason {
    /// The request carried an `Impersonate-*` header of its own.
    #[error("client-supplied impersonation headers are not allowed")]
    ImpersonationRefused,
    #[error("no bearer token")]
    MissingToken,
    #[error("malformed bearer token")]
    MalformedToken,
    #[error("signing algorithm refused")]
    AlgorithmRefused,
    #[error("token issuer is not trusted")]
    UnknownIssuer,
    #[error("no key with the token's key id")]
    UnknownKey,
    #[error("bad token signature")]
    BadSignature,
    #[error("issuer keys unavailable")]
    KeysUnavailable,
    #[error("token audience does not match")]
    AudienceMismatch,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("registered claim has the wrong type")]
    InvalidClaim,
    #[error("required claim missing or different")]
    RequiredClaim,
    #[error("email not verified")]
    EmailNotVerified,
    #[error("username claim missing or not a string")]
    UsernameClaim,
    #[error("groups claim is not a string or array of strings")]
    GroupsClaim,
    #[error("uid claim is not a string")]
    UidClaim,
    /// A CEL claim mapping errored, returned the wrong type, gave an empty
    /// username, or produced an identity too large to send upstream.
    #[error("claim mapping expression failed")]
    ClaimExpression,
    /// A CEL claim or user validation rule was false or errored.
    #[error("validation rule failed")]
    ValidationRule,
    #[error("identity contains characters not allowed in a header")]
    InvalidIdentity,
    #[error("identity uses the reserved system: prefix")]
    SystemIdentity,
    #[error("token review rejected the token")]
    PassthroughRejected,
    #[error("token review unavailable")]
    PassthroughUnavailable,
    #[error("upstream credentials unavailable")]
    UpstreamTokenUnavailable,
    /// A SubjectAccessReview said the caller may not act as what it asked.
    #[error("impersonation denied by a subject access review")]
    ImpersonationDenied,
    /// A `system:` user or group, or an extra key the proxy writes itself,
    /// was asked for; refused before any review.
    #[error("impersonation of a reserved identity")]
    ImpersonationReserved,
    #[error("too many impersonation header values")]
    ImpersonationTooManyValues,
    /// Impersonation headers that cannot be read unambiguously.
    #[error("malformed impersonation headers")]
    ImpersonationMalformed,
    /// Groups, extras or a uid without a user, which the apiserver answers
    /// with 500.
    #[error("impersonation without a user")]
    ImpersonationWithoutUser,
    /// A SubjectAccessReview failed or did not answer in time.
    #[error("impersonation reviews unavailable")]
    ImpersonationUnavailable,
}

impl DenyReason {
    /// Short, fixed code for logs and the `reason` metric label.
    pub fn code(self) -> &'static str {
        match self {
            DenyReason::ImpersonationRefused => "impersonation_refused",
            DenyReason::MissingToken => "missing_token",
            DenyReason::MalformedToken => "malformed_token",
            DenyReason::AlgorithmRefused => "algorithm_refused",
            DenyReason::UnknownIssuer => "unknown_issuer",
            DenyReason::UnknownKey => "unknown_key",
            DenyReason::BadSignature => "bad_signature",
            DenyReason::KeysUnavailable => "keys_unavailable",
            DenyReason::AudienceMismatch => "audience_mismatch",
            DenyReason::Expired => "expired",
            DenyReason::NotYetValid => "not_yet_valid",
            DenyReason::InvalidClaim => "invalid_claim",
            DenyReason::RequiredClaim => "required_claim",
            DenyReason::EmailNotVerified => "email_not_verified",
            DenyReason::UsernameClaim => "username_claim",
            DenyReason::GroupsClaim => "groups_claim",
            DenyReason::UidClaim => "uid_claim",
            DenyReason::ClaimExpression => "claim_expression",
            DenyReason::ValidationRule => "validation_rule",
            DenyReason::InvalidIdentity => "invalid_identity",
            DenyReason::SystemIdentity => "system_identity",
            DenyReason::PassthroughRejected => "passthrough_rejected",
            DenyReason::PassthroughUnavailable => "passthrough_unavailable",
            DenyReason::UpstreamTokenUnavailable => "upstream_token_unavailable",
            DenyReason::ImpersonationDenied => "impersonation_denied",
            DenyReason::ImpersonationReserved => "impersonation_reserved",
            DenyReason::ImpersonationTooManyValues => "impersonation_too_many_values",
            DenyReason::ImpersonationMalformed => "impersonation_malformed",
            DenyReason::ImpersonationWithoutUser => "impersonation_without_user",
            DenyReason::ImpersonationUnavailable => "impersonation_unavailable",
        }
    }

    /// HTTP status of the denied response: 403 for refused impersonation,
    /// 503 when the service cannot decide for lack of its own dependencies,
    /// 401 for every problem with the caller's credentials; impersonation
    /// headers too many (431), unreadable (400), or without a user (500, as
    /// the apiserver answers).
    pub fn http_status(self) -> u16 {
        match self {
            DenyReason::ImpersonationRefused
            | DenyReason::ImpersonationDenied
            | DenyReason::ImpersonationReserved => 403,
            DenyReason::ImpersonationTooManyValues => 431,
            DenyReason::ImpersonationMalformed => 400,
            DenyReason::ImpersonationWithoutUser => 500,
            DenyReason::KeysUnavailable
            | DenyReason::PassthroughUnavailable
            | DenyReason::UpstreamTokenUnavailable
            | DenyReason::ImpersonationUnavailable => 503,
            _ => 401,
        }
    }

    /// Every reason, for tests and for pre-registering metric series.
    pub const ALL: [DenyReason; 30] = [
        DenyReason::ImpersonationRefused,
        DenyReason::MissingToken,
        DenyReason::MalformedToken,
        DenyReason::AlgorithmRefused,
        DenyReason::UnknownIssuer,
        DenyReason::UnknownKey,
        DenyReason::BadSignature,
        DenyReason::KeysUnavailable,
        DenyReason::AudienceMismatch,
        DenyReason::Expired,
        DenyReason::NotYetValid,
        DenyReason::InvalidClaim,
        DenyReason::RequiredClaim,
        DenyReason::EmailNotVerified,
        DenyReason::UsernameClaim,
        DenyReason::GroupsClaim,
        DenyReason::UidClaim,
        DenyReason::ClaimExpression,
        DenyReason::ValidationRule,
        DenyReason::InvalidIdentity,
        DenyReason::SystemIdentity,
        DenyReason::PassthroughRejected,
        DenyReason::PassthroughUnavailable,
        DenyReason::UpstreamTokenUnavailable,
        DenyReason::ImpersonationDenied,
        DenyReason::ImpersonationReserved,
        DenyReason::ImpersonationTooManyValues,
        DenyReason::ImpersonationMalformed,
        DenyReason::ImpersonationWithoutUser,
        DenyReason::ImpersonationUnavailable,
    ];
}

/// A denial with, where the fixed body of its reason would say too little,
/// the `Status` to answer instead (the apiserver's own message for a
/// forbidden impersonation, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub reason: DenyReason,
    pub status: Option<crate::k8s::Status>,
}

impl Denial {
    pub fn with_status(reason: DenyReason, status: crate::k8s::Status) -> Self {
        Denial {
            reason,
            status: Some(status),
        }
    }
}

impl From<DenyReason> for Denial {
    fn from(reason: DenyReason) -> Self {
        Denial {
            reason,
            status: None,
        }
    }
}

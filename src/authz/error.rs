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
        }
    }

    /// HTTP status of the denied response: 403 for refused impersonation,
    /// 503 when the service cannot decide for lack of its own dependencies,
    /// 401 for every problem with the caller's credentials.
    pub fn http_status(self) -> u16 {
        match self {
            DenyReason::ImpersonationRefused => 403,
            DenyReason::KeysUnavailable
            | DenyReason::PassthroughUnavailable
            | DenyReason::UpstreamTokenUnavailable => 503,
            _ => 401,
        }
    }

    /// Every reason, for tests and for pre-registering metric series.
    pub const ALL: [DenyReason; 24] = [
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
    ];
}

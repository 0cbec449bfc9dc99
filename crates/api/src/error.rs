//! Every way a request can fail, with its HTTP status and stable code.

use crate::wire::ErrorBody;
use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use exo_chain::MempoolError;
use exo_ledger::Rejection;

/// Why the API refused or could not answer a request.
///
/// Refusals of the request are 4xx; a node that cannot answer is 5xx. The code (see
/// [`ApiError::code`]) is what scripts match on; the message is for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("request body is over the {max}-byte limit")]
    BodyTooLarge { max: usize },
    #[error("request body could not be read: {0}")]
    BodyUnreadable(String),
    #[error("request body is not JSON of the form {{\"tx\": \"<hex>\"}}: {0}")]
    BadJson(String),
    #[error("transaction is not valid hex: {0}")]
    BadHex(String),
    #[error("transaction does not decode: {0}")]
    BadEncoding(String),
    /// A check the ledger would also make, failed before the transaction reached the mempool.
    #[error("{0}")]
    Rejected(Rejection),
    #[error("nonce {got} is more than {max_ahead} ahead of the account's next nonce {expected}")]
    NonceTooFar {
        expected: u64,
        got: u64,
        max_ahead: u64,
    },
    #[error("mempool refused the transaction: {0}")]
    Mempool(MempoolError),
    #[error("transaction {0} is already in a finalized block")]
    AlreadyFinalized(String),
    #[error("{0:?} is not a 64-character hex address")]
    BadAddress(String),
    #[error("{0:?} is not a 64-character hex transaction hash")]
    BadHash(String),
    #[error("{0:?} is not a block height")]
    BadHeight(String),
    #[error("transaction {0} is unknown to this node")]
    TxNotFound(String),
    #[error("block {0} is not finalized on this node")]
    BlockNotFound(u64),
    #[error("no route for {0}")]
    RouteNotFound(String),
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("too many open event streams (limit {0})")]
    TooManyStreams(usize),
    #[error("node state is unavailable: {0}")]
    Unavailable(String),
    #[error("node did not answer within {0} ms")]
    Timeout(u64),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::BodyUnreadable(_) => "body_unreadable",
            Self::BadJson(_) => "bad_json",
            Self::BadHex(_) => "bad_hex",
            Self::BadEncoding(_) => "bad_encoding",
            Self::Rejected(rejection) => rejection.code(),
            Self::NonceTooFar { .. } => "nonce_too_far",
            Self::Mempool(err) => match err {
                MempoolError::Full(_) => "mempool_full",
                MempoolError::SenderFull(_) => "sender_full",
                MempoolError::Duplicate => "duplicate",
                MempoolError::Underpriced { .. } => "underpriced",
            },
            Self::AlreadyFinalized(_) => "already_finalized",
            Self::BadAddress(_) => "bad_address",
            Self::BadHash(_) => "bad_hash",
            Self::BadHeight(_) => "bad_height",
            Self::TxNotFound(_) | Self::BlockNotFound(_) | Self::RouteNotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RateLimited { .. } => "rate_limited",
            Self::TooManyStreams(_) => "too_many_streams",
            Self::Unavailable(_) => "unavailable",
            Self::Timeout(_) => "timeout",
            Self::Internal(_) => "internal",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BodyTooLarge { .. } | Self::Rejected(Rejection::Oversize { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::BodyUnreadable(_)
            | Self::BadJson(_)
            | Self::BadHex(_)
            | Self::BadEncoding(_)
            | Self::Rejected(_)
            | Self::NonceTooFar { .. }
            | Self::BadAddress(_)
            | Self::BadHash(_)
            | Self::BadHeight(_) => StatusCode::BAD_REQUEST,
            Self::Mempool(MempoolError::Duplicate | MempoolError::Underpriced { .. })
            | Self::AlreadyFinalized(_) => StatusCode::CONFLICT,
            Self::Mempool(MempoolError::Full(_) | MempoolError::SenderFull(_))
            | Self::RateLimited { .. }
            | Self::TooManyStreams(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::TxNotFound(_) | Self::BlockNotFound(_) | Self::RouteNotFound(_) => {
                StatusCode::NOT_FOUND
            }
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) | Self::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.code().to_string(),
            message: self.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body())).into_response();
        if let Self::RateLimited { retry_after_secs } = self {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs.max(1)),
            );
        }
        response
    }
}

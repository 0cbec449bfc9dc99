//! Every way a request can fail, with its HTTP status and stable code.

use crate::wire::ErrorBody;
use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use exo_chain::MempoolError;
use exo_ledger::{Rejection, exec::Precheck};

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
    #[error("signed for another chain (this node is on {expected})")]
    WrongChain { expected: String },
    #[error("nonce {got} is more than {max_ahead} ahead of the account's next nonce {expected}")]
    NonceTooFar {
        expected: u64,
        got: u64,
        max_ahead: u64,
    },
    #[error("mempool refused the transaction: {0}")]
    Mempool(MempoolError),
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
    #[error("{text:?} is not a {what} id")]
    BadId { what: &'static str, text: String },
    #[error("{0:?} is not a 64-character hex hash")]
    BadContentHash(String),
    #[error("bad query: {0}")]
    BadQuery(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("this node has no blob store")]
    BlobsDisabled,
    #[error("blob is over the {max}-byte limit")]
    BlobTooLarge { max: u64 },
    #[error("the blob store is full (its limit is {max} bytes)")]
    StoreFull { max: u64 },
    #[error("blob {0} was corrupt on disk and has been deleted; upload it again")]
    BlobCorrupt(String),
    #[error("range not satisfiable: the blob has {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    #[error("the body hashes to {got}, not the expected {expected}")]
    HashMismatch { expected: String, got: String },
    #[error("{0}")]
    BadArchive(String),
    #[error("the archive's result digest {got} is not the unit's accepted digest {expected}")]
    DigestMismatch { expected: String, got: String },
    #[error("unit {unit} of job {job} has no accepted result yet")]
    NotAccepted { job: u64, unit: u32 },
    /// A request that conflicts with the state of what it names.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("storage error: {0}")]
    Storage(String),
    /// A request that must be signed came without a signature.
    #[error("{0}")]
    Unsigned(String),
    #[error("{0:?} is not a hex ed25519 signature")]
    BadSignature(String),
    /// A signed request whose signer may not do what it asks.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// The API is serving as many requests as it may at once.
    #[error("the node is busy (at most {0} requests at once); retry shortly")]
    Busy(usize),
    #[error("the request took longer than {0} ms")]
    RequestTimeout(u64),
    #[error("bad path: {0}")]
    BadPath(String),
    #[error("bad header: {0}")]
    BadHeader(String),
    #[error("the uploader holds {held} bytes of blobs on this node; its quota is {max}")]
    QuotaExceeded { held: u64, max: u64 },
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
            Self::WrongChain { .. } => "wrong_chain",
            Self::NonceTooFar { .. } => "nonce_too_far",
            Self::Mempool(err) => match err {
                MempoolError::Full { .. } => "mempool_full",
                MempoolError::SenderFull(_) => "sender_full",
                MempoolError::Duplicate => "duplicate",
                MempoolError::Underpriced { .. } => "underpriced",
                MempoolError::Stale { .. } => "replayed_nonce",
                MempoolError::TooFarAhead { .. } => "nonce_too_far",
            },
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
            Self::BadId { .. } => "bad_id",
            Self::BadContentHash(_) => "bad_hash",
            Self::BadQuery(_) => "bad_query",
            Self::NotFound(_) => "not_found",
            Self::BlobsDisabled => "blobs_disabled",
            Self::BlobTooLarge { .. } => "blob_too_large",
            Self::StoreFull { .. } => "store_full",
            Self::BlobCorrupt(_) => "blob_corrupt",
            Self::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            Self::HashMismatch { .. } => "hash_mismatch",
            Self::BadArchive(_) => "bad_archive",
            Self::DigestMismatch { .. } => "digest_mismatch",
            Self::NotAccepted { .. } => "not_accepted",
            Self::Conflict { code, .. } => code,
            Self::Storage(_) => "storage",
            Self::Unsigned(_) => "unsigned",
            Self::BadSignature(_) => "bad_signature",
            Self::Forbidden { code, .. } => code,
            Self::Busy(_) => "busy",
            Self::RequestTimeout(_) => "request_timeout",
            Self::BadPath(_) => "bad_path",
            Self::BadHeader(_) => "bad_header",
            Self::QuotaExceeded { .. } => "quota_exceeded",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BodyTooLarge { .. }
            | Self::BlobTooLarge { .. }
            | Self::Rejected(Rejection::Exec(Precheck::Oversize { .. })) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::BodyUnreadable(_)
            | Self::BadJson(_)
            | Self::BadHex(_)
            | Self::BadEncoding(_)
            | Self::Rejected(_)
            | Self::WrongChain { .. }
            | Self::NonceTooFar { .. }
            | Self::Mempool(MempoolError::Stale { .. } | MempoolError::TooFarAhead { .. })
            | Self::BadAddress(_)
            | Self::BadHash(_)
            | Self::BadHeight(_)
            | Self::BadId { .. }
            | Self::BadContentHash(_)
            | Self::BadQuery(_)
            | Self::HashMismatch { .. }
            | Self::BadArchive(_)
            | Self::BadSignature(_)
            | Self::BadPath(_)
            | Self::BadHeader(_) => StatusCode::BAD_REQUEST,
            Self::Unsigned(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Mempool(MempoolError::Duplicate | MempoolError::Underpriced { .. })
            | Self::DigestMismatch { .. }
            | Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Mempool(MempoolError::Full { .. } | MempoolError::SenderFull(_))
            | Self::RateLimited { .. }
            | Self::TooManyStreams(_)
            | Self::Busy(_)
            | Self::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::TxNotFound(_)
            | Self::BlockNotFound(_)
            | Self::RouteNotFound(_)
            | Self::NotFound(_)
            | Self::NotAccepted { .. } => StatusCode::NOT_FOUND,
            Self::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::StoreFull { .. } => StatusCode::INSUFFICIENT_STORAGE,
            Self::BlobsDisabled => StatusCode::SERVICE_UNAVAILABLE,
            Self::BlobCorrupt(_) | Self::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
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
        match self {
            Self::Busy(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
            }
            Self::RateLimited { retry_after_secs } => {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs.max(1)),
                );
            }
            Self::RangeNotSatisfiable { size } => {
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, value);
                }
            }
            _ => {}
        }
        response
    }
}

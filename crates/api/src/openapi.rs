//! The OpenAPI 3.1 document served at `GET /v1/openapi.json`, derived from the code rather
//! than written beside it.
//!
//! Its operations are the handlers' `#[utoipa::path]` attributes, listed once with the router
//! (`crate::server`), so a route is served and described or neither. Their bodies are the
//! [`crate::wire`] types' derived schemas. Their error answers are [`ApiError`] values: each
//! route names the errors it can give (the types below), and the statuses, the codes and the
//! body shape come from [`ApiError::status`] and [`ApiError::code`], never from a table of
//! their own; the refusals of the layers every request passes through (the rate limit, the
//! bound on requests at once, the handler's time bound, a caught panic) are added to every
//! route. [`Finish`] then states what utoipa leaves out: the range of every unsigned integer,
//! and that a `HEAD` answer has no body.
//!
//! The query parameters are described by the types of this module ([`Page`], ...): the routes
//! parse their queries themselves (`crate::market::Query`) to refuse in the API's own error
//! format, and the OpenAPI tests check that every parameter described here is accepted.

use crate::{ApiError, ApiLimits, wire::schema};
use exo_chain::MempoolError;
use exo_ledger::{Rejection, exec::Precheck};
use std::collections::{BTreeMap, BTreeSet};
use utoipa::{
    IntoParams, Modify,
    openapi::{
        ContentBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder,
        header::Header,
        path::Operation,
        schema::{
            AdditionalProperties, AllOfBuilder, ArrayItems, KnownFormat, Object, ObjectBuilder,
            Schema, SchemaFormat, Type,
        },
    },
};

/// The document for a node with `limits` (its `limit` parameters bounded by the node's own
/// page bound).
pub fn document(limits: &ApiLimits) -> OpenApi {
    let mut doc = <crate::server::ApiDoc as utoipa::OpenApi>::openapi();
    for (_, item) in doc.paths.paths.iter_mut() {
        for operation in operations(item) {
            for parameter in operation.parameters.iter_mut().flatten() {
                if parameter.name == "limit"
                    && let Some(RefOr::T(Schema::Object(object))) = parameter.schema.as_mut()
                {
                    object.maximum = Some(number(limits.max_page_items));
                }
            }
        }
    }
    doc
}

/// Every operation of a path item.
fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

fn number(value: u64) -> utoipa::Number {
    utoipa::Number::UInt(usize::try_from(value).unwrap_or(usize::MAX))
}

/// `?from=&limit=` of a list.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Where the page starts: an id for providers, offers and open jobs, an index for apps,
    /// a provider's work and a job's units; 0 if absent. For jobs since a height, the newest
    /// id of the page (they come newest first), the newest job if absent.
    pub from: Option<u64>,
    /// Items of the page, 1 to the node's bound (the maximum here); 100, or the bound if
    /// lower, when absent.
    #[param(minimum = 1)]
    pub limit: Option<u64>,
}

/// The filters of `GET /v1/jobs`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobFilter {
    /// Only this account's jobs.
    #[param(value_type = Option<schema::Address>)]
    pub requester: Option<String>,
    /// Jobs submitted at this height or later, newest first (a receipt gives the height of
    /// the transaction that created a job), `limit` job records read per page (with
    /// `requester`, a page may hold fewer of its jobs); without it, the open jobs by id.
    pub height: Option<u64>,
}

/// The filter of `GET /v1/events`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventFilter {
    /// Only this provider's `assignment` events (blocks are always sent).
    pub provider: Option<u64>,
    /// `false`: no `assignment` events at all (`provider` then filters nothing), only blocks:
    /// what a worker that reads its work list on each block needs. Default `true`.
    pub assignments: Option<bool>,
}

/// The query of `PUT /v1/blobs`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BlobQuery {
    /// BLAKE3 of the body, which the signature covers.
    #[param(value_type = schema::Hash)]
    pub hash: String,
}

/// Examples of one or more errors, for [`route_errors!`].
trait Examples {
    fn add_to(self, errors: &mut Vec<ApiError>);
}

impl Examples for ApiError {
    fn add_to(self, errors: &mut Vec<ApiError>) {
        errors.push(self);
    }
}

impl<const N: usize> Examples for [ApiError; N] {
    fn add_to(self, errors: &mut Vec<ApiError>) {
        errors.extend(self);
    }
}

/// A type per route whose [`utoipa::IntoResponses`] is the route's error answers: one
/// response per status among the listed errors' [`ApiError::status`], naming their codes.
macro_rules! route_errors {
    ($($(#[$doc:meta])* $name:ident: [$($error:expr),* $(,)?];)*) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                #[allow(unused_mut)]
                let mut errors = Vec::new();
                $( Examples::add_to($error, &mut errors); )*
                error_responses(&errors)
            }
        }
    )*};
}

/// The refusals of the layers every request passes through (see [`Finish`]).
fn layers() -> [ApiError; 4] {
    [
        ApiError::RateLimited {
            retry_after_secs: 1,
        },
        ApiError::Busy(0),
        ApiError::RequestTimeout(0),
        // A handler that panicked (the panic is caught and answered).
        ApiError::Internal(String::new()),
    ]
}

/// A read of finalized state: the store failed or did not answer in time, or a record did
/// not decode (the node's fault, never the client's).
fn reads() -> [ApiError; 3] {
    [
        ApiError::Unavailable(String::new()),
        ApiError::Timeout(0),
        ApiError::Internal(String::new()),
    ]
}

/// A path parameter that is not UTF-8 once percent-decoded.
fn bad_path() -> ApiError {
    ApiError::BadPath(String::new())
}

fn bad_query() -> ApiError {
    ApiError::BadQuery(String::new())
}

/// A body read by the handler: over the bound, or cut off.
fn body() -> [ApiError; 2] {
    [
        ApiError::BodyTooLarge { max: 0 },
        ApiError::BodyUnreadable(String::new()),
    ]
}

/// The blob store: absent on this node, or failing.
fn store() -> [ApiError; 3] {
    [
        ApiError::BlobsDisabled,
        ApiError::Storage(String::new()),
        ApiError::BlobCorrupt(String::new()),
    ]
}

fn not_found() -> ApiError {
    ApiError::NotFound(String::new())
}

fn bad_address() -> ApiError {
    ApiError::BadAddress(String::new())
}

fn bad_id() -> ApiError {
    ApiError::BadId {
        what: "",
        text: String::new(),
    }
}

/// The refusals of a transaction's prechecks (the ledger's own, against finalized state).
fn prechecks() -> [ApiError; 5] {
    let zero = exo_types::Amount(0);
    [
        Precheck::BadSignature,
        Precheck::Oversize { size: 0, max: 0 },
        Precheck::ReplayedNonce {
            expected: 0,
            got: 0,
        },
        Precheck::FeeTooLow {
            min: zero,
            got: zero,
        },
        Precheck::InsufficientFunds {
            needed: zero,
            available: zero,
        },
    ]
    .map(|precheck| ApiError::Rejected(Rejection::Exec(precheck)))
}

fn mempool() -> [ApiError; 6] {
    let zero = exo_types::Amount(0);
    [
        MempoolError::Full { lowest: zero },
        MempoolError::SenderFull(0),
        MempoolError::Duplicate,
        MempoolError::Underpriced {
            nonce: 0,
            fee: zero,
        },
        MempoolError::Stale {
            expected: 0,
            got: 0,
        },
        MempoolError::TooFarAhead {
            expected: 0,
            got: 0,
            max_ahead: 0,
        },
    ]
    .map(ApiError::Mempool)
}

/// A signed request: without a signature, with one that is not hex of a signature, or by a
/// signer who may not ask it.
fn forbidden(code: &'static str) -> ApiError {
    ApiError::Forbidden {
        code,
        message: String::new(),
    }
}

fn conflict(code: &'static str) -> ApiError {
    ApiError::Conflict {
        code,
        message: String::new(),
    }
}

route_errors! {
    /// `GET /v1/status`, `GET /v1/openapi.json`, `GET /metrics`: nothing of their own.
    NoErrors: [];
    /// `POST /v1/txs`.
    SubmitErrors: [
        body(),
        ApiError::BadJson(String::new()),
        ApiError::BadHex(String::new()),
        ApiError::BadEncoding(String::new()),
        prechecks(),
        ApiError::WrongChain { expected: String::new() },
        ApiError::NonceTooFar { expected: 0, got: 0, max_ahead: 0 },
        mempool(),
        reads(),
    ];
    /// `GET /v1/txs/{hash}`.
    ReceiptErrors: [bad_path(), ApiError::BadHash(String::new()), ApiError::TxNotFound(String::new()), reads()];
    /// `GET /v1/accounts/{address}`: an account never used reads as empty, never 404.
    AccountErrors: [bad_path(), bad_address(), reads()];
    /// `GET /v1/accounts/{address}/provider`.
    ProviderOfErrors: [bad_path(), bad_address(), not_found(), reads()];
    /// `GET /v1/blocks/{height}`: the block store is asked within the node's time bound.
    BlockErrors: [bad_path(), ApiError::BadHeight(String::new()), ApiError::BlockNotFound(0), ApiError::Timeout(0)];
    /// `GET /dashboard/{file}`.
    DashboardErrors: [bad_path(), not_found()];
    /// `GET /v1/events`.
    EventsErrors: [bad_query(), ApiError::TooManyStreams(0)];
    /// The lists: `GET /v1/providers`, `/v1/market/offers`, `/v1/market/depth`, `/v1/apps`.
    ListErrors: [bad_query(), reads()];
    /// `GET /v1/jobs`.
    JobsErrors: [bad_query(), bad_address(), reads()];
    /// A record by id: `GET /v1/providers/{id}`.
    RecordErrors: [bad_path(), bad_id(), not_found(), reads()];
    /// A record by id and a page of its items: `GET /v1/providers/{id}/work`, `/v1/jobs/{id}`.
    RecordPageErrors: [bad_path(), bad_id(), bad_query(), not_found(), reads()];
    /// `GET /v1/apps/{hash}/{developer}`.
    AppErrors: [bad_path(), ApiError::BadHash(String::new()), bad_address(), not_found(), reads()];
    /// `PUT /v1/blobs`: checked in order, the query, the declared length, the signature, the
    /// uploader's funds, its rate and quota, then the bytes against their hash.
    PutBlobErrors: [
        store(),
        bad_query(),
        ApiError::BadContentHash(String::new()),
        ApiError::BadHeader(String::new()),
        ApiError::BlobTooLarge { max: 0 },
        ApiError::Unsigned(String::new()),
        bad_address(),
        ApiError::BadSignature(String::new()),
        forbidden("bad_signer"),
        forbidden("unfunded"),
        reads(),
        ApiError::QuotaExceeded { held: 0, max: 0 },
        ApiError::StoreFull { max: 0 },
        ApiError::HashMismatch { expected: String::new(), got: String::new() },
        ApiError::BodyUnreadable(String::new()),
    ];
    /// `GET /v1/blobs/{hash}`.
    GetBlobErrors: [
        store(),
        bad_path(),
        ApiError::BadContentHash(String::new()),
        not_found(),
        ApiError::RangeNotSatisfiable { size: 0 },
    ];
    /// `HEAD /v1/blobs/{hash}`.
    HeadBlobErrors: [store(), bad_path(), ApiError::BadContentHash(String::new()), not_found()];
    /// `GET /v1/outputs/{job}/{unit}`. A miss is asked of the peers, whose archive is checked
    /// as an upload would be: its refusals are this route's too.
    GetOutputsErrors: [
        store(),
        bad_path(),
        bad_id(),
        bad_query(),
        ApiError::NotAccepted { job: 0, unit: 0 },
        not_found(),
        reads(),
        ApiError::BadArchive(String::new()),
        ApiError::DigestMismatch { expected: String::new(), got: String::new() },
        conflict("too_many_candidates"),
        ApiError::BlobTooLarge { max: 0 },
    ];
    /// `PUT /v1/outputs/{job}/{unit}`.
    PutOutputsErrors: [
        store(),
        body(),
        bad_path(),
        bad_id(),
        bad_query(),
        not_found(),
        reads(),
        conflict("not_assigned"),
        conflict("unit_failed"),
        ApiError::Unsigned(String::new()),
        ApiError::BadSignature(String::new()),
        forbidden("not_a_replica"),
        ApiError::BlobTooLarge { max: 0 },
        ApiError::BadArchive(String::new()),
        ApiError::DigestMismatch { expected: String::new(), got: String::new() },
        conflict("too_many_candidates"),
    ];
    /// `PUT /v1/outputs/{job}/{unit}/replicas/{replica}`.
    PutReplicaArchiveErrors: [
        store(),
        bad_path(),
        bad_id(),
        bad_query(),
        ApiError::BadContentHash(String::new()),
        not_found(),
        reads(),
        conflict("not_assigned"),
        conflict("unit_failed"),
        ApiError::Unsigned(String::new()),
        ApiError::BadSignature(String::new()),
        forbidden("not_a_replica"),
        forbidden("unfunded"),
        ApiError::BlobTooLarge { max: 0 },
        ApiError::QuotaExceeded { held: 0, max: 0 },
        ApiError::StoreFull { max: 0 },
        ApiError::HashMismatch { expected: String::new(), got: String::new() },
        ApiError::BodyUnreadable(String::new()),
        ApiError::BadArchive(String::new()),
        ApiError::DigestMismatch { expected: String::new(), got: String::new() },
        conflict("too_many_candidates"),
    ];
    /// `POST /v1/outputs/batch`: errors of the whole request (each archive's own errors are in
    /// its answer, those of the single upload).
    PutOutputsBatchErrors: [
        store(),
        reads(),
        ApiError::Unsigned(String::new()),
        ApiError::BadAddress(String::new()),
        ApiError::BadSignature(String::new()),
        ApiError::BodyTooLarge { max: 0 },
        ApiError::BodyUnreadable(String::new()),
        ApiError::BadEncoding(String::new()),
        forbidden("bad_signer"),
        forbidden("unfunded"),
        ApiError::QuotaExceeded { held: 0, max: 0 },
        ApiError::StoreFull { max: 0 },
    ];
}

/// One response per status of `errors` (and of the layers'), each an [`crate::wire::ErrorBody`]
/// whose `error` is one of the codes of that status.
fn error_responses(errors: &[ApiError]) -> BTreeMap<String, RefOr<Response>> {
    let mut codes: BTreeMap<u16, BTreeSet<&'static str>> = BTreeMap::new();
    for error in errors.iter().chain(&layers()) {
        codes
            .entry(error.status().as_u16())
            .or_default()
            .insert(error.code());
    }
    codes
        .into_iter()
        .map(|(status, codes)| {
            let listed: Vec<String> = codes.iter().map(|code| format!("`{code}`")).collect();
            let body = AllOfBuilder::new()
                .item(Ref::from_schema_name("ErrorBody"))
                .item(
                    ObjectBuilder::new().property(
                        "error",
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .enum_values(Some(codes.iter().copied())),
                    ),
                );
            let mut response = ResponseBuilder::new()
                .description(listed.join(", "))
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(body)).build(),
                );
            if status == 429 {
                response = response.header(
                    "Retry-After",
                    Header::new(
                        ObjectBuilder::new()
                            .schema_type(Type::Integer)
                            .minimum(Some(1)),
                    ),
                );
            }
            (status.to_string(), response.build().into())
        })
        .collect()
}

/// What utoipa does not write: the bounds of unsigned integers (it gives a `u64` only its
/// minimum, and writes its format `u-int64`), and that a `HEAD` answer has no body.
#[derive(Debug)]
pub struct Finish;

impl Modify for Finish {
    fn modify(&self, doc: &mut OpenApi) {
        for (_, item) in doc.paths.paths.iter_mut() {
            if let Some(head) = item.head.as_mut() {
                for (_, response) in head.responses.responses.iter_mut() {
                    if let RefOr::T(response) = response {
                        response.content.clear();
                    }
                }
            }
            for operation in operations(item) {
                for parameter in operation.parameters.iter_mut().flatten() {
                    if let Some(schema) = parameter.schema.as_mut() {
                        bound_integers(schema);
                    }
                }
                let bodies = operation
                    .request_body
                    .iter_mut()
                    .flat_map(|body| body.content.values_mut());
                for content in bodies {
                    if let Some(schema) = content.schema.as_mut() {
                        bound_integers(schema);
                    }
                }
            }
        }
        if let Some(components) = doc.components.as_mut() {
            for (_, schema) in components.schemas.iter_mut() {
                bound_integers(schema);
            }
        }
    }
}

/// Gives every unsigned integer of `schema` its range and a conventional format name.
fn bound_integers(schema: &mut RefOr<Schema>) {
    let RefOr::T(schema) = schema else { return };
    match schema {
        Schema::Object(object) => {
            bound_integer(object);
            for (_, property) in object.properties.iter_mut() {
                bound_integers(property);
            }
            if let Some(additional) = object.additional_properties.as_deref_mut()
                && let AdditionalProperties::RefOr(inner) = additional
            {
                bound_integers(inner);
            }
        }
        Schema::Array(array) => {
            if let ArrayItems::RefOrSchema(items) = &mut array.items {
                bound_integers(items);
            }
        }
        Schema::OneOf(one_of) => one_of.items.iter_mut().for_each(bound_integers),
        Schema::AllOf(all_of) => all_of.items.iter_mut().for_each(bound_integers),
        Schema::AnyOf(any_of) => any_of.items.iter_mut().for_each(bound_integers),
        _ => {}
    }
}

fn bound_integer(object: &mut Object) {
    let (name, max) = match object.format {
        Some(SchemaFormat::KnownFormat(KnownFormat::UInt8)) => ("uint8", u64::from(u8::MAX)),
        Some(SchemaFormat::KnownFormat(KnownFormat::UInt16)) => ("uint16", u64::from(u16::MAX)),
        Some(SchemaFormat::KnownFormat(KnownFormat::UInt32)) => ("uint32", u64::from(u32::MAX)),
        Some(SchemaFormat::KnownFormat(KnownFormat::UInt64)) => ("uint64", u64::MAX),
        _ => return,
    };
    object.format = Some(SchemaFormat::Custom(name.to_string()));
    if object.minimum.is_none() {
        object.minimum = Some(number(0));
    }
    if object.maximum.is_none() {
        object.maximum = Some(number(max));
    }
}

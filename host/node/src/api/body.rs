//! Reading request bodies and parameters with errors a person can act on:
//! the content type is checked first (415), the size while reading (413),
//! then UTF-8 and the JSON shape (400, naming the field and position).
//! Unknown fields are refused by the body types themselves.

use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use super::ApiError;
use aether_service::ErrorCode;

/// The largest JSON body the API reads (commands are limited further by
/// their namespace's `max_command_bytes`).
pub(super) const MAX_JSON_BODY: usize = 8 << 20;

/// Requires the request's content type to be one of `accepted`.
pub(super) fn require_content_type(headers: &HeaderMap, accepted: &[&str]) -> Result<(), ApiError> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = given.split(';').next().unwrap_or("").trim();
    if accepted.iter().any(|a| essence.eq_ignore_ascii_case(a)) {
        return Ok(());
    }
    let given = if given.is_empty() { "none" } else { given };
    Err(ApiError::new(
        ErrorCode::UnsupportedContentType,
        format!(
            "the content type is {given}; send {}",
            accepted.join(" or ")
        ),
    ))
}

/// Refuses (413) a body whose declared `Content-Length` is over `limit`
/// before any of it is read.
pub(super) fn refuse_declared_over(headers: &HeaderMap, limit: usize) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => Err(ApiError::too_large(format!(
            "the request body is {length} bytes, more than the {limit}-byte limit"
        ))),
        _ => Ok(()),
    }
}

/// Reads an upload's body frame by frame into one buffer (sized from its
/// `Content-Length`, never beyond `limit`), refusing one larger than
/// `limit` bytes: each frame is copied once, as it arrives, so a large
/// upload never holds an async worker for one long copy. After each frame
/// it waits as long as `pace` says (the namespace's uploads are read at
/// most its `upload_bytes_per_sec`, `upload_pacing.rs`). `check_start`
/// sees the body's first bytes (up to `start_bytes`) as they arrive; its
/// error refuses the upload before the rest is read.
pub(super) async fn read_upload(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    (start_bytes, check_start): (usize, impl Fn(&[u8]) -> Result<(), ApiError>),
    pace: impl Fn(usize) -> std::time::Duration,
) -> Result<Vec<u8>, ApiError> {
    use http_body_util::BodyExt;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut buffer = Vec::with_capacity(declared.min(limit));
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(body_error(limit))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buffer.len() + data.len() > limit {
            return Err(ApiError::too_large(format!(
                "the request body is larger than {limit} bytes"
            )));
        }
        let checked = buffer.len() >= start_bytes;
        buffer.extend_from_slice(&data);
        if !checked {
            check_start(&buffer[..buffer.len().min(start_bytes)])?;
        }
        let wait = pace(data.len());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
    Ok(buffer)
}

/// Reads the whole body, refusing one larger than `limit` bytes.
pub(super) async fn read(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(body_error(limit))
}

/// The API error for a body that could not be read.
fn body_error<E>(limit: usize) -> impl Fn(E) -> ApiError
where
    E: std::error::Error + 'static,
{
    move |error| {
        let too_long = std::error::Error::source(&error)
            .is_some_and(|e| e.is::<http_body_util::LengthLimitError>())
            || error.to_string().contains("length limit exceeded");
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        while let Some(error) = cause {
            if let Some(slow) = error.downcast_ref::<crate::BodyTooSlow>() {
                return ApiError::new(ErrorCode::RequestTimeout, slow.to_string());
            }
            cause = error.source();
        }
        if too_long {
            ApiError::too_large(format!("the request body is larger than {limit} bytes"))
        } else {
            ApiError::malformed(format!("the request body could not be read: {error}"))
        }
    }
}

/// Reads a JSON body of type `T`.
pub(super) async fn json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    require_content_type(headers, &["application/json"])?;
    let bytes = read(body, MAX_JSON_BODY).await?;
    parse(&bytes)
}

/// Parses a JSON document of type `T`.
pub(super) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Err(error) = std::str::from_utf8(bytes) {
        return Err(ApiError::malformed(format!(
            "the body is not valid UTF-8 (at byte {})",
            error.valid_up_to()
        )));
    }
    let mut document = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut document).map_err(|error| {
        let path = error.path().to_string();
        let error = error.into_inner();
        if path == "." {
            ApiError::malformed(format!("the body is not the JSON expected: {error}"))
        } else {
            ApiError::malformed(format!("the body's `{path}` is wrong: {error}"))
        }
    })?;
    document.end().map_err(|error| {
        ApiError::malformed(format!("the body has more after its JSON: {error}"))
    })?;
    Ok(value)
}

/// Path parameters, or a 400 that says what was wrong with them.
pub(super) fn path<T>(path: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    path.map(|Path(value)| value).map_err(|rejection| {
        ApiError::malformed(format!("the path is invalid: {}", rejection.body_text()))
    })
}

/// A version or log position a read starts at or after, named
/// `parameter` in the 400 that refuses it: the largest `u64` is refused,
/// since no event can come after it and "the next one" would not fit.
pub(super) fn start_point(parameter: &str, value: u64) -> Result<u64, ApiError> {
    if value == u64::MAX {
        return Err(aether_service::past_any(parameter, value).into());
    }
    Ok(value)
}

/// Query parameters, or a 400 that says what was wrong with them.
pub(super) fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query.map(|Query(value)| value).map_err(|rejection| {
        ApiError::malformed(format!("the query is invalid: {}", rejection.body_text()))
    })
}

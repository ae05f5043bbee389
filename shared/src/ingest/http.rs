//! The HTTP edge of `ingest`: API Gateway HTTP API (v2) requests in, JSON responses out. All
//! error-to-status mapping happens here, once.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::json;
use tracing::info;

use super::{IngestCache, IngestOutcome, ingest_batch};
use crate::Deps;
use crate::events::{self, EnvelopeError, SIGNATURE_HEADER};

/// Seconds a client should wait before retrying after a 503.
const RETRY_AFTER_SECS: u32 = 5;

use super::request::body_bytes;
pub use super::request::request_time;

pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(Body::Text(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        "content-type",
        lambda_http::http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    json_response(status, &json!({ "error": message.into() }))
}

/// Routes the HTTP API: `POST /events`, `GET`/`POST /unsubscribe`, `GET`/`POST /steps/done`.
pub async fn handle(deps: &Deps, cache: &IngestCache, req: Request) -> Response<Body> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    // A stage name may prefix the path (`/prod/events`): routes are the last segments.
    let mut segments = path.rsplit('/');
    let route = segments.next().unwrap_or_default();
    let parent = segments.next().unwrap_or_default();
    match (req.method(), parent, route) {
        (&Method::POST, _, "events") => post_events(deps, cache, &req).await,
        (_, _, "events") => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "use POST /events with a JSON body",
        ),
        (_, _, "unsubscribe") => crate::delivery::unsubscribe::handle_http(deps, &req).await,
        (_, "steps", "done") => super::done::handle_http(deps, cache, &req).await,
        _ => error(StatusCode::NOT_FOUND, format!("no route for {path}")),
    }
}

async fn post_events(deps: &Deps, cache: &IngestCache, req: &Request) -> Response<Body> {
    let Some(now) = request_time(req) else {
        return error(
            StatusCode::BAD_REQUEST,
            "request has no receive time (requestContext.timeEpoch); send it through the HTTP API",
        );
    };
    let body = body_bytes(req.body());
    if body.len() > events::MAX_BODY_BYTES {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            EnvelopeError::TooLarge {
                size: body.len(),
                limit: events::MAX_BODY_BYTES,
            }
            .to_string(),
        );
    }
    if let Some(ct) = req.headers().get("content-type") {
        let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
        if !ct.starts_with("application/json") {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content-type must be application/json, got {ct:?}"),
            );
        }
    }
    let header = req
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    let secrets = deps.keys.signing.all();
    if let Err(e) = events::verify_any(&secrets, header, body, now.timestamp()) {
        return error(StatusCode::UNAUTHORIZED, e.to_string());
    }
    let parsed = match events::parse_batch(body, now) {
        Ok(p) => p,
        Err(e @ (EnvelopeError::TooLarge { .. } | EnvelopeError::TooManyEvents { .. })) => {
            return error(StatusCode::PAYLOAD_TOO_LARGE, e.to_string());
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let total = parsed.len();
    let outcome = ingest_batch(deps, cache, parsed, now).await;
    info!(
        events = total,
        accepted = outcome.accepted,
        duplicates = outcome.duplicates,
        rejected = outcome.rejected.len(),
        retry = outcome.retry.len(),
        "ingested batch"
    );
    outcome_response(&outcome)
}

/// 200 with the outcome; 503 + Retry-After when valid events were sent but none could be stored.
pub fn outcome_response(outcome: &IngestOutcome) -> Response<Body> {
    let body = serde_json::to_value(outcome).unwrap_or_default();
    let nothing_stored = outcome.accepted == 0 && outcome.duplicates == 0;
    if nothing_stored && !outcome.retry.is_empty() {
        let mut resp = json_response(StatusCode::SERVICE_UNAVAILABLE, &body);
        resp.headers_mut()
            .insert("retry-after", RETRY_AFTER_SECS.into());
        return resp;
    }
    json_response(StatusCode::OK, &body)
}

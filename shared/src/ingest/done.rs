//! `GET|POST /steps/done`: the "I've done this" link of onboarding emails (token and pages:
//! `delivery/done_link.rs`).
//!
//! `GET ?t=` only shows a confirmation page with a button: mail scanners prefetch links.
//! `POST` (form body `t=`) records `setup_step_completed` through the batch write path of
//! `POST /events` ([`ingest_batch`]), so the event is validated, de-duplicated and applied
//! exactly like one a client sent. Its id comes from the token: the same link posted again is
//! a duplicate, recorded once, and the page says it was already recorded.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use tracing::{error, info, warn};

use super::request::{body_bytes, request_time};
use super::{IngestCache, ingest_batch};
use crate::Deps;
use crate::delivery::done_link::{self, DoneTarget};
use crate::delivery::pages::{form_param, method_not_allowed, page_locale, retry_later};
use crate::events;
use crate::registry;

/// Largest accepted form body: a token is at most `done_link::MAX_TOKEN_LEN` characters, and
/// percent-encoding at most triples that.
pub const MAX_FORM_BYTES: usize = 3 * done_link::MAX_TOKEN_LEN + 16;

/// Serves `/steps/done`.
pub async fn handle_http(deps: &Deps, cache: &IngestCache, req: &Request) -> Response<Body> {
    match *req.method() {
        Method::GET => confirm(deps, req).await,
        Method::POST => record(deps, cache, req).await,
        _ => method_not_allowed(),
    }
}

fn verified(deps: &Deps, token: &str) -> Option<DoneTarget> {
    match done_link::verify(&deps.keys.links, token) {
        Ok(t) => Some(t),
        Err(e) => {
            info!(error = %e, "done link with an invalid token");
            None
        }
    }
}

async fn confirm(deps: &Deps, req: &Request) -> Response<Body> {
    let token = form_param(req.uri().query().unwrap_or_default(), "t").unwrap_or_default();
    let Some(target) = verified(deps, &token) else {
        return done_link::invalid_page(StatusCode::BAD_REQUEST);
    };
    let lang = page_locale(deps, &target.account_id, &target.contact_id).await;
    done_link::confirm_page(lang, &target.step, token.trim())
}

async fn record(deps: &Deps, cache: &IngestCache, req: &Request) -> Response<Body> {
    let body = body_bytes(req.body());
    if body.len() > MAX_FORM_BYTES {
        return done_link::invalid_page(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let body = String::from_utf8_lossy(body);
    if let Some(ct) = req.headers().get("content-type") {
        let ct = ct.to_str().unwrap_or_default().to_ascii_lowercase();
        if !ct.starts_with("application/x-www-form-urlencoded") {
            return done_link::invalid_page(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
    }
    // The page's form posts to its own URL, so the token is in the body and in the query.
    let token = form_param(&body, "t")
        .or_else(|| form_param(req.uri().query().unwrap_or_default(), "t"))
        .unwrap_or_default();
    let Some(target) = verified(deps, &token) else {
        return done_link::invalid_page(StatusCode::BAD_REQUEST);
    };
    let Some(now) = request_time(req) else {
        warn!("done link posted without a receive time (requestContext.timeEpoch)");
        return done_link::invalid_page(StatusCode::BAD_REQUEST);
    };
    // Through the event contract's own validation, as a `POST /events` body would be.
    let parsed = events::parse_event(&target.event(now).to_wire(), now);
    let outcome = ingest_batch(deps, cache, vec![parsed], now).await;
    let already = if outcome.accepted == 1 {
        false
    } else if outcome.duplicates == 1 {
        true
    } else if !outcome.retry.is_empty() {
        // Nothing is kept (the write path compensates): the visitor can press the button again.
        return retry_later();
    } else {
        // A token we signed for an event the contract refuses: a defect, not a visitor error.
        error!(account_id = %target.account_id, rejected = ?outcome.rejected, "done link event refused");
        return done_link::invalid_page(StatusCode::BAD_REQUEST);
    };
    info!(account_id = %target.account_id, step = %target.step, already, "onboarding step marked done");
    let next = registry::next_onboarding_step(deps, &target.account_id, Some(&target.step))
        .await
        .unwrap_or_else(|e| {
            warn!(account_id = %target.account_id, error = %e, "next onboarding step not read");
            None
        });
    let lang = page_locale(deps, &target.account_id, &target.contact_id).await;
    done_link::recorded_page(lang, &target.step, next.as_deref(), already)
}

//! What every HTTP route reads from a request, apart from the routing (which calls the routes).

use chrono::{DateTime, Utc};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt};

/// "Now" of an HTTP request: API Gateway's receive time, never the wall clock.
pub fn request_time(req: &Request) -> Option<DateTime<Utc>> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) if ctx.time_epoch > 0 => {
            DateTime::from_timestamp_millis(ctx.time_epoch)
        }
        _ => None,
    }
}

pub(super) fn body_bytes(body: &Body) -> &[u8] {
    match body {
        Body::Empty => &[],
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

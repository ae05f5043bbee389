//! The `ingest` Lambda entry: one binary serves the HTTP API and the SES-feedback SNS topic, so
//! the payload is routed by shape.

use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::encodings::Body as EventBody;
use aws_lambda_events::sns::SnsEvent;
use lambda_http::request::LambdaRequest;
use lambda_http::{Body, Request, Response};
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use tracing::Instrument;

use super::IngestCache;
use crate::Deps;

/// The ingest function's state for the life of a container.
pub struct Ingest {
    pub deps: Deps,
    /// Firsts and zones learned by earlier batches.
    pub cache: IngestCache,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestLambdaError {
    #[error("unrecognised event: expected an HTTP API request or an SNS notification")]
    UnknownEvent,
    #[error("bad SNS event: {0}")]
    BadSns(String),
    #[error("{0}")]
    Feedback(String),
}

impl Ingest {
    pub fn new(deps: Deps) -> Self {
        Ingest {
            deps,
            cache: IngestCache::default(),
        }
    }

    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, IngestLambdaError> {
        let request_id = event.context.request_id.clone();
        let payload = event.payload;
        if is_sns(&payload) {
            let sns: SnsEvent = serde_json::from_value(payload)
                .map_err(|e| IngestLambdaError::BadSns(e.to_string()))?;
            let span = tracing::info_span!("ingest_feedback", request_id = %request_id);
            return self.feedback(sns).instrument(span).await;
        }
        if let Some(problem) = unconvertible(&payload) {
            // The request conversion below would panic on it: answer as the HTTP edge does.
            let body = serde_json::json!({ "error": problem });
            let mut resp = Response::new(Body::Text(body.to_string()));
            *resp.status_mut() = lambda_http::http::StatusCode::BAD_REQUEST;
            return Ok(serde_json::to_value(to_apigw(resp)).unwrap_or_default());
        }
        let lambda_req: LambdaRequest =
            serde_json::from_value(payload).map_err(|_| IngestLambdaError::UnknownEvent)?;
        let req: Request = lambda_req.into();
        let span = tracing::info_span!("ingest_http", request_id = %request_id);
        let resp = self.http(req).instrument(span).await;
        Ok(serde_json::to_value(to_apigw(resp)).unwrap_or_default())
    }

    pub async fn http(&self, req: Request) -> Response<Body> {
        super::http::handle(&self.deps, &self.cache, req).await
    }

    /// SES feedback (bounces, complaints, deliveries, opens, clicks) published through SNS.
    /// Unparsable records are skipped; only a retryable store error fails the invocation.
    pub async fn feedback(&self, sns: SnsEvent) -> Result<Value, IngestLambdaError> {
        crate::delivery::feedback::handle_sns(&self.deps, &sns)
            .await
            .map(|summary| serde_json::to_value(summary).unwrap_or_default())
            .map_err(|e| IngestLambdaError::Feedback(e.to_string()))
    }
}

/// What `lambda_http`'s conversion of an HTTP API payload panics on instead of failing: a URL it
/// cannot build (a `"`, a space or a control byte in the path, query string or host) and a body
/// flagged base64 that is not. `None` for anything else.
fn unconvertible(payload: &Value) -> Option<&'static str> {
    use base64::Engine;
    fn text(v: Option<&Value>) -> &str {
        v.and_then(Value::as_str).unwrap_or_default()
    }
    let host = Some(text(payload.pointer("/headers/host")))
        .filter(|h| !h.is_empty())
        .unwrap_or(text(payload.pointer("/requestContext/domainName")));
    let path = Some(text(payload.get("rawPath")))
        .filter(|p| !p.is_empty())
        .unwrap_or("/");
    let query = text(payload.get("rawQueryString"));
    let url = format!(
        "https://{}{path}?{query}",
        if host.is_empty() { "localhost" } else { host }
    );
    if lambda_http::http::Uri::try_from(url.as_str()).is_err() {
        return Some("the request's path, query string or host has characters a URL cannot carry");
    }
    let base64 = payload.get("isBase64Encoded").and_then(Value::as_bool) == Some(true);
    if base64
        && let Some(body) = payload.get("body").and_then(Value::as_str)
        && base64::engine::general_purpose::STANDARD
            .decode(body)
            .is_err()
    {
        return Some("the body is flagged base64 but is not base64");
    }
    None
}

fn is_sns(v: &Value) -> bool {
    v.get("Records")
        .and_then(|r| r.get(0))
        .and_then(|r| r.get("EventSource").or_else(|| r.get("eventSource")))
        .and_then(Value::as_str)
        == Some("aws:sns")
}

/// HTTP API payload format 2.0 response.
pub fn to_apigw(resp: Response<Body>) -> ApiGatewayV2httpResponse {
    let (parts, body) = resp.into_parts();
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(parts.status.as_u16());
    out.headers = parts.headers;
    out.body = match body {
        Body::Text(t) => Some(EventBody::Text(t)),
        Body::Binary(b) => Some(EventBody::Binary(b)),
        _ => None,
    };
    out
}

impl From<IngestLambdaError> for lambda_runtime::Diagnostic {
    fn from(e: IngestLambdaError) -> Self {
        let error_type = match e {
            IngestLambdaError::UnknownEvent => "UnknownEvent",
            IngestLambdaError::BadSns(_) => "BadSnsEvent",
            IngestLambdaError::Feedback(_) => "FeedbackFailed",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

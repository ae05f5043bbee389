//! The `ingest` Lambda entry: one binary serves the HTTP API and the SES-feedback SNS topic, so
//! the payload is routed by shape.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
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
        let lambda_req: LambdaRequest =
            serde_json::from_value(payload).map_err(|_| IngestLambdaError::UnknownEvent)?;
        // lambda_http is built with HTTP API (v2) payloads only; the enum is non-exhaustive.
        let LambdaRequest::ApiGatewayV2(api) = lambda_req else {
            return Err(IngestLambdaError::UnknownEvent);
        };
        if let Some(problem) = unconvertible(&api) {
            // The request conversion below would panic on it: answer as the HTTP edge does.
            let body = serde_json::json!({ "error": problem });
            let mut resp = Response::new(Body::Text(body.to_string()));
            *resp.status_mut() = lambda_http::http::StatusCode::BAD_REQUEST;
            return Ok(serde_json::to_value(to_apigw(resp)).unwrap_or_default());
        }
        let req: Request = LambdaRequest::ApiGatewayV2(api).into();
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

/// What `lambda_http`'s conversion of an HTTP API request panics on instead of failing, checked
/// the way `lambda_http::request` builds the request (`None`: it converts):
///
/// - the URL: `url::Url::parse` of `<X-Forwarded-Proto, else https>://<Host header, else the
///   domain name><stage prefix + raw path>` (`http://localhost<path>` without a host) must
///   succeed, and so must `http::Uri` of what it prints plus `?<raw query string>` (the
///   parser percent-encodes the path, not the query): a `"`, a space or a control byte in the
///   query string or host, a port over 65535, a scheme that is not one all fail;
/// - a body flagged base64 that is not.
fn unconvertible(api: &ApiGatewayV2httpRequest) -> Option<&'static str> {
    use base64::Engine;
    const URL: &str =
        "the request's scheme (X-Forwarded-Proto), host, path or query string cannot make a URL";
    let header = |name: &str| api.headers.get(name).and_then(|v| v.to_str().ok());
    let host = header("host").or(api.request_context.domain_name.as_deref());
    let path = path_with_stage(
        api.request_context.stage.as_deref(),
        api.raw_path.as_deref().unwrap_or_default(),
    );
    let mut uri = match host {
        None => match url::Url::parse(&format!("http://localhost{path}")) {
            Ok(url) => url.path().to_string(),
            Err(_) => return Some(URL),
        },
        Some(host) => {
            let scheme = header("x-forwarded-proto").unwrap_or("https");
            match url::Url::parse(&format!("{scheme}://{host}{path}")) {
                Ok(url) => url.to_string(),
                Err(_) => return Some(URL),
            }
        }
    };
    if let Some(query) = api.raw_query_string.as_deref().filter(|q| !q.is_empty()) {
        uri.push('?');
        uri.push_str(query);
    }
    if lambda_http::http::Uri::try_from(uri).is_err() {
        return Some(URL);
    }
    if api.is_base64_encoded
        && let Some(body) = api.body.as_deref()
        && base64::engine::general_purpose::STANDARD
            .decode(body)
            .is_err()
    {
        return Some("the body is flagged base64 but is not base64");
    }
    None
}

/// The path `lambda_http` gives a request: the stage's name first, unless the stage is
/// `$default`, the path already starts with it, or `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH` is set.
fn path_with_stage(stage: Option<&str>, path: &str) -> String {
    match stage {
        _ if std::env::var("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH").is_ok() => path.into(),
        None | Some("$default") => path.into(),
        Some(stage) if path.starts_with(&format!("/{stage}/")) => path.into(),
        Some(stage) => format!("/{stage}{path}"),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// The HTTP API payload of the parts `unconvertible` looks at.
    fn payload(
        host: Option<&str>,
        domain: Option<&str>,
        proto: Option<&str>,
        stage: Option<&str>,
        path: &str,
        query: &str,
        body: Option<(&str, bool)>,
    ) -> Value {
        let mut headers = serde_json::Map::new();
        if let Some(h) = host {
            headers.insert("host".into(), json!(h));
        }
        if let Some(p) = proto {
            headers.insert("x-forwarded-proto".into(), json!(p));
        }
        json!({
            "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012", "apiId": "api", "domainName": domain, "stage": stage,
                "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "t"},
                "requestId": "r", "routeKey": "$default", "time": "t", "timeEpoch": 1
            },
            "body": body.map(|(b, _)| b),
            "isBase64Encoded": body.is_some_and(|(_, b64)| b64),
        })
    }

    fn api_request(v: Value) -> Option<ApiGatewayV2httpRequest> {
        match serde_json::from_value::<LambdaRequest>(v).ok()? {
            LambdaRequest::ApiGatewayV2(api) => Some(api),
            _ => None,
        }
    }

    fn conversion_panics(api: &ApiGatewayV2httpRequest) -> bool {
        let api = api.clone();
        std::panic::catch_unwind(move || {
            let _req: Request = LambdaRequest::ApiGatewayV2(api).into();
        })
        .is_err()
    }

    #[test]
    fn ports_and_schemes_no_url_has_are_caught_and_ordinary_requests_pass() {
        let case = |host, proto| {
            api_request(payload(host, None, proto, None, "/events", "a=1", None))
                .and_then(|api| unconvertible(&api))
        };
        assert!(case(Some("h.example:99999"), None).is_some());
        assert!(case(Some("h.example"), Some("not a scheme")).is_some());
        assert!(case(Some("h.example"), Some("1http")).is_some());
        assert_eq!(case(Some("h.example:8443"), Some("http")), None);
        assert_eq!(case(None, None), None);
    }

    proptest! {
        /// The guard says no exactly when lambda_http's conversion would panic: it lets nothing
        /// through that panics and refuses nothing that converts.
        #[test]
        fn the_guard_refuses_exactly_what_the_conversion_panics_on(
            // Mostly ordinary values, some hostile, so both answers come up often.
            host in proptest::option::of(prop_oneof![
                3 => "[a-z0-9.]{1,10}(:[0-9]{1,5})?", 1 => "[a-z0-9.:@\\[\\] \"%-]{0,12}"]),
            domain in proptest::option::of(prop_oneof![
                3 => "[a-z0-9.]{1,10}", 1 => "[a-z0-9.:@\\[\\] -]{0,12}"]),
            proto in proptest::option::of(prop_oneof![
                3 => "https?", 1 => "[a-z0-9+. -]{0,6}"]),
            stage in proptest::option::of(prop_oneof![
                3 => "\\$default|prod", 1 => "[$a-z /?#%:@]{0,6}"]),
            path in prop_oneof![3 => "(/[a-z]{1,6}){0,3}", 1 => "[a-z/ \"%?#@:\\\\{}|^`<>\u{1}-]{0,12}"],
            query in prop_oneof![3 => "([a-z]{1,3}=[a-z0-9]{0,3}&?){0,3}", 1 => "[a-z=& \"%#{}|^`<>\u{1}-]{0,10}"],
            body in proptest::option::of(prop_oneof![
                3 => ("([A-Za-z0-9+/]{4}){0,2}", Just(true)),
                1 => ("[A-Za-z0-9+/=% ]{0,8}", any::<bool>())]),
        ) {
            let v = payload(
                host.as_deref(), domain.as_deref(), proto.as_deref(), stage.as_deref(),
                &path, &query, body.as_ref().map(|(b, b64)| (b.as_str(), *b64)),
            );
            // A header value a header cannot carry fails deserialization: UnknownEvent.
            let Some(api) = api_request(v) else { return Ok(()) };
            prop_assert_eq!(unconvertible(&api).is_some(), conversion_panics(&api), "{:?}", api);
        }
    }
}

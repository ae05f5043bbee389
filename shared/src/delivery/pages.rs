//! What the signed-link pages have in common (`/unsubscribe`, `/steps/done`): reading a
//! form-encoded parameter, rendering `templates/pages/<name>.html` into a response with the
//! same headers, and choosing the page's language for a contact.

use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use minijinja::context;
use tracing::error;

use crate::Deps;
use crate::domain::Locale;
use crate::templates;

/// The first value of `name` in an `application/x-www-form-urlencoded` string (a query string
/// or a form body).
pub fn form_param(input: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(input.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub fn body_text(body: &Body) -> String {
    match body {
        Body::Text(t) => t.clone(),
        Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}

/// Renders `pages/<name>.html` into a response. The pages are compiled in and covered by
/// tests; if one still fails to render, the visitor gets a bare 500 and nothing else happens.
pub fn html_page(status: StatusCode, name: &str, ctx: minijinja::Value) -> Response<Body> {
    let (status, body) = match templates::render_page(name, ctx) {
        Ok(html) => (status, html),
        Err(e) => {
            error!(page = name, error = %e, "page does not render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error".to_string(),
            )
        }
    };
    let mut resp = Response::new(Body::Text(body));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        "content-type",
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    resp
}

/// The context of the pages without a contact: English first, then Japanese, in one page.
pub fn bilingual() -> minijinja::Value {
    context! { lang => Locale::En.as_str() }
}

/// 405 for a method the page's route does not serve.
pub fn method_not_allowed() -> Response<Body> {
    let mut resp = html_page(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        bilingual(),
    );
    resp.headers_mut()
        .insert("allow", HeaderValue::from_static("GET, POST"));
    resp
}

/// 503 + `Retry-After`: the store did not take the change; the visitor can send it again.
pub fn retry_later() -> Response<Body> {
    let mut resp = html_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "unsubscribe_retry",
        bilingual(),
    );
    resp.headers_mut().insert("retry-after", 30.into());
    resp
}

/// The language of a page for a contact: the contact's locale, else the account's, else
/// English (as their emails are written). A failed read only costs the language.
pub async fn page_locale(deps: &Deps, account_id: &str, contact_id: &str) -> Locale {
    let locale = match deps.store.contact(account_id, contact_id).await {
        Ok(Some(c)) => c.profile.and_then(|p| p.locale),
        _ => None,
    };
    let locale = match locale {
        Some(l) => Some(l),
        None => match deps.store.account(account_id).await {
            Ok(Some(a)) => a.profile.map(|p| p.locale),
            _ => None,
        },
    };
    locale.unwrap_or(Locale::En)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        assert_eq!(
            form_param("a=1&token=x.y%2Dz", "token").as_deref(),
            Some("x.y-z")
        );
        assert_eq!(form_param("token", "token").as_deref(), Some(""));
        assert_eq!(form_param("a=%", "a").as_deref(), Some("%"));
        assert_eq!(form_param("a=%4", "a").as_deref(), Some("%4"));
        assert_eq!(form_param("a=b+c%20d", "a").as_deref(), Some("b c d"));
        assert_eq!(form_param("List-Unsubscribe=One-Click", "token"), None);
    }

    #[test]
    fn shared_pages_render() {
        let retry = templates::render_page("unsubscribe_retry", bilingual()).unwrap();
        assert!(retry.contains("Please try again in a minute."));
        let resp = method_not_allowed();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()["allow"], "GET, POST");
        assert_eq!(retry_later().headers()["retry-after"], "30");
    }
}

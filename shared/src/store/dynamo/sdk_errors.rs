//! How SDK errors map to `StoreError`, with a mocked client (one response, no retries).

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_smithy_types::body::SdkBody;

use super::*;
use crate::store::{AccountRecord, ProfileStore, schema};

/// A DynamoDB (AWS JSON 1.0) error response as the service sends it.
fn error_response(status: u16, error_type: &str) -> HttpResponse {
    let mut resp = HttpResponse::new(
        status.try_into().unwrap(),
        SdkBody::from(format!(
            r#"{{"__type":"{error_type}","message":"from the mock"}}"#
        )),
    );
    resp.headers_mut()
        .insert("content-type", "application/x-amz-json-1.0");
    resp
}

/// Reads an account (one GetItem) through a client that answers with `rule`; retries are
/// off so the test sees how one response is mapped.
async fn read_account(rule: Rule) -> Result<Option<AccountRecord>, StoreError> {
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, &[&rule], |c| c
        .retry_config(RetryConfig::disabled()));
    DynamoStore::new(client, "t").account("acme").await
}

fn answer(status: u16, error_type: &'static str) -> Rule {
    mock!(Client::get_item).then_http_response(move || error_response(status, error_type))
}

#[tokio::test]
async fn dynamo_throttling_is_throttled() {
    for error_type in [
        "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "com.amazonaws.dynamodb.v20120810#ThrottlingException",
        "com.amazonaws.dynamodb.v20120810#RequestLimitExceeded",
    ] {
        let r = read_account(answer(400, error_type)).await;
        assert!(
            matches!(r, Err(StoreError::Throttled)),
            "{error_type}: {r:?}"
        );
        assert!(r.is_err_and(|e| e.is_retryable()));
    }
}

#[tokio::test]
async fn dynamo_internal_server_error_is_unavailable() {
    let r = read_account(answer(
        500,
        "com.amazonaws.dynamodb.v20120810#InternalServerError",
    ))
    .await;
    assert!(
        matches!(r, Err(StoreError::Unavailable(ref c)) if c == "InternalServerError"),
        "{r:?}"
    );
}

#[tokio::test]
async fn dynamo_validation_error_is_a_backend_error() {
    let r = read_account(answer(400, "com.amazon.coral.validate#ValidationException")).await;
    assert!(
        matches!(r, Err(StoreError::Backend(ref m)) if m.starts_with("ValidationException")),
        "{r:?}"
    );
    assert!(r.is_err_and(|e| !e.is_retryable()));
}

#[tokio::test]
async fn dynamo_get_item_reads_the_profile_key() {
    let rule = mock!(Client::get_item)
        .match_requests(|r| {
            r.table_name() == Some("t")
                && r.key().and_then(|k| k.get(PK)) == Some(&s(schema::account_pk("acme")))
                && r.key().and_then(|k| k.get(SK)) == Some(&s(schema::PROFILE_SK))
        })
        .then_output(|| GetItemOutput::builder().build());
    assert!(matches!(read_account(rule).await, Ok(None)));
}

/// A claim whose answer was lost is resent by the SDK; the resend fails its condition on the
/// claim the first attempt made, and DynamoDB returns that item.
fn claim_already_made_by(owner: &str) -> Rule {
    let body = format!(
        r#"{{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
        "message":"The conditional request failed","Item":{{
        "pk":{{"S":"ACCT#acme"}},"sk":{{"S":"NUDGE#n"}},"nudge_id":{{"S":"n"}},
        "account_id":{{"S":"acme"}},"kind":{{"S":"deadline_reminder"}},"variant":{{"S":"a"}},
        "send_at":{{"S":"2026-11-20T00:00:00.000Z"}},"function":{{"S":"test"}},
        "vars":{{"S":"{{}}"}},"status":{{"S":"claimed"}},"attempts":{{"N":"1"}},
        "created_at":{{"S":"2026-11-19T00:00:00.000Z"}},"lease_owner":{{"S":"{owner}"}},
        "lease_until":{{"S":"2026-11-20T00:15:00.000Z"}}}}}}"#
    );
    mock!(Client::update_item).then_http_response(move || {
        let mut resp = HttpResponse::new(400.try_into().unwrap(), SdkBody::from(body.clone()));
        resp.headers_mut()
            .insert("content-type", "application/x-amz-json-1.0");
        resp
    })
}

#[tokio::test]
async fn a_claim_whose_answer_was_lost_is_still_ours_and_another_runs_is_not() {
    use crate::store::SendStore;
    let now: chrono::DateTime<chrono::Utc> = "2026-11-20T00:00:00Z".parse().unwrap();
    for (owner, ours) in [("run-1", true), ("run-2", false)] {
        let rule = claim_already_made_by(owner);
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, &[&rule], |c| c
            .retry_config(RetryConfig::disabled()));
        let claimed = DynamoStore::new(client, "t")
            .claim("acme", "n", "run-1", now, chrono::Duration::minutes(15))
            .await
            .unwrap();
        assert_eq!(claimed.is_some(), ours, "claimed by {owner}");
    }
}

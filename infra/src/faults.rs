//! Faults for `nudge simulate --faults RATE`: an HTTP client between the functions' SDK clients
//! and the local services that fails a share of the requests the way AWS services and networks
//! do, and crashes invocations part-way, so that a simulation can show the same messages leave
//! with and without faults.
//!
//! Every DynamoDB request and every send (SES `SendEmail`, SNS `Publish`) fails with
//! probability `rate`, with one of: throttling and a server error (answered here, nothing
//! reached the service), a refused connection, a timeout before the request left, and, after
//! the service applied the request, a timeout or a reset connection (the answer is lost); sends
//! also get a server error after the provider took the message.
//!
//! Each invocation also crashes with probability `rate`, at one of its first
//! [`CRASH_WITHIN`] requests, before that request leaves or after the service applied it: the
//! invocation's future is dropped there, as a process that dies would leave it.
//!
//! Draws come from one seeded generator, so a run is repeatable as far as the order of
//! concurrent requests allows.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64Mcg;
use tokio::sync::Notify;

/// A crash comes at one of an invocation's first this many requests.
pub const CRASH_WITHIN: usize = 40;

tokio::task_local! {
    /// The reference (`nref` tag) of the message being sent by the current task: what the
    /// fault layer records when it loses the answer to a send the provider accepted.
    pub static SENDING: String;
}

/// What the fault layer did, by service and fault.
pub type Injected = BTreeMap<String, usize>;

/// The fault injector of one simulation.
#[derive(Clone, Debug)]
pub struct Faults(Arc<State>);

#[derive(Debug)]
struct State {
    rate: f64,
    rng: Mutex<Pcg64Mcg>,
    /// Faults are injected only inside [`Faults::invoke`]: the simulation's own reads and
    /// writes (setup, the final scan) see the services as they are.
    active: AtomicBool,
    invocation: Mutex<Invocation>,
    injected: Mutex<Injected>,
    /// References of messages the provider accepted whose answer was lost.
    accepted_unanswered: Mutex<BTreeSet<String>>,
}

#[derive(Debug, Default)]
struct Invocation {
    requests: usize,
    /// (request index, after the service applied it).
    crash_at: Option<(usize, bool)>,
    crashed: Arc<Notify>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    DynamoDb,
    SesSend,
    SnsPublish,
    /// Anything else (control-plane calls): passed through.
    Other,
}

impl Service {
    fn of(req: &HttpRequest) -> Service {
        let target = req.headers().get("x-amz-target").unwrap_or_default();
        if target.starts_with("DynamoDB_") {
            return Service::DynamoDb;
        }
        if req.uri().contains("/v2/email/outbound-emails") {
            return Service::SesSend;
        }
        let publishes = req.body().bytes().is_some_and(|b| {
            form_urlencoded::parse(b).any(|(k, v)| k == "Action" && v == "Publish")
        });
        if publishes {
            return Service::SnsPublish;
        }
        Service::Other
    }

    fn name(self) -> &'static str {
        match self {
            Service::DynamoDb => "dynamodb",
            Service::SesSend => "ses",
            Service::SnsPublish => "sns",
            Service::Other => "other",
        }
    }

    /// The faults this service gets.
    fn faults(self) -> &'static [Fault] {
        use Fault::*;
        match self {
            Service::DynamoDb => &[
                Throttled,
                ServerError,
                Refused,
                TimeoutBefore,
                TimeoutAfter,
                ResetAfter,
            ],
            Service::SesSend | Service::SnsPublish => &[
                Throttled,
                Refused,
                ServerError,
                TimeoutBefore,
                ServerErrorAfter,
                TimeoutAfter,
                ResetAfter,
            ],
            Service::Other => &[],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Throttling, answered before the request reached the service.
    Throttled,
    /// A 500 before the request reached the service.
    ServerError,
    /// The connection was refused: nothing left.
    Refused,
    /// The request timed out before it left.
    TimeoutBefore,
    /// The service applied the request, then answered 500.
    ServerErrorAfter,
    /// The service applied the request; the answer never came.
    TimeoutAfter,
    /// The service applied the request; the connection was reset before the answer.
    ResetAfter,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Throttled => "throttled",
            Fault::ServerError => "server error",
            Fault::Refused => "connection refused",
            Fault::TimeoutBefore => "timeout before sending",
            Fault::ServerErrorAfter => "server error after applying",
            Fault::TimeoutAfter => "timeout after applying",
            Fault::ResetAfter => "reset after applying",
        }
    }

    fn after(self) -> bool {
        matches!(
            self,
            Fault::ServerErrorAfter | Fault::TimeoutAfter | Fault::ResetAfter
        )
    }
}

enum Plan {
    Pass,
    Fail(Fault),
    Crash { after: bool },
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Faults {
    /// Fails requests and crashes invocations with probability `rate` (0 to 1).
    pub fn new(rate: f64, seed: u64) -> Faults {
        Faults(Arc::new(State {
            rate: rate.clamp(0.0, 1.0),
            rng: Mutex::new(Pcg64Mcg::seed_from_u64(seed)),
            active: AtomicBool::new(false),
            invocation: Mutex::new(Invocation::default()),
            injected: Mutex::new(Injected::new()),
            accepted_unanswered: Mutex::new(BTreeSet::new()),
        }))
    }

    pub fn rate(&self) -> f64 {
        self.0.rate
    }

    /// `inner`, with faults.
    pub fn http_client(&self, inner: SharedHttpClient) -> SharedHttpClient {
        SharedHttpClient::new(FaultyClient {
            inner,
            state: self.0.clone(),
        })
    }

    /// Runs one invocation with faults on: `None` if it crashed (its future dropped at a
    /// request, as a dying process leaves it).
    pub async fn invoke<F: Future>(&self, invocation: F) -> Option<F::Output> {
        let crashed = {
            let mut rng = lock(&self.0.rng);
            let crash_at = (rng.random::<f64>() < self.0.rate)
                .then(|| (rng.random_range(0..CRASH_WITHIN), rng.random::<bool>()));
            let mut inv = lock(&self.0.invocation);
            *inv = Invocation {
                requests: 0,
                crash_at,
                crashed: Arc::new(Notify::new()),
            };
            inv.crashed.clone()
        };
        self.0.active.store(true, Ordering::SeqCst);
        let out = tokio::select! {
            biased;
            _ = crashed.notified() => None,
            out = invocation => Some(out),
        };
        self.0.active.store(false, Ordering::SeqCst);
        if out.is_none() {
            *lock(&self.0.injected)
                .entry("invocation crashed".into())
                .or_default() += 1;
        }
        out
    }

    /// Whether the provider accepted the message `reference` although its sender never heard.
    pub fn accepted_unanswered(&self, reference: &str) -> bool {
        lock(&self.0.accepted_unanswered).contains(reference)
    }

    /// Faults injected so far, by "service: fault".
    pub fn injected(&self) -> Injected {
        lock(&self.0.injected).clone()
    }
}

impl State {
    fn plan(&self, service: Service) -> Plan {
        if !self.active.load(Ordering::SeqCst) {
            return Plan::Pass;
        }
        let crash = {
            let mut inv = lock(&self.invocation);
            let i = inv.requests;
            inv.requests += 1;
            match inv.crash_at {
                Some((at, after)) if at == i => Some(after),
                _ => None,
            }
        };
        if let Some(after) = crash {
            return Plan::Crash { after };
        }
        let faults = service.faults();
        if faults.is_empty() {
            return Plan::Pass;
        }
        let mut rng = lock(&self.rng);
        if rng.random::<f64>() >= self.rate {
            return Plan::Pass;
        }
        let fault = faults[rng.random_range(0..faults.len())];
        drop(rng);
        *lock(&self.injected)
            .entry(format!("{}: {}", service.name(), fault.name()))
            .or_default() += 1;
        Plan::Fail(fault)
    }

    fn crash(&self) {
        lock(&self.invocation).crashed.notify_one();
    }
}

#[derive(Debug)]
struct FaultyClient {
    inner: SharedHttpClient,
    state: Arc<State>,
}

impl HttpClient for FaultyClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(FaultyConnector {
            inner: self.inner.http_connector(settings, components),
            state: self.state.clone(),
        })
    }
}

#[derive(Debug)]
struct FaultyConnector {
    inner: SharedHttpConnector,
    state: Arc<State>,
}

impl HttpConnector for FaultyConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let service = Service::of(&request);
        let sending = SENDING.try_with(Clone::clone).ok();
        let state = self.state.clone();
        match state.plan(service) {
            Plan::Pass => self.inner.call(request),
            Plan::Crash { after } => {
                let sent = after.then(|| self.inner.call(request));
                HttpConnectorFuture::new(async move {
                    if let Some(sent) = sent {
                        let _ = sent.await;
                    }
                    state.crash();
                    std::future::pending().await
                })
            }
            Plan::Fail(fault) if fault.after() => {
                let sent = self.inner.call(request);
                HttpConnectorFuture::new(async move {
                    let accepted = sent.await.is_ok_and(|r| r.status().is_success());
                    if accepted && let Some(reference) = sending {
                        lock(&state.accepted_unanswered).insert(reference);
                    }
                    match fault {
                        Fault::ServerErrorAfter => Ok(error_response(service, 500)),
                        Fault::TimeoutAfter => Err(ConnectorError::timeout(
                            "injected: no answer in time after the request left".into(),
                        )),
                        _ => Err(ConnectorError::io(Box::new(std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "injected: connection reset after the request left",
                        )))),
                    }
                })
            }
            Plan::Fail(fault) => HttpConnectorFuture::ready(match fault {
                Fault::Throttled => Ok(error_response(service, 429)),
                Fault::ServerError => Ok(error_response(service, 500)),
                Fault::Refused => Err(ConnectorError::io(Box::new(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "injected: connection refused",
                )))),
                _ => Err(ConnectorError::timeout("injected: connect timeout".into())),
            }),
        }
    }
}

/// Throttling (`status` 429) or a server error (500) as each service words it.
fn error_response(service: Service, status: u16) -> HttpResponse {
    let throttled = status == 429;
    let (status, content_type, body, error_type) = match service {
        Service::DynamoDb => {
            let code = if throttled {
                "ProvisionedThroughputExceededException"
            } else {
                "InternalServerError"
            };
            (
                if throttled { 400 } else { 500 },
                "application/x-amz-json-1.0",
                format!(
                    r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"injected"}}"#
                ),
                None,
            )
        }
        Service::SnsPublish => {
            let code = if throttled {
                "Throttling"
            } else {
                "InternalError"
            };
            (
                if throttled { 400 } else { 500 },
                "text/xml",
                format!(
                    "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><Error>\
                     <Type>Sender</Type><Code>{code}</Code><Message>injected</Message></Error>\
                     <RequestId>injected</RequestId></ErrorResponse>"
                ),
                None,
            )
        }
        Service::SesSend | Service::Other => {
            let code = if throttled {
                "TooManyRequestsException"
            } else {
                "InternalFailure"
            };
            (
                status,
                "application/json",
                r#"{"message":"injected"}"#.to_string(),
                Some(code),
            )
        }
    };
    let mut resp = HttpResponse::new(
        aws_smithy_runtime_api::http::StatusCode::try_from(status).expect("400, 429 or 500"),
        SdkBody::from(body),
    );
    resp.headers_mut().insert("content-type", content_type);
    if let Some(code) = error_type {
        resp.headers_mut().insert("x-amzn-ErrorType", code);
    }
    resp
}

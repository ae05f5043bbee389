//! A local Lambda runtime API (the `2018-06-01` protocol every runtime speaks: `next`,
//! `response`, `error`, `init/error`) that runs one bootstrap as a process and measures it as
//! Lambda would bill it: init (process start until its first `next`), each invocation's
//! latency (event handed out until its answer) and CPU time (all of the process's threads,
//! from `/proc`), and the peak resident set. The same server runs the Rust bootstraps and the
//! Python peer (`awslambdaric`), so both are measured by one clock.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// What to run: a program and its environment (the runtime API's address is added).
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The process's working directory (the Python peer's handler modules).
    pub dir: Option<PathBuf>,
}

/// One invocation as the runtime API saw it.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Event handed out until the answer arrived.
    pub latency: Duration,
    /// CPU time of the process from handing out the event until it asked for the next one.
    pub cpu: Duration,
    /// The answer's body, or the error the runtime reported.
    pub outcome: Result<Bytes, String>,
}

/// A bootstrap's run: init, every invocation, the peak RSS.
#[derive(Debug, Clone)]
pub struct Run {
    /// Process start until its first `next`.
    pub init: Duration,
    /// CPU time spent before the first `next`.
    pub init_cpu: Duration,
    pub invocations: Vec<Invocation>,
    /// The process's peak resident set (`VmHWM`), in KiB.
    pub peak_rss_kib: u64,
}

impl Run {
    /// The CPU time of every invocation after the first `skip`.
    pub fn cpu_after(&self, skip: usize) -> Duration {
        self.invocations.iter().skip(skip).map(|i| i.cpu).sum()
    }

    /// The first failed invocation's error, if any.
    pub fn first_error(&self) -> Option<&str> {
        self.invocations
            .iter()
            .find_map(|i| i.outcome.as_ref().err().map(String::as_str))
    }
}

enum Signal {
    Next(oneshot::Sender<(String, Bytes)>),
    Answer {
        id: String,
        body: Result<Bytes, String>,
    },
    InitError(String),
}

/// Runs `bootstrap` under a fresh runtime API on 127.0.0.1, hands it `events` one by one,
/// and stops it. Fails if it does not come up or answer within `timeout` each, or exits.
pub async fn run(bootstrap: &Bootstrap, events: &[Bytes], timeout: Duration) -> Result<Run> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the local runtime API")?;
    let addr = listener.local_addr()?;
    let (tx, mut rx) = mpsc::channel::<Signal>(16);
    let server = tokio::spawn(serve(listener, tx));
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run_no = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let log = std::env::temp_dir().join(format!(
        "nudge-bench-{}-{}-{run_no}.log",
        bootstrap.name,
        std::process::id()
    ));
    let result = drive(bootstrap, addr, &log, events, timeout, &mut rx).await;
    server.abort();
    result.with_context(|| {
        format!(
            "running {} ({}); its output is in {}",
            bootstrap.name,
            bootstrap.program.display(),
            log.display()
        )
    })
}

async fn drive(
    bootstrap: &Bootstrap,
    addr: SocketAddr,
    log: &std::path::Path,
    events: &[Bytes],
    timeout: Duration,
    rx: &mut mpsc::Receiver<Signal>,
) -> Result<Run> {
    let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut cmd = tokio::process::Command::new(&bootstrap.program);
    // Only what Lambda would set and the bootstrap's own variables: this shell's (a CA
    // directory, say) would change what init loads.
    cmd.args(&bootstrap.args)
        .env_clear()
        .envs(lambda_env(&bootstrap.name))
        .envs(bootstrap.env.iter().map(|(k, v)| (k, v)))
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .kill_on_drop(true);
    if let Some(dir) = &bootstrap.dir {
        cmd.current_dir(dir);
    }
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bootstrap.program.display()))?;
    let pid = child.id().ok_or_else(|| anyhow!("the process has no id"))?;

    let mut next = wait_next(rx, &mut child, timeout, "init").await?;
    let init = started.elapsed();
    let init_cpu = cpu_of(pid)?;
    let mut invocations = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        let id = format!("bench-{i}");
        let cpu_before = cpu_of(pid)?;
        let handed = Instant::now();
        next.send((id.clone(), event.clone()))
            .map_err(|_| anyhow!("the runtime's `next` request was dropped"))?;
        let (latency, outcome) = match recv(rx, &mut child, timeout, "an answer").await? {
            Signal::Answer { id: got, body } if got == id => (handed.elapsed(), body),
            Signal::Answer { id: got, .. } => bail!("an answer for unknown request {got}"),
            Signal::InitError(e) => bail!("init error after init: {e}"),
            Signal::Next(_) => bail!("`next` before answering {id}"),
        };
        next = wait_next(rx, &mut child, timeout, "the next `next`").await?;
        invocations.push(Invocation {
            latency,
            cpu: cpu_of(pid)?.saturating_sub(cpu_before),
            outcome,
        });
    }
    let peak_rss_kib = peak_rss_kib(pid)?;
    drop(next);
    let _ = child.kill().await;
    Ok(Run {
        init,
        init_cpu,
        invocations,
        peak_rss_kib,
    })
}

async fn recv(
    rx: &mut mpsc::Receiver<Signal>,
    child: &mut tokio::process::Child,
    timeout: Duration,
    what: &str,
) -> Result<Signal> {
    tokio::select! {
        s = rx.recv() => s.ok_or_else(|| anyhow!("the runtime API stopped")),
        status = child.wait() => bail!("the process exited ({}) while waiting for {what}", status?),
        () = tokio::time::sleep(timeout) => bail!("no {what} within {timeout:?}"),
    }
}

async fn wait_next(
    rx: &mut mpsc::Receiver<Signal>,
    child: &mut tokio::process::Child,
    timeout: Duration,
    what: &str,
) -> Result<oneshot::Sender<(String, Bytes)>> {
    match recv(rx, child, timeout, what).await? {
        Signal::Next(reply) => Ok(reply),
        Signal::InitError(e) => bail!("init failed: {e}"),
        Signal::Answer { id, .. } => bail!("an answer for {id} while waiting for {what}"),
    }
}

/// The variables Lambda sets for every runtime (the Rust runtime refuses to start without
/// them), and its PATH, LANG and TZ.
fn lambda_env(name: &str) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_FUNCTION_NAME", name),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
        ("LAMBDA_TASK_ROOT", "."),
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("LANG", "C.UTF-8"),
        ("TZ", ":UTC"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

async fn serve(listener: TcpListener, tx: mpsc::Sender<Signal>) {
    while let Ok((stream, _)) = listener.accept().await {
        let tx = tx.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, tx.clone()));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

const PREFIX: &str = "/2018-06-01/runtime/";

async fn handle(
    req: Request<Incoming>,
    tx: mpsc::Sender<Signal>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let send = |s: Signal| async { tx.send(s).await.is_ok() };
    let rest = path.strip_prefix(PREFIX).unwrap_or("");
    let status = match (method, rest.split('/').collect::<Vec<_>>().as_slice()) {
        (Method::GET, ["invocation", "next"]) => {
            let (reply, wait) = oneshot::channel();
            if !send(Signal::Next(reply)).await {
                return Ok(plain(StatusCode::GONE, ""));
            }
            // Held until the driver has an event; dropped (the process is stopped) otherwise.
            let Ok((id, event)) = wait.await else {
                return Ok(plain(StatusCode::GONE, ""));
            };
            let deadline = chrono::Utc::now().timestamp_millis() + 900_000;
            let mut resp = Response::new(Full::new(event));
            let h = resp.headers_mut();
            for (k, v) in [
                ("lambda-runtime-aws-request-id", id),
                ("lambda-runtime-deadline-ms", deadline.to_string()),
                (
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:bench".into(),
                ),
                (
                    "lambda-runtime-trace-id",
                    "Root=1-00000000-000000000000000000000000".into(),
                ),
                ("content-type", "application/json".into()),
            ] {
                if let Ok(v) = v.parse() {
                    h.insert(k, v);
                }
            }
            return Ok(resp);
        }
        (Method::POST, ["invocation", id, "response"]) => {
            send(Signal::Answer {
                id: id.to_string(),
                body: Ok(body),
            })
            .await;
            StatusCode::ACCEPTED
        }
        (Method::POST, ["invocation", id, "error"]) => {
            send(Signal::Answer {
                id: id.to_string(),
                body: Err(String::from_utf8_lossy(&body).into_owned()),
            })
            .await;
            StatusCode::ACCEPTED
        }
        (Method::POST, ["init", "error"]) => {
            send(Signal::InitError(
                String::from_utf8_lossy(&body).into_owned(),
            ))
            .await;
            StatusCode::ACCEPTED
        }
        _ => StatusCode::NOT_FOUND,
    };
    Ok(plain(status, "{}"))
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r
}

/// CPU time of every thread of `pid` so far (`/proc/<pid>/task/*/schedstat`, nanoseconds;
/// a thread that already exited is counted in the process's `stat` instead, at tick
/// resolution, so the larger of the two is taken).
pub fn cpu_of(pid: u32) -> Result<Duration> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .with_context(|| format!("reading /proc/{pid}/task"))?;
    let mut ns: u64 = 0;
    for task in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(task.path().join("schedstat")) {
            ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) in parentheses: utime and stime
    // are the 14th and 15th fields of the line, the 12th and 13th after it.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    // USER_HZ is 100 on Linux.
    let stat_ns = ticks * 10_000_000;
    Ok(Duration::from_nanos(ns.max(stat_ns)))
}

/// The peak resident set of `pid` (`VmHWM`), in KiB.
pub fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no VmHWM in /proc/{pid}/status"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runtime loop in a few lines of Python (standard library only): the harness must
    /// hand out events, collect answers and errors, and measure the process.
    const PY_RUNTIME: &str = r#"
import json, os, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
while True:
    with urllib.request.urlopen(api + "next") as r:
        rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read())
    kind = "error" if event.get("fail") else "response"
    body = json.dumps({"echo": event, "fn": os.environ["AWS_LAMBDA_FUNCTION_NAME"]}).encode()
    urllib.request.urlopen(urllib.request.Request(api + rid + "/" + kind, data=body, method="POST")).read()
"#;

    #[tokio::test]
    async fn hands_out_events_and_collects_answers_errors_and_figures() {
        let bootstrap = Bootstrap {
            name: "py-echo".into(),
            program: "python3".into(),
            args: vec!["-c".into(), PY_RUNTIME.into()],
            env: vec![],
            dir: None,
        };
        let events = [
            Bytes::from_static(br#"{"n": 1}"#),
            Bytes::from_static(br#"{"fail": true}"#),
            Bytes::from_static(br#"{"n": 3}"#),
        ];
        let run = match run(&bootstrap, &events, Duration::from_secs(30)).await {
            Ok(r) => r,
            Err(e) => panic!("{e:#}"),
        };
        assert_eq!(run.invocations.len(), 3);
        let first = run.invocations[0].outcome.clone().unwrap_or_default();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&first).ok(),
            Some(serde_json::json!({"echo": {"n": 1}, "fn": "py-echo"}))
        );
        assert!(run.invocations[1].outcome.is_err());
        assert!(run.first_error().is_some_and(|e| e.contains("fail")));
        assert!(run.invocations[2].outcome.is_ok());
        // A Python interpreter takes milliseconds to start and megabytes of memory.
        assert!(run.init > Duration::from_millis(1));
        assert!(run.init_cpu > Duration::ZERO);
        assert!(run.peak_rss_kib > 1_000);
    }

    #[tokio::test]
    async fn a_bootstrap_that_exits_is_reported_not_waited_for() {
        let bootstrap = Bootstrap {
            name: "exits".into(),
            program: "python3".into(),
            args: vec!["-c".into(), "raise SystemExit(3)".into()],
            env: vec![],
            dir: None,
        };
        let err = run(&bootstrap, &[], Duration::from_secs(30))
            .await
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(err.contains("exited"), "{err}");
    }
}

//! Local stack management and the `nudge` operator CLI's commands (simulate, demo,
//! send-events, bench, model, explain, queue, kpi, preview, log, pause, resume), as a library so the integration tests reuse
//! them.

pub mod apigw;
pub mod bench;
pub mod bench_all;
pub mod bench_delivery;
pub mod bench_health;
pub mod bench_lambda;
pub mod bench_milestones;
pub mod demo;
pub mod engagement;
pub mod faults;
pub mod health_cli;
pub mod kpi;
pub mod local;
pub mod ops;
pub mod portfolio;
pub mod preview;
pub mod report;
pub mod resilience;
pub mod runtime_api;
pub mod send;
pub mod simulate;
pub mod target;
pub mod tls_front;

//! Nudge: the shared crate. Domain decisions are pure functions of (state, now); I/O lives behind
//! the `Store`, `Mailer` and `Notifier` ports so the four Lambda binaries stay thin.

pub mod config;
pub mod delivery;
pub mod deps;
pub mod events;
pub mod reminders;
pub mod store;
pub mod telemetry;
pub mod templates;

pub use deps::Deps;
pub mod ingest;
pub mod schedule;

//! Nudge: the shared crate. Domain decisions are pure functions of (state, now); I/O lives behind
//! ports (store traits, `Mailer`, `Notifier`) so the Lambda binaries stay thin. The module map
//! and the dependency rules between these modules are in ARCHITECTURE.md.

pub mod channels;
pub mod config;
pub mod delivery;
pub mod deps;
pub mod domain;
pub mod events;
pub mod health;
pub mod ingest;
pub mod milestones;
pub mod registry;
pub mod reminders;
pub mod schedule;
pub mod store;
pub mod telemetry;
pub mod templates;

pub use deps::Deps;

#[cfg(test)]
mod architecture;
#[cfg(test)]
mod usecases;

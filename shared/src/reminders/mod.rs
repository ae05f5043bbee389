//! Three-stage deadline reminders.
//!
//! [`plan`] decides *when* each stage goes out; [`stages`] turns that into a deadline's stage
//! nudges; [`rezone`] re-plans them when the recipient's zone changes; [`wording`] says *how
//! much time is left* in the recipient's own local terms. All four are pure: "now" is always a
//! parameter. [`service`] is the ingest hook that reads and writes.

pub mod plan;
pub mod rezone;
pub mod service;
pub mod stages;
pub mod wording;

pub use plan::{
    Deadline, PlannedStage, ReminderPolicy, ReminderStage, nominal_times, plan, replan,
};
pub use wording::{format_due, time_left};

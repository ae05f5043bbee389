//! Three-stage deadline reminders.
//!
//! [`plan`] decides *when* each stage goes out; [`wording`] says *how much time is left* in the
//! recipient's own local terms. Both are pure: "now" is always a parameter.

pub mod plan;
pub mod service;
pub mod wording;

pub use plan::{
    Deadline, PlannedStage, ReminderPolicy, ReminderStage, nominal_times, plan, replan,
};
pub use wording::{format_due, time_left};

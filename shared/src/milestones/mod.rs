//! Milestones and the 30-day onboarding program: welcome new customers with one first step,
//! congratulate each first result once (with the next step), check progress weekly and hand
//! laggards to a person.
//!
//! `program.rs` holds every decision as pure functions (the program's tasks, a check's standing,
//! the nudges of each moment and their once-only ids); `service.rs` reads the store, calls them
//! and plans the nudges, which the sweep delivers in the recipient's business hours (a CSM's
//! copy at once). `kpi.rs` measures the program for a customer-success lead (`nudge kpi`).

pub mod kpi;
pub mod program;
pub mod service;

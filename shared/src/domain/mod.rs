//! The domain model: what a nudge is (kind, stage, status, reason, channel, recipient, due
//! time, send window), the delivery log line, the send policy and send windows.
//!
//! This module is the leaf of the crate: it imports no other module of it and does no I/O, so
//! the store, delivery and every feature can depend on it without depending on each other
//! (the rule is written down in ARCHITECTURE.md and enforced by `crate::architecture`).

pub mod account;
pub mod log;
pub mod nudge;
pub mod policy;
pub mod window;

pub use account::{Locale, Member, Role, Tier, admin_of, executives};
pub use log::{DeliveryLogEntry, LogStatus};
pub use nudge::{
    Audience, Channel, Engagement, ExtraVars, Nudge, NudgeKind, NudgeStatus, Recipient,
    RecipientContext, SendWindow, Stage, UNKNOWN_OUTCOME, category, no_extra_vars,
};
pub use policy::{BlockReason, FrequencyCap, SuppressionReason};
pub use window::BusinessHours;

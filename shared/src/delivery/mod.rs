//! Delivery: the one path every nudge takes (load, render, check policy, claim, send, mark),
//! the owner-agnostic sweep that runs it every 15 minutes, the signed links of customer emails
//! (unsubscribe, "I've done this") and their pages, and SES feedback.

pub mod done_link;
pub mod feedback;
pub mod followup;
pub mod message;
pub mod pages;
pub mod send;
pub mod sweep;
pub mod unsubscribe;

use thiserror::Error;

pub use message::{nudge_ref_tag, parse_nudge_ref_tag};
pub use send::{Outcome, Preview, deliver, deliver_new, preview};
pub use sweep::{Budget, RunReport, sweep, sweep_within};

use crate::store::StoreError;
use crate::templates::TemplateError;

/// Why a delivery step could not complete (the nudge stays where it was, for the next run).
#[derive(Debug, Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Template(#[from] TemplateError),
}

impl DeliveryError {
    pub fn is_retryable(&self) -> bool {
        match self {
            DeliveryError::Store(e) => e.is_retryable(),
            DeliveryError::Template(_) => false,
        }
    }
}

//! Account health: the pure scoring core of the `health` feature.
//!
//! Everything here is a function of (model, inputs, now): no I/O, no clock, no store. The
//! feature's service reads the inputs through the store ports, calls [`score`], keeps the
//! [`HealthScore`] and plans nudges from [`diff`]. The numbers live in a [`HealthModel`]
//! (`model.rs`: JSON, validated; the default model is listed there).
//!
//! # How a score is made
//!
//! **1. Sub-scores.** Each weighted factor turns its raw value into 0-100 ("n / target" is
//! capped at 100):
//!
//! | Family | Factor | Sub-score |
//! |---|---|---|
//! | contract | `tenure` | days since `contract_start` / `targets.tenure_days` |
//! | contract | `renewals` | renewals / `targets.renewals` |
//! | contract | `days_to_renewal` | days to `renewal_date` / `thresholds.pre_renewal_days` (0 once due) |
//! | contract | `plan` | `plan_scores[plan]`; a plan not listed is missing |
//! | usage | `login_days` | days with a login in the last `trend_days` / `targets.login_days` |
//! | usage | `login_trend` | logins in the last `trend_days` / logins in the `trend_days` before (100 when before was 0) |
//! | usage | `active_contacts` | distinct active contacts in the last `usage_days` / `targets.active_contacts` |
//! | usage | `feature_breadth` | key features used in the last `usage_days` / the plan's key features |
//! | usage | `feature_depth` | key-feature uses in the last `usage_days` / `targets.feature_uses` |
//! | usage | `reports` | reports in the last `usage_days` / `targets.reports` |
//! | usage | `onboarding` | onboarding steps done / the plan's steps (`first_report` also counts when the account created a report) |
//! | satisfaction | `nps` | latest NPS x 10 |
//! | satisfaction | `nps_trend` | 100 + 10 x (latest - previous response), 0-100: flat or up is 100, each point down costs 10 |
//! | satisfaction | `open_tickets` | 100 x (1 - open load / `targets.open_ticket_load`), load = sum of `severity_weights` |
//! | satisfaction | `recent_tickets` | the same for tickets opened in the last `recent_ticket_days` |
//!
//! Usage windows are **complete local days before today** in the account's `timezone`
//! ([`local_day`]): today's partial day never counts, so a score computed at 01:00 or at 23:00
//! agrees on usage. While Nudge has known the account for less than a window, the window's
//! target is pro-rated to the days observed (the day it was first seen counts), so a week-old
//! account is held to a week of usage, not a month.
//!
//! **2. Missing is neutral: excluded, its weight redistributed.** A factor whose input is not
//! known earns nothing and is named `missing` in the drivers; its weight goes to the known
//! factors of its family in proportion to their weights, and a family with nothing known gives
//! its weight to the other families the same way. So "no NPS yet" neither helps nor hurts: the
//! satisfaction family is judged on what is known. Missing means:
//! - `plan`: the plan is not in `plan_scores`;
//! - usage factors: no observed day in the window (first seen today);
//! - `login_trend`: both windows not fully observed yet, or no login in either;
//! - `onboarding`: no step on record after the onboarding phase (the account most likely
//!   onboarded before Nudge saw it);
//! - `nps`: no response in the last `nps_max_age_days`; `nps_trend`: fewer than two;
//! - `open_tickets` and `recent_tickets`: no open ticket and none recent, i.e. no support
//!   signal at all (silence is not praise).
//!
//! A factor's effective weight is `family weight / sum of known families' weights x factor
//! weight / sum of the family's known factor weights`; its points are `weight x sub-score`,
//! and the blend is the sum of the points (0-100). Only if nothing with weight is known at all
//! (possible only with a model that puts every weight on factors this account lacks) does
//! every factor count as a neutral 50 at its nominal weight.
//!
//! **3. Risk signals subtract.** Each fired signal takes off its `penalties` points:
//!
//! | Signal | Fires when |
//! |---|---|
//! | `login_decline` | logins fell by at least `login_decline_pct` percent, last `trend_days` against the `trend_days` before (both windows observed) |
//! | `key_features_unused` | a key feature had no use in the last `key_feature_unused_days` (penalty x unused / key features; needs that many observed days) |
//! | `admin_changed` | the admin changed less than `admin_changed_days` ago |
//! | `ticket_spike` | at least `ticket_spike_count` tickets opened in the last `ticket_spike_days` |
//! | `nps_detractor` | the latest NPS is at most `detractor_max` |
//!
//! They overlap the factors on purpose: a factor moves the score gradually, a signal is the
//! sharp, named event a CSM acts on. If the penalties add up to more than the blend, they are
//! scaled down together so the score stops at 0 and the drivers still add up.
//!
//! **4. The number.** `score = round(blend - penalties)`, an integer 0-100 (halves round up).
//! Each driver's `points` is its exact contribution rounded to 0.01 (negative for signals), so
//! the drivers add up to the score within rounding (at most 0.5 + 0.005 per driver).
//!
//! # Labels
//!
//! - `band`: red below `bands.red_below`, green from `bands.green_from`, else yellow.
//! - `tier`: the profile's `tier` if set (a CS decision wins), else `tiers.plans[plan]`, else
//!   by ARR: at least `high_touch_from_arr` high touch, at least `low_touch_from_arr` low
//!   touch, else tech touch; `tier_source` says which rule chose it.
//! - `phase`: `pre_renewal` within `pre_renewal_days` of `renewal_date` (or past it); else
//!   `onboarding` during the first `onboarding_days` after `contract_start` while a step of
//!   the plan is still open (finishing early ends onboarding; day `onboarding_days` ends it
//!   anyway); else `operation`.
//! - `active`: at least `active_uses` key-feature uses in the last `active_days`.
//! - `provisional`: Nudge first saw the account less than `provisional_days` ago.
//!
//! # Reading a number
//!
//! [`diff`] gives yesterday-to-today's delta and the factors whose points moved most;
//! [`gaps`] gives where today's missing points went. `backtest.rs` measures how well red
//! predicts churn. [`rank`] (`priority.rs`) orders the accounts a CSM should look at first.

pub mod actions;
pub mod backtest;
pub mod explain;
pub mod model;
pub mod priority;
pub mod replay;
pub mod score;
pub mod service;

pub use backtest::{BacktestReport, Churn, DEFAULT_HORIZON_DAYS, DailyBand, backtest};
pub use explain::{Reason, ScoreChange, diff, gaps};
pub use model::{Band, Factor, Family, HealthModel, ModelError, Phase, Problem, TierSource};
pub use priority::{OnboardingProgress, PriorityInput, PriorityReason, PriorityRow, rank};
pub use replay::{ScoreSeries, churn_label, churn_of, daily_bands, replay_account};
pub use score::{
    DayUsage, Driver, FamilyScore, HealthInputs, HealthScore, NpsResponse, Ticket, local_day, score,
};

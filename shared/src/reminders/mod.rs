//! Three-stage deadline reminders.

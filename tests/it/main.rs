//! Integration tests against the local stack (DynamoDB Local + moto), in one test binary so the
//! AWS SDK is linked once. Each test gets its own table; helpers live in `tests/support`.

mod delivery;
mod done_link;
mod faults;
mod health;
mod health_store;
mod ingest;
mod kpi;
mod milestones;
mod ops;
mod playbooks;
mod priority;
mod queue;
mod reminders;
mod report;
mod simulate;
mod store;
mod template;

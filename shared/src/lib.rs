//! calsync: two-way calendar synchronisation engine for AWS Lambda.
//!
//! Layout: [`ical`] (canonical model, iCalendar via calcard), [`provider`] (one module per
//! provider behind the [`provider::Provider`] port), [`store`] (DynamoDB state),
//! [`queue`] (SQS jobs), [`secrets`] (Secrets Manager), [`engine`] (pull, push, merge),
//! [`handlers`] (the Lambda entry points that the thin `main.rs` files call).

pub mod ical;

//! calsync: two-way calendar synchronisation engine for AWS Lambda.
//!
//! Layout: [`ical`] (canonical model, iCalendar via calcard), [`model`] (records in DynamoDB),
//! [`provider`] (one module per provider behind the [`provider::Provider`] port, found
//! through [`provider::registry`]),
//! [`store`] (DynamoDB state), [`queue`] (SQS jobs), [`secrets`] (Secrets Manager),
//! [`engine`] (pull, push, merge), [`handlers`] (the Lambda entry points that the thin
//! `main.rs` files call), [`config`] (resource names and clients), [`oauth`] and
//! [`connect`] (OAuth 2.0 consent and connecting a calendar), [`push`] (the push port,
//! channels and the webhook), [`refresher`] (token and channel upkeep), [`http_api`] (the
//! webhook-receiver's routes), [`api`] (the application's `/v1` API), [`net`] (outbound
//! HTTP for user-supplied addresses), [`metrics`] (AWS calls counted per run).

pub mod api;
pub mod config;
pub mod connect;
pub mod consent_page;
pub mod disconnect;
pub mod engine;
pub mod fuzzing;
pub mod handlers;
pub mod http_api;
pub mod ical;
pub mod metrics;
pub mod model;
pub mod net;
pub mod notify;
pub mod oauth;
pub mod provider;
pub mod push;
pub mod queue;
pub mod refresher;
pub mod secrets;
pub mod store;

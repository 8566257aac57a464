//! Durable delivery: webhooks posted from the event log ([`webhooks`]), signed as EmailEngine
//! signs them and as Standard Webhooks does ([`signature`]), and mail sent from the outbox over
//! SMTP ([`submit`]). Knows nothing of HTTP serving.

pub mod signature;
pub mod submit;
pub mod webhooks;

pub use submit::{OutboxEntry, Submitter};
pub use webhooks::{EgressPolicy, WebhookConfig, Webhooks};

//! Durable delivery: webhooks posted from the event log ([`webhooks`]), signed as EmailEngine
//! signs them and as Standard Webhooks does ([`signature`]). Knows nothing of HTTP serving.

pub mod signature;
pub mod webhooks;

pub use webhooks::{WebhookConfig, Webhooks};

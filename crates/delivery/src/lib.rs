//! Durable delivery: webhooks posted from the event log ([`webhooks`]), signed as EmailEngine
//! signs them and as Standard Webhooks does ([`signature`]), and mail sent from the outbox over
//! SMTP ([`submit`]). Knows nothing of HTTP serving.

pub mod proxy;
pub mod signature;
pub mod submit;
pub mod webhooks;

pub use submit::{OutboxEntry, Submitter};
pub use webhooks::{EgressPolicy, WebhookConfig, Webhooks};

/// Waits while `queue` is paused (`PUT /v1/settings/queue/{queue}`). The flag lives in the
/// shared settings, so a pause set through any instance holds the workers of all of them. A
/// store that cannot be read does not hold delivery: its failure shows up on the next write.
pub async fn hold_while_paused(store: &dyn emailengine_store::Store, queue: &str) {
    let key = emailengine_core::settings::queue_paused_key(queue);
    let mut logged = false;
    loop {
        let paused = match store.raw_settings(&[&key]).await {
            Ok(v) => v.first().and_then(|v| v.as_deref()) == Some("true"),
            Err(_) => false,
        };
        if !paused {
            return;
        }
        if !logged {
            tracing::info!(queue, "Queue is paused; holding its worker");
            logged = true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

//! One module per route family; each handler is a small function documented for OpenAPI.

pub mod accounts;
pub mod blocklists;
pub mod gateways;
pub mod health;
pub mod hosted;
pub mod links;
pub mod mailboxes;
pub mod messages;
pub mod metrics;
pub mod oauth2;
pub mod settings;
pub mod stats;
pub mod submit;
pub mod templates;
pub mod tokens;
pub mod webhooks;

//! One module per route family; each handler is a small function documented for OpenAPI.

pub mod accounts;
pub mod autoconfig;
pub mod blocklists;
pub mod changes;
pub mod gateways;
pub mod health;
pub mod hosted;
pub mod license;
pub mod links;
pub mod logs;
pub mod mailboxes;
pub mod messages;
pub mod metrics;
pub mod oauth2;
pub mod queues;
pub mod settings;
pub mod stats;
pub mod submit;
pub mod templates;
pub mod tokens;
pub mod webhook_routes;
pub mod webhooks;

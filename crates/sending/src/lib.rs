//! The sending extras of EmailEngine as pure building blocks: Handlebars templates and their
//! stored records, open and click tracking, mailing-list headers and unsubscribe links, and the
//! expansion of mail-merge payloads (spec §17–§20).
//!
//! Nothing here performs I/O: callers load templates and blocklists, pass the `serviceSecret`
//! and base URL in, and queue what comes out. Start with [`merge`] and [`template`] for the
//! submit path, [`tracking`] and [`lists`] for the public link routes.

pub mod error;
pub mod lists;
pub mod merge;
pub mod template;
pub mod template_store;
pub mod tracking;

pub use error::{Error, Result};

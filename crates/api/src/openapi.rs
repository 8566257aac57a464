//! The OpenAPI document's frame: title, version and the bearer security scheme. Paths and
//! schemas come from the handlers' annotations.

use utoipa::Modify;
use utoipa::openapi::OpenApi as Doc;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "EmailEngine API",
        description = "EmailEngine-compatible REST API served by emailengine-rs. Authenticate with \
            `Authorization: Bearer <token>` or `?access_token=<token>`."
    ),
    modifiers(&Security)
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut Doc) {
        doc.info.version = emailengine_core::COMPAT_VERSION.to_string();
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

//! The OpenAPI document, generated from the handlers' annotations so it
//! cannot drift from the routes.

use axum::Json;
use devbox_model::api;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Devbox API", description = "Cloud development environments that feel like virtual machines."),
    paths(
        super::health,
        super::devboxes::list, super::devboxes::create, super::devboxes::show, super::devboxes::update, super::devboxes::delete,
        super::devboxes::start, super::devboxes::stop, super::devboxes::restart,
        super::exec::exec, super::exec::exec_ws, super::logs::logs,
        super::commits::commit, super::commits::history, super::commits::rollback, super::commits::diff, super::commits::gc,
        super::images::list, super::images::show, super::images::delete, super::images::import, super::images::pull,
        super::push::push,
        super::keys::list, super::keys::add, super::keys::remove,
        super::ssh::info, super::ssh::tunnel, super::ssh::open,
        super::events::events,
        super::ports::list, super::ports::set, super::ports::share, super::ports::revoke,
        super::session::sign_in, super::session::current, super::session::sign_out,
        super::releases::create, super::releases::list, super::releases::delete,
    ),
    components(schemas(
        api::ErrorBody, api::ErrorDetail, api::ErrorCode, api::Health, api::CreateDevbox, api::Devbox,
        api::ExecRequest, api::ExecResponse, api::ExecClientMsg, api::ExecServerMsg, api::Image,
        api::CommitRequest, api::Commit, api::CommitTrigger, api::RollbackRequest, api::Diff, api::DiffEntry,
        api::IgnoredEntry, api::PathChange, api::GcRequest, api::GcReport,
        api::PullRequest, api::PushRequest, api::ProgressEvent, api::LayerInfo, api::UpdateDevbox, api::CommandStatus,
        devbox_model::Resources, devbox_model::State, api::Event, api::EventKind, api::Port, api::PortAccess, api::SetPort, api::ShareRequest, api::ShareLink, api::SignIn, api::SessionInfo,
        api::SshKey, api::AddSshKey, api::SshInfo, api::Ide, api::IdeLink,
        api::CreateRelease, api::Release,
    )),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `GET /api/v1/openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented() {
        let doc = ApiDoc::openapi();
        for path in [
            "/healthz",
            "/api/v1/devboxes",
            "/api/v1/devboxes/{name}",
            "/api/v1/devboxes/{name}/start",
            "/api/v1/devboxes/{name}/stop",
            "/api/v1/devboxes/{name}/restart",
            "/api/v1/devboxes/{name}/exec",
            "/api/v1/keys",
            "/api/v1/keys/{id}",
            "/api/v1/ssh",
            "/api/v1/devboxes/{name}/ssh",
            "/api/v1/devboxes/{name}/open",
            "/api/v1/devboxes/{name}/exec/ws",
            "/api/v1/devboxes/{name}/logs",
            "/api/v1/images",
            "/api/v1/images/{reference}",
            "/api/v1/images/import",
            "/api/v1/images/pull",
            "/api/v1/devboxes/{name}/commits",
            "/api/v1/devboxes/{name}/rollback",
            "/api/v1/devboxes/{name}/diff",
            "/api/v1/gc",
            "/api/v1/images/push",
            "/api/v1/events",
            "/api/v1/devboxes/{name}/ports",
            "/api/v1/devboxes/{name}/ports/{port}",
            "/api/v1/devboxes/{name}/ports/{port}/share",
            "/api/v1/devboxes/{name}/releases",
            "/api/v1/devboxes/{name}/releases/{version}",
        ] {
            assert!(
                doc.paths.paths.contains_key(path),
                "{path} missing from the OpenAPI document"
            );
        }
    }
}

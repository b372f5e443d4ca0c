//! The route table, documented with OpenAPI (served at `/openapi.json`).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::{self, BackupRequest, JsonBody, RestoreRequest};
use crate::error::ApiResult;
use crate::files;
use crate::state::{AppState, Family, User};

type Q = Query<HashMap<String, String>>;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "fzip",
        description = "FZIP backup, restore, export and import of personal-finance profiles. \
            Every /fzip route is also served under /api/fzip. Errors are RFC 9457 problem documents \
            with HouseF3's `error` (a stable code) and `message` keys.",
    ),
    modifiers(&Security),
    components(schemas(BackupRequest, RestoreRequest)),
    tags(
        (name = "backup", description = "Backups of a profile (the later design)"),
        (name = "restore", description = "Restores into an empty profile (the later design)"),
        (name = "export", description = "Exports (the earlier design): backups under another name"),
        (name = "import", description = "Imports with merge strategies (the earlier design)"),
        (name = "files", description = "Signed package download and upload URLs"),
        (name = "profile", description = "What the signed-in user's profile holds, and its analytics"),
        (name = "operations", description = "Health and metrics"),
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("A JWT whose `sub` is the user"))
                    .build(),
            ),
        );
    }
}

macro_rules! package_family {
    ($tag:literal, $family:expr, $create:ident, $list:ident, $status:ident, $download:ident, $delete:ident,
     $root:literal, $status_path:literal, $download_path:literal, $item_path:literal) => {
        #[utoipa::path(post, path = $root, tag = $tag, request_body = BackupRequest,
            params(("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe creation")),
            responses((status = 202, description = "Job created; Location points at its status"),
                      (status = 400, description = "Bad request"), (status = 401, description = "No valid token"),
                      (status = 422, description = "Not supported")),
            security(("bearer" = [])))]
        async fn $create(State(s): State<AppState>, User(u): User, headers: HeaderMap, JsonBody(b): JsonBody<BackupRequest>) -> ApiResult<Response> {
            api::create_package_job(s, u, $family, headers, b).await
        }

        #[utoipa::path(get, path = $root, tag = $tag,
            params(("limit" = Option<u64>, Query, description = "1–100, default 20"),
                   ("offset" = Option<u64>, Query, description = "Skip this many"),
                   ("cursor" = Option<String>, Query, description = "nextCursor of the previous page")),
            responses((status = 200, description = "Jobs, newest first, with total and the next page's cursor"),
                      (status = 401, description = "No valid token")),
            security(("bearer" = [])))]
        async fn $list(State(s): State<AppState>, User(u): User, Query(q): Q) -> ApiResult<Response> {
            api::list_jobs(s, u, $family, q).await
        }

        #[utoipa::path(get, path = $status_path, tag = $tag, params(("id" = String, Path)),
            responses((status = 200, description = "Status, progress, phase, package size, expiry, checksums, quality"),
                      (status = 404, description = "No such job for this user")),
            security(("bearer" = [])))]
        async fn $status(State(s): State<AppState>, User(u): User, Path(id): Path<String>, headers: HeaderMap) -> ApiResult<Response> {
            api::job_status(s, u, $family, id, headers).await
        }

        #[utoipa::path(get, path = $download_path, tag = $tag, params(("id" = String, Path),
                ("format" = Option<String>, Query, description = "`json` for {downloadUrl, filename, expiresAt} instead of a redirect")),
            responses((status = 302, description = "Redirect to a signed URL"),
                      (status = 200, description = "With ?format=json, an Accept naming application/json, or Content-Type: application/json (HouseF3's client): {downloadUrl, filename, expiresAt}"),
                      (status = 409, description = "Not completed yet"), (status = 410, description = "Expired"),
                      (status = 404, description = "No such job for this user")),
            security(("bearer" = [])))]
        async fn $download(State(s): State<AppState>, User(u): User, Path(id): Path<String>, headers: HeaderMap, Query(q): Q) -> ApiResult<Response> {
            api::download(s, u, $family, id, headers, q).await
        }

        #[utoipa::path(delete, path = $item_path, tag = $tag, params(("id" = String, Path)),
            responses((status = 200, description = "Deleted, package included"), (status = 404, description = "No such job for this user")),
            security(("bearer" = [])))]
        async fn $delete(State(s): State<AppState>, User(u): User, Path(id): Path<String>) -> ApiResult<Response> {
            api::delete_job(s, u, $family, id).await
        }
    };
}

package_family!(
    "backup",
    Family::Backup,
    create_backup,
    list_backups,
    backup_status,
    backup_download,
    delete_backup,
    "/fzip/backup",
    "/fzip/backup/{id}/status",
    "/fzip/backup/{id}/download",
    "/fzip/backup/{id}"
);
package_family!(
    "export",
    Family::Export,
    create_export,
    list_exports,
    export_status,
    export_download,
    delete_export,
    "/fzip/export",
    "/fzip/export/{id}/status",
    "/fzip/export/{id}/download",
    "/fzip/export/{id}"
);

macro_rules! consumer_family {
    ($tag:literal, $family:expr, $create:ident, $upload_url:ident, $upload:ident, $list:ident, $status:ident,
     $start:ident, $cancel:ident, $retry:ident, $delete:ident,
     $root:literal, $upload_url_path:literal, $upload_path:literal, $status_path:literal, $start_path:literal,
     $cancel_path:literal, $retry_path:literal, $item_path:literal) => {
        #[utoipa::path(post, path = $root, tag = $tag, request_body = RestoreRequest,
            params(("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe creation")),
            responses((status = 202, description = "Job created, with uploadUrl {url, fields}"),
                      (status = 409, description = "PROFILE_NOT_EMPTY, with profileSummary and suggestion")),
            security(("bearer" = [])))]
        async fn $create(State(s): State<AppState>, User(u): User, headers: HeaderMap, JsonBody(b): JsonBody<RestoreRequest>) -> ApiResult<Response> {
            api::create_consumer_job(s, u, $family, headers, b).await
        }

        #[utoipa::path(post, path = $upload_url_path, tag = $tag, request_body = RestoreRequest,
            responses((status = 202, description = "{url, fields, expiresIn}: upload there (PUT the file, or POST the fields then `file`); validation starts when it arrives")),
            security(("bearer" = [])))]
        async fn $upload_url(State(s): State<AppState>, User(u): User, headers: HeaderMap, JsonBody(b): JsonBody<RestoreRequest>) -> ApiResult<Response> {
            api::upload_url(s, u, $family, headers, b).await
        }

        #[utoipa::path(post, path = $upload_path, tag = $tag, params(("id" = String, Path)),
            responses((status = 202, description = "Validation started"), (status = 409, description = "Not waiting for this")),
            security(("bearer" = [])))]
        async fn $upload(State(s): State<AppState>, User(u): User, Path(id): Path<String>) -> ApiResult<Response> {
            api::begin_validation(s, u, $family, id).await
        }

        #[utoipa::path(get, path = $root, tag = $tag,
            params(("limit" = Option<u64>, Query, description = "1–100, default 20"),
                   ("lastEvaluatedKey" = Option<String>, Query, description = "nextEvaluatedKey of the previous page")),
            responses((status = 200, description = "Jobs, newest first")),
            security(("bearer" = [])))]
        async fn $list(State(s): State<AppState>, User(u): User, Query(q): Q) -> ApiResult<Response> {
            api::list_jobs(s, u, $family, q).await
        }

        #[utoipa::path(get, path = $status_path, tag = $tag, params(("id" = String, Path)),
            responses((status = 200, description = "validationResults; summary while awaiting confirmation; results when done"),
                      (status = 404, description = "No such job for this user")),
            security(("bearer" = [])))]
        async fn $status(State(s): State<AppState>, User(u): User, Path(id): Path<String>, headers: HeaderMap) -> ApiResult<Response> {
            api::job_status(s, u, $family, id, headers).await
        }

        #[utoipa::path(post, path = $start_path, tag = $tag, params(("id" = String, Path)),
            responses((status = 202, description = "Confirmed; processing"), (status = 409, description = "Not awaiting confirmation, or PROFILE_NOT_EMPTY")),
            security(("bearer" = [])))]
        async fn $start(State(s): State<AppState>, User(u): User, Path(id): Path<String>) -> ApiResult<Response> {
            api::start(s, u, $family, id).await
        }

        #[utoipa::path(post, path = $cancel_path, tag = $tag, params(("id" = String, Path)),
            responses((status = 200, description = "Canceled; nothing was written"), (status = 409, description = "Already finished")),
            security(("bearer" = [])))]
        async fn $cancel(State(s): State<AppState>, User(u): User, Path(id): Path<String>) -> ApiResult<Response> {
            api::cancel(s, u, $family, id).await
        }

        #[utoipa::path(post, path = $retry_path, tag = $tag, params(("id" = String, Path)),
            responses((status = 202, description = "Validating again"), (status = 409, description = "Not failed")),
            security(("bearer" = [])))]
        async fn $retry(State(s): State<AppState>, User(u): User, Path(id): Path<String>) -> ApiResult<Response> {
            api::retry(s, u, $family, id).await
        }

        #[utoipa::path(delete, path = $item_path, tag = $tag, params(("id" = String, Path)),
            responses((status = 204, description = "Deleted, uploaded package included"), (status = 404, description = "No such job for this user")),
            security(("bearer" = [])))]
        async fn $delete(State(s): State<AppState>, User(u): User, Path(id): Path<String>) -> ApiResult<Response> {
            api::delete_job(s, u, $family, id).await
        }
    };
}

consumer_family!(
    "restore",
    Family::Restore,
    create_restore,
    restore_upload_url,
    restore_upload,
    list_restores,
    restore_status,
    restore_start,
    restore_cancel,
    restore_retry,
    delete_restore,
    "/fzip/restore",
    "/fzip/restore/upload-url",
    "/fzip/restore/{id}/upload",
    "/fzip/restore/{id}/status",
    "/fzip/restore/{id}/start",
    "/fzip/restore/{id}/cancel",
    "/fzip/restore/{id}/retry",
    "/fzip/restore/{id}"
);
consumer_family!(
    "import",
    Family::Import,
    create_import,
    import_upload_url,
    import_upload,
    list_imports,
    import_status,
    import_start,
    import_cancel,
    import_retry,
    delete_import,
    "/fzip/import",
    "/fzip/import/upload-url",
    "/fzip/import/{id}/upload",
    "/fzip/import/{id}/status",
    "/fzip/import/{id}/start",
    "/fzip/import/{id}/cancel",
    "/fzip/import/{id}/retry",
    "/fzip/import/{id}"
);

#[utoipa::path(get, path = "/fzip/files/{token}", tag = "files", params(("token" = String, Path)),
    responses((status = 200, description = "The package (Range and ETag supported)"), (status = 206, description = "Part of it"),
              (status = 403, description = "Tampered or expired URL"), (status = 410, description = "Deleted or expired")))]
async fn download_file(
    state: State<AppState>,
    token: Path<String>,
    method: axum::http::Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    files::download(state, token, method, headers).await
}

#[utoipa::path(put, path = "/fzip/upload/{token}", tag = "files", params(("token" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/zip"),
    responses((status = 204, description = "Stored"), (status = 403, description = "Tampered or expired URL"),
              (status = 413, description = "Larger than the server accepts")))]
async fn upload_put(
    state: State<AppState>,
    token: Path<String>,
    request: axum::extract::Request,
) -> ApiResult<Response> {
    files::upload(state, token, request).await
}

#[utoipa::path(post, path = "/fzip/upload/{token}", tag = "files", params(("token" = String, Path)),
    request_body(content = String, content_type = "multipart/form-data", description = "The fields of uploadUrl.fields, then `file`"),
    responses((status = 204, description = "Stored"), (status = 403, description = "Tampered or expired URL"),
              (status = 413, description = "Larger than the server accepts")))]
async fn upload_post(
    state: State<AppState>,
    token: Path<String>,
    request: axum::extract::Request,
) -> ApiResult<Response> {
    files::upload(state, token, request).await
}

#[utoipa::path(get, path = "/fzip/profile", tag = "profile",
    responses((status = 200, description = "What the profile holds (the CLI's `fzip --json profile summary`): counts per collection, \
                category rules, statement files with stored bytes and their size, the transaction date range, `empty`"),
              (status = 401, description = "No valid token")),
    security(("bearer" = [])))]
async fn profile_summary(State(s): State<AppState>, User(u): User) -> ApiResult<Response> {
    api::profile_summary(s, u).await
}

#[utoipa::path(get, path = "/fzip/profile/analytics", tag = "profile",
    responses((status = 200, description = "{records, accounts, categories}: the analytics records the profile holds (`cash_flow` per \
                account and month, `category_trends` per month), with account and category names to label them"),
              (status = 401, description = "No valid token")),
    security(("bearer" = [])))]
async fn profile_analytics(State(s): State<AppState>, User(u): User) -> ApiResult<Response> {
    api::profile_analytics(s, u).await
}

#[utoipa::path(post, path = "/fzip/profile/analytics/recompute", tag = "profile",
    responses((status = 200, description = "{userId, records}: the analytics were computed again from the transactions"),
              (status = 401, description = "No valid token")),
    security(("bearer" = [])))]
async fn recompute_analytics(State(s): State<AppState>, User(u): User) -> ApiResult<Response> {
    api::recompute_analytics(s, u).await
}

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "{status: ok}")))]
async fn healthz(State(s): State<AppState>) -> ApiResult<Response> {
    s.blocking(|st| Ok(st.jobs.list_audit(Some("-"), 1)?))
        .await?;
    Ok(
        Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
            .into_response(),
    )
}

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format")))]
async fn metrics_text(State(s): State<AppState>) -> Response {
    let mut r = s.metrics.render().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// The API routes and their OpenAPI document.
pub fn api() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, openapi) = OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi())
        .routes(routes!(create_backup, list_backups))
        .routes(routes!(backup_status))
        .routes(routes!(backup_download))
        .routes(routes!(delete_backup))
        .routes(routes!(create_export, list_exports))
        .routes(routes!(export_status))
        .routes(routes!(export_download))
        .routes(routes!(delete_export))
        .routes(routes!(create_restore, list_restores))
        .routes(routes!(restore_upload_url))
        .routes(routes!(restore_upload))
        .routes(routes!(restore_status))
        .routes(routes!(restore_start))
        .routes(routes!(restore_cancel))
        .routes(routes!(restore_retry))
        .routes(routes!(delete_restore))
        .routes(routes!(create_import, list_imports))
        .routes(routes!(import_upload_url))
        .routes(routes!(import_upload))
        .routes(routes!(import_status))
        .routes(routes!(import_start))
        .routes(routes!(import_cancel))
        .routes(routes!(import_retry))
        .routes(routes!(delete_import))
        .routes(routes!(download_file))
        .routes(without_body_limit(routes!(upload_put, upload_post)))
        .routes(routes!(profile_summary))
        .routes(routes!(profile_analytics))
        .routes(routes!(recompute_analytics))
        .routes(routes!(healthz))
        .routes(routes!(metrics_text))
        .split_for_parts();
    (router, openapi)
}

/// Uploads stream into blob storage under the server's own size limit, not axum's default one.
fn without_body_limit(
    (schemas, paths, router): utoipa_axum::router::UtoipaMethodRouter<AppState>,
) -> utoipa_axum::router::UtoipaMethodRouter<AppState> {
    (
        schemas,
        paths,
        router.layer(axum::extract::DefaultBodyLimit::disable()),
    )
}

/// `/openapi.json`.
pub fn openapi_route(doc: utoipa::openapi::OpenApi) -> axum::Router<AppState> {
    let json = doc.to_json().unwrap_or_else(|_| "{}".into());
    axum::Router::new().route(
        "/openapi.json",
        get(move || {
            let json = json.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], json) }
        }),
    )
}

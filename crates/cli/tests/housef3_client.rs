//! HouseF3's own web client against a real `fzip serve`: its calls replayed in their exact form
//! and every answer checked against the zod schemas it parses them with.
//!
//! The client is `frontend/src/services/FZIPService.ts` of mazerunner70/housef3 (with its hooks
//! `useFZIPBackups`, `useFZIPRestore`, `useFZIPRestoreStatus` and `FZIPRestoreUpload.tsx`); the
//! schemas are `frontend/src/schemas/FZIP.ts` (zod 4). What the client does:
//!
//! - Every call goes through `authenticatedRequest`: headers `Authorization: <token>` (the bare
//!   JWT, no `Bearer `) and `Content-Type: application/json`, no `Accept` (so `fetch` sends
//!   `*/*`), redirects followed; anything but 2xx throws.
//! - `POST {api}/fzip/backup`, body `{includeAnalytics?, backupType?, description?}`
//!   (`backupType` one of complete, accounts_only, transactions_only, categories_only); maps
//!   `{backupId: jobId, status, estimatedSize, estimatedCompletion}` and parses it with
//!   `InitiateFZIPBackupResponseSchema`.
//! - `GET {api}/fzip/backup/{id}/status` and `GET {api}/fzip/backup?limit=&offset=`: each backup
//!   is parsed with `BackendFZIPBackupResponseSchema`, converted (`backupId ← jobId`,
//!   `requestedAt ← createdAt`, `progress || (completed ? 100 : 0)`, timestamps numbers or ISO
//!   text) and parsed with `FZIPBackupJobSchema`; the list with `FZIPBackupListResponseSchema`.
//!   Paging: the next `offset` is the number of backups received so far, `hasMore` says when.
//! - `GET {api}/fzip/backup/{id}/download`: on 200 reads JSON `downloadUrl || url`, then
//!   navigates a link to it. `DELETE {api}/fzip/backup/{id}`.
//! - Restore: `POST {api}/fzip/restore/upload-url` (no body) → `FZIPRestoreUploadUrlResponseSchema`;
//!   then `fetch(url, {method: 'POST', body: FormData(fields…, file)})`, no other headers; then
//!   polls `GET {api}/fzip/restore/{id}/status` (`FZIPRestoreJobSchema`) until it needs the user;
//!   `POST …/{id}/start`, `POST …/{id}/cancel`, `POST …/{id}/retry`, `DELETE …/{id}` (no body);
//!   `GET {api}/fzip/restore?limit=[&lastEvaluatedKey=]` → `FZIPRestoreListResponseSchema`,
//!   `hasMore = !!nextEvaluatedKey`.
//!
//! The schema facts the validators below mirror (zod: `.optional()` refuses `null`,
//! `.nullish()` takes it; objects are not `.strict()`, so other keys are ignored):
//!
//! - Backup status enum: backup_initiated, backup_processing, backup_completed, backup_failed.
//!   Backup type enum: complete, accounts_only, transactions_only, categories_only.
//! - Restore status enum: restore_uploaded, restore_validating, restore_validation_passed,
//!   restore_validation_failed, restore_awaiting_confirmation, restore_processing,
//!   restore_completed, restore_failed, restore_canceled.
//! - `BackendFZIPBackupResponseSchema`: jobId string, status string, createdAt string|number;
//!   optional backupType, jobType, downloadUrl, description, error (strings), completedAt and
//!   expiresAt (string|number), progress and packageSize (numbers).
//! - `FZIPBackupJobSchema`: backupId string, status and backupType enums, requestedAt number,
//!   progress number; nullish completedAt/expiresAt/packageSize numbers, downloadUrl/description/
//!   error strings, validation (`FZIPValidationSchema`: overall_quality string,
//!   data_integrity_score, completeness_score, files_processed, files_failed,
//!   compression_ratio, processing_time_seconds numbers, issues and recommendations string[]),
//!   manifest_checksums record of strings.
//! - `InitiateFZIPBackupResponseSchema`: backupId string, status enum, estimatedCompletion
//!   string nullish (the TS type also has estimatedSize?: string).
//! - `FZIPBackupListResponseSchema`: backups[], total, limit, offset numbers, hasMore boolean,
//!   packageFormat string optional.
//! - `FZIPRestoreUploadUrlResponseSchema`: restoreId string, url string, fields record of
//!   strings, expiresIn number.
//! - `FZIPRestoreJobSchema`: jobId string, status enum, createdAt number, progress number,
//!   currentPhase string; nullish completedAt, packageSize, updatedAt numbers, error string,
//!   summary (`FZIPRestoreSummarySchema`), validationResults (profileEmpty, schemaValid, ready
//!   booleans, businessValid boolean optional), restoreResults (`FZIPRestoreResultsSchema`).
//! - `FZIPRestoreSummarySchema`: accounts {count, items[{name, type}]}, categories {count,
//!   hierarchyDepth, items[{name, level, children}]}, file_maps {count, totalSize string},
//!   transaction_files {count, totalSize string, fileTypes string[]}, transactions {count,
//!   dateRange? {earliest, latest} strings}.
//! - `FZIPRestoreResultsSchema`: accounts, categories, file_maps, transaction_files,
//!   transactions each {created number, errors string[]}; total_processing_time string optional;
//!   warnings string[] optional.
//! - `FZIPRestoreListResponseSchema`: restoreJobs[], nextEvaluatedKey string optional,
//!   packageFormat string optional.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::{Map, Value, json};

mod support;

use support::{Env, Server};

// ---------------------------------------------------------------------------------------------
// The zod schemas, as small validators
// ---------------------------------------------------------------------------------------------

const BACKUP_STATUSES: &[&str] = &[
    "backup_initiated",
    "backup_processing",
    "backup_completed",
    "backup_failed",
];
const BACKUP_TYPES: &[&str] = &[
    "complete",
    "accounts_only",
    "transactions_only",
    "categories_only",
];
const RESTORE_STATUSES: &[&str] = &[
    "restore_uploaded",
    "restore_validating",
    "restore_validation_passed",
    "restore_validation_failed",
    "restore_awaiting_confirmation",
    "restore_processing",
    "restore_completed",
    "restore_failed",
    "restore_canceled",
];

/// One zod check failing: where and why.
type Check = Result<(), String>;

fn obj<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{at}: expected an object, got {v}"))
}

/// The kinds of value a key may hold.
#[derive(Clone, Copy)]
enum T {
    Str,
    Num,
    Bool,
    StrOrNum,
}

fn is(t: T, v: &Value) -> bool {
    match t {
        T::Str => v.is_string(),
        T::Num => v.is_number(),
        T::Bool => v.is_boolean(),
        T::StrOrNum => v.is_string() || v.is_number(),
    }
}

/// `z.string()` & co.: present and of its type.
fn required(o: &Map<String, Value>, key: &str, t: T, at: &str) -> Check {
    match o.get(key) {
        Some(v) if is(t, v) => Ok(()),
        Some(v) => Err(format!("{at}.{key}: wrong type: {v}")),
        None => Err(format!("{at}.{key}: required, missing")),
    }
}

/// `.optional()`: absent or of its type (never `null`).
fn optional(o: &Map<String, Value>, key: &str, t: T, at: &str) -> Check {
    match o.get(key) {
        None => Ok(()),
        Some(v) if is(t, v) => Ok(()),
        Some(v) => Err(format!("{at}.{key}: optional, but {v}")),
    }
}

/// `.nullish()`: absent, `null` or of its type.
fn nullish(o: &Map<String, Value>, key: &str, t: T, at: &str) -> Check {
    match o.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(v) if is(t, v) => Ok(()),
        Some(v) => Err(format!("{at}.{key}: nullish, but {v}")),
    }
}

fn one_of(o: &Map<String, Value>, key: &str, values: &[&str], at: &str) -> Check {
    match o.get(key).and_then(Value::as_str) {
        Some(s) if values.contains(&s) => Ok(()),
        other => Err(format!("{at}.{key}: {other:?} is not one of {values:?}")),
    }
}

fn strings(v: &Value, at: &str) -> Check {
    let a = v
        .as_array()
        .ok_or_else(|| format!("{at}: expected an array of strings, got {v}"))?;
    match a.iter().find(|s| !s.is_string()) {
        Some(bad) => Err(format!("{at}: {bad} is not a string")),
        None => Ok(()),
    }
}

fn string_record(v: &Value, at: &str) -> Check {
    for (k, x) in obj(v, at)? {
        if !x.is_string() {
            return Err(format!("{at}.{k}: {x} is not a string"));
        }
    }
    Ok(())
}

/// `BackendFZIPBackupResponseSchema`.
fn backend_backup(v: &Value) -> Check {
    let at = "backup";
    let o = obj(v, at)?;
    required(o, "jobId", T::Str, at)?;
    required(o, "status", T::Str, at)?;
    required(o, "createdAt", T::StrOrNum, at)?;
    for k in [
        "backupType",
        "jobType",
        "downloadUrl",
        "description",
        "error",
    ] {
        optional(o, k, T::Str, at)?;
    }
    for k in ["completedAt", "expiresAt"] {
        optional(o, k, T::StrOrNum, at)?;
    }
    for k in ["progress", "packageSize"] {
        optional(o, k, T::Num, at)?;
    }
    Ok(())
}

/// The client's `convertBackupResponseToFrontend` after its first parse.
fn convert_backup(v: &Value) -> Value {
    let ts = |k: &str| match v.get(k) {
        Some(Value::Number(n)) if n.as_f64() != Some(0.0) => Value::Number(n.clone()),
        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| json!(t.timestamp_millis()))
            .or_else(|_| s.parse::<i64>().map(|n| json!(n)))
            .unwrap_or(Value::Null),
        _ => Value::Null,
    };
    let backup_type = v
        .get("backupType")
        .filter(|t| t.as_str().is_some_and(|s| !s.is_empty()))
        .cloned()
        .or_else(|| (v["jobType"] == "backup").then(|| json!("complete")))
        .unwrap_or(Value::Null);
    let progress = match v.get("progress") {
        Some(p) if p.as_f64().is_some_and(|p| p != 0.0) => p.clone(),
        _ => json!(if v["status"] == "backup_completed" {
            100
        } else {
            0
        }),
    };
    let mut out = json!({
        "backupId": v["jobId"],
        "status": v["status"],
        "backupType": backup_type,
        "requestedAt": ts("createdAt"),
        "completedAt": ts("completedAt"),
        "progress": progress,
        "downloadUrl": v.get("downloadUrl").cloned().unwrap_or(Value::Null),
        "expiresAt": ts("expiresAt"),
        "packageSize": v.get("packageSize").filter(|n| n.is_number()).cloned().unwrap_or(Value::Null),
        "description": v.get("description").cloned().unwrap_or(Value::Null),
        "error": v.get("error").cloned().unwrap_or(Value::Null),
    });
    // Not copied by the converter, but part of the job type the client declares: checked too.
    for k in ["validation", "manifest_checksums"] {
        if let Some(x) = v.get(k) {
            out[k] = x.clone();
        }
    }
    out
}

/// `FZIPBackupJobSchema`.
fn backup_job(v: &Value) -> Check {
    let at = "FZIPBackupJob";
    let o = obj(v, at)?;
    required(o, "backupId", T::Str, at)?;
    one_of(o, "status", BACKUP_STATUSES, at)?;
    one_of(o, "backupType", BACKUP_TYPES, at)?;
    required(o, "requestedAt", T::Num, at)?;
    required(o, "progress", T::Num, at)?;
    for k in ["completedAt", "expiresAt", "packageSize"] {
        nullish(o, k, T::Num, at)?;
    }
    for k in ["downloadUrl", "description", "error"] {
        nullish(o, k, T::Str, at)?;
    }
    match o.get("validation") {
        None | Some(Value::Null) => {}
        Some(q) => {
            let at = "FZIPBackupJob.validation";
            let q = obj(q, at)?;
            required(q, "overall_quality", T::Str, at)?;
            for k in [
                "data_integrity_score",
                "completeness_score",
                "files_processed",
                "files_failed",
                "compression_ratio",
                "processing_time_seconds",
            ] {
                required(q, k, T::Num, at)?;
            }
            strings(&q["issues"], &format!("{at}.issues"))?;
            strings(&q["recommendations"], &format!("{at}.recommendations"))?;
        }
    }
    match o.get("manifest_checksums") {
        None | Some(Value::Null) => Ok(()),
        Some(c) => string_record(c, "FZIPBackupJob.manifest_checksums"),
    }
}

/// What the client does with one backup of a status or list answer.
fn client_backup(raw: &Value) -> Value {
    backend_backup(raw).unwrap_or_else(|e| panic!("BackendFZIPBackupResponseSchema: {e}\n{raw}"));
    let job = convert_backup(raw);
    backup_job(&job).unwrap_or_else(|e| panic!("FZIPBackupJobSchema: {e}\n{raw}"));
    job
}

/// `InitiateFZIPBackupResponseSchema` of what the client maps from the answer.
fn initiate_response(raw: &Value) -> Check {
    let mapped = json!({
        "backupId": raw.get("jobId").cloned().unwrap_or(Value::Null),
        "status": raw.get("status").cloned().unwrap_or(Value::Null),
        "estimatedSize": raw.get("estimatedSize").cloned().unwrap_or(Value::Null),
        "estimatedCompletion": raw.get("estimatedCompletion").cloned().unwrap_or(Value::Null),
    });
    let at = "InitiateFZIPBackupResponse";
    let o = obj(&mapped, at)?;
    required(o, "backupId", T::Str, at)?;
    one_of(o, "status", BACKUP_STATUSES, at)?;
    nullish(o, "estimatedCompletion", T::Str, at)?;
    nullish(o, "estimatedSize", T::Str, at)
}

/// `FZIPBackupListResponseSchema` of the converted list.
fn backup_list(raw: &Value) -> Vec<Value> {
    let at = "FZIPBackupListResponse";
    let o = obj(raw, at).unwrap();
    let backups: Vec<Value> = raw["backups"]
        .as_array()
        .unwrap_or_else(|| panic!("{at}.backups: not an array: {raw}"))
        .iter()
        .map(client_backup)
        .collect();
    for k in ["total", "limit", "offset"] {
        required(o, k, T::Num, at).unwrap();
    }
    required(o, "hasMore", T::Bool, at).unwrap();
    optional(o, "packageFormat", T::Str, at).unwrap();
    backups
}

/// `FZIPRestoreUploadUrlResponseSchema`.
fn upload_url_response(v: &Value) -> Check {
    let at = "FZIPRestoreUploadUrlResponse";
    let o = obj(v, at)?;
    required(o, "restoreId", T::Str, at)?;
    required(o, "url", T::Str, at)?;
    string_record(&v["fields"], &format!("{at}.fields"))?;
    required(o, "expiresIn", T::Num, at)
}

fn is_day(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() && s.len() == 10)
}

/// `FZIPRestoreSummarySchema`.
fn restore_summary(v: &Value) -> Check {
    let at = "summary";
    obj(v, at)?;
    let part = |k: &str| obj(&v[k], &format!("{at}.{k}"));
    let accounts = part("accounts")?;
    required(accounts, "count", T::Num, "summary.accounts")?;
    for (i, a) in v["accounts"]["items"]
        .as_array()
        .ok_or("summary.accounts.items: not an array")?
        .iter()
        .enumerate()
    {
        let at = format!("summary.accounts.items[{i}]");
        let a = obj(a, &at)?;
        required(a, "name", T::Str, &at)?;
        required(a, "type", T::Str, &at)?;
    }
    let categories = part("categories")?;
    required(categories, "count", T::Num, "summary.categories")?;
    required(categories, "hierarchyDepth", T::Num, "summary.categories")?;
    for (i, c) in v["categories"]["items"]
        .as_array()
        .ok_or("summary.categories.items: not an array")?
        .iter()
        .enumerate()
    {
        let at = format!("summary.categories.items[{i}]");
        let c = obj(c, &at)?;
        required(c, "name", T::Str, &at)?;
        required(c, "level", T::Num, &at)?;
        required(c, "children", T::Num, &at)?;
    }
    let maps = part("file_maps")?;
    required(maps, "count", T::Num, "summary.file_maps")?;
    required(maps, "totalSize", T::Str, "summary.file_maps")?;
    let files = part("transaction_files")?;
    required(files, "count", T::Num, "summary.transaction_files")?;
    required(files, "totalSize", T::Str, "summary.transaction_files")?;
    strings(
        &v["transaction_files"]["fileTypes"],
        "summary.transaction_files.fileTypes",
    )?;
    let tx = part("transactions")?;
    required(tx, "count", T::Num, "summary.transactions")?;
    match tx.get("dateRange") {
        None => Ok(()),
        Some(r) => {
            let at = "summary.transactions.dateRange";
            let o = obj(r, at)?;
            required(o, "earliest", T::Str, at)?;
            required(o, "latest", T::Str, at)?;
            if is_day(&r["earliest"]) && is_day(&r["latest"]) {
                Ok(())
            } else {
                Err(format!("{at}: not YYYY-MM-DD: {r}"))
            }
        }
    }
}

/// `FZIPRestoreResultsSchema`.
fn restore_results(v: &Value) -> Check {
    let at = "restoreResults";
    let o = obj(v, at)?;
    for k in [
        "accounts",
        "categories",
        "file_maps",
        "transaction_files",
        "transactions",
    ] {
        let at = format!("{at}.{k}");
        let e = obj(&v[k], &at)?;
        required(e, "created", T::Num, &at)?;
        strings(&v[k]["errors"], &format!("{at}.errors"))?;
    }
    optional(o, "total_processing_time", T::Str, at)?;
    match o.get("warnings") {
        None => Ok(()),
        Some(w) => strings(w, "restoreResults.warnings"),
    }
}

/// `FZIPRestoreJobSchema`.
fn restore_job(v: &Value) -> Check {
    let at = "FZIPRestoreJob";
    let o = obj(v, at)?;
    required(o, "jobId", T::Str, at)?;
    one_of(o, "status", RESTORE_STATUSES, at)?;
    required(o, "createdAt", T::Num, at)?;
    required(o, "progress", T::Num, at)?;
    required(o, "currentPhase", T::Str, at)?;
    for k in ["completedAt", "packageSize", "updatedAt"] {
        nullish(o, k, T::Num, at)?;
    }
    nullish(o, "error", T::Str, at)?;
    if let Some(s) = o.get("summary").filter(|s| !s.is_null()) {
        restore_summary(s)?;
    }
    if let Some(r) = o.get("validationResults").filter(|s| !s.is_null()) {
        let at = "FZIPRestoreJob.validationResults";
        let r = obj(r, at)?;
        for k in ["profileEmpty", "schemaValid", "ready"] {
            required(r, k, T::Bool, at)?;
        }
        optional(r, "businessValid", T::Bool, at)?;
    }
    if let Some(r) = o.get("restoreResults").filter(|s| !s.is_null()) {
        restore_results(r)?;
    }
    Ok(())
}

fn client_restore(v: &Value) {
    restore_job(v).unwrap_or_else(|e| panic!("FZIPRestoreJobSchema: {e}\n{v}"));
}

/// `FZIPRestoreListResponseSchema`.
fn restore_list(v: &Value) -> Check {
    let at = "FZIPRestoreListResponse";
    let o = obj(v, at)?;
    for job in v["restoreJobs"]
        .as_array()
        .ok_or("FZIPRestoreListResponse.restoreJobs: not an array")?
    {
        restore_job(job)?;
    }
    optional(o, "nextEvaluatedKey", T::Str, at)?;
    optional(o, "packageFormat", T::Str, at)
}

#[test]
fn the_validators_catch_what_zod_refuses() {
    // Each of these broke HouseF3's client against fzip before; the validators must see it.
    let good = json!({"jobId": "j", "status": "backup_completed", "createdAt": 1, "backupType": "complete"});
    assert!(backend_backup(&good).is_ok());
    assert!(backup_job(&convert_backup(&good)).is_ok());
    let expired = json!({"jobId": "j", "status": "backup_expired", "createdAt": 1});
    assert!(backup_job(&convert_backup(&expired)).is_err());
    let null_error =
        json!({"jobId": "j", "status": "backup_failed", "createdAt": 1, "error": null});
    assert!(backend_backup(&null_error).is_err());
    let base = json!({"jobId": "r", "status": "restore_completed", "createdAt": 1, "progress": 100,
        "currentPhase": "completed"});
    assert!(restore_job(&base).is_ok());
    let entry = json!({"created": 1, "errors": []});
    let mut results = json!({"accounts": entry, "categories": entry, "file_maps": entry,
        "transaction_files": entry, "transactions": entry, "total_processing_time": "1.0s"});
    let mut job = base.clone();
    job["restoreResults"] = results.clone();
    assert!(restore_job(&job).is_ok());
    results["total_processing_time"] = json!(1.0);
    job["restoreResults"] = results;
    assert!(restore_job(&job).is_err());
    let mut job = base.clone();
    job["summary"] = json!({"accounts": {"count": 0, "items": []},
        "categories": {"count": 0, "hierarchyDepth": 0, "items": []},
        "file_maps": {"count": 0, "totalSize": "0 B"},
        "transaction_files": {"count": 0, "totalSize": "0 B", "fileTypes": []},
        "transactions": {"count": 1, "dateRange": {"earliest": 1_700_000_000_000i64, "latest": 1}}});
    assert!(restore_job(&job).is_err());
    assert!(restore_list(&json!({"restoreJobs": [], "nextEvaluatedKey": null})).is_err());
}

// ---------------------------------------------------------------------------------------------
// The client's calls, in their exact form
// ---------------------------------------------------------------------------------------------

/// HouseF3's `authenticatedRequest`: bare token, `Content-Type: application/json`, no
/// `Accept` beyond `fetch`'s `*/*`, redirects followed.
struct HouseF3<'a> {
    server: &'a Server,
    http: Client,
    token: String,
}

impl<'a> HouseF3<'a> {
    fn new(server: &'a Server, token: String) -> Self {
        HouseF3 {
            server,
            http: Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
            token,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, self.server.url(&format!("/api{path}")))
            .header("authorization", &self.token)
            .header("content-type", "application/json")
            .header("accept", "*/*")
    }

    /// `response.ok` or the client throws; then `response.json()`.
    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut r = self.request(method.clone(), path);
        if let Some(b) = body {
            r = r.body(b.to_string());
        }
        let resp = r.send().unwrap();
        let status = resp.status();
        let text = resp.text().unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None)
    }

    fn post(&self, path: &str, body: Option<Value>) -> Value {
        self.call(reqwest::Method::POST, path, body)
    }

    fn delete(&self, path: &str) {
        self.call(reqwest::Method::DELETE, path, None);
    }

    /// `initiateFZIPBackup`.
    fn initiate_backup(&self, request: Value) -> Value {
        let raw = self.post("/fzip/backup", Some(request));
        initiate_response(&raw).unwrap_or_else(|e| panic!("{e}\n{raw}"));
        raw
    }

    /// `getFZIPBackupStatus`, polled (as the page does) until the backup is done.
    fn backup_status_until_done(&self, id: &str) -> (Value, Value) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let raw = self.get(&format!("/fzip/backup/{id}/status"));
            let job = client_backup(&raw);
            if job["status"] != "backup_initiated" && job["status"] != "backup_processing" {
                return (raw, job);
            }
            assert!(
                Instant::now() < deadline,
                "backup {id} never finished: {raw}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A backup's raw status, polled until it is done (for the design documents' types, which
    /// HouseF3's client's enum does not name).
    fn raw_backup_until_done(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let raw = self.get(&format!("/fzip/backup/{id}/status"));
            if raw["status"] != "backup_initiated" && raw["status"] != "backup_processing" {
                return raw;
            }
            assert!(
                Instant::now() < deadline,
                "backup {id} never finished: {raw}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `getFZIPRestoreStatus`, polled until the status is one of `until`.
    fn restore_status_until(&self, id: &str, until: &[&str]) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let v = self.get(&format!("/fzip/restore/{id}/status"));
            client_restore(&v);
            if until.iter().any(|s| v["status"] == *s) {
                return v;
            }
            assert!(Instant::now() < deadline, "restore {id} stuck: {v}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `FZIPRestoreUpload.handleUpload`: the upload URL, then the form POST (fields, then
    /// `file`) with no headers of its own.
    fn upload(&self, package: &[u8]) -> String {
        let v = self.post("/fzip/restore/upload-url", None);
        upload_url_response(&v).unwrap_or_else(|e| panic!("{e}\n{v}"));
        let mut form = reqwest::blocking::multipart::Form::new();
        for (k, val) in v["fields"].as_object().unwrap() {
            form = form.text(k.clone(), val.as_str().unwrap().to_string());
        }
        form = form.part(
            "file",
            reqwest::blocking::multipart::Part::bytes(package.to_vec())
                .file_name("backup.fzip")
                .mime_str("application/octet-stream")
                .unwrap(),
        );
        let r = self
            .http
            .post(v["url"].as_str().unwrap())
            .multipart(form)
            .send()
            .unwrap();
        assert!(r.status().is_success(), "upload: {}", r.text().unwrap());
        v["restoreId"].as_str().unwrap().to_string()
    }

    /// `listFZIPRestoreJobs`, every page.
    fn restore_pages(&self, limit: u64) -> Vec<Value> {
        let mut jobs = Vec::new();
        let mut key: Option<String> = None;
        loop {
            let path = match &key {
                None => format!("/fzip/restore?limit={limit}"),
                Some(k) => format!("/fzip/restore?limit={limit}&lastEvaluatedKey={k}"),
            };
            let v = self.get(&path);
            restore_list(&v).unwrap_or_else(|e| panic!("{e}\n{v}"));
            jobs.extend(v["restoreJobs"].as_array().unwrap().iter().cloned());
            match v.get("nextEvaluatedKey").and_then(Value::as_str) {
                Some(k) => key = Some(k.to_string()),
                None => return jobs,
            }
            assert!(jobs.len() < 1000, "the restore list never ends");
        }
    }
}

fn demo(env: &Env, user: &str, transactions: &str, files: &str) {
    env.cli_ok(&[
        "-q",
        "demo-profile",
        "--user",
        user,
        "--transactions",
        transactions,
        "--files",
        files,
    ]);
}

fn serve(env: &Env, extra: &[&str]) -> Server {
    env.serve_on("127.0.0.1:0", extra, &[], &env.data())
}

fn the_whole_flow(env: Env) {
    demo(&env, "alice", "2000", "3");
    let server = serve(&env, &[]);
    let alice = HouseF3::new(&server, env.token("alice"));
    let bob = HouseF3::new(&server, env.token("bob"));

    // ---- backups: create, poll, list with paging, download, delete
    let mut ids = Vec::new();
    for (i, t) in ["complete", "complete", "accounts_only"].iter().enumerate() {
        let raw = alice.initiate_backup(json!({
            "includeAnalytics": i == 0, "backupType": t, "description": format!("backup {i}"),
        }));
        assert_eq!(raw["status"], "backup_initiated", "{raw}");
        ids.push(raw["jobId"].as_str().unwrap().to_string());
    }
    for id in &ids {
        let (raw, job) = alice.backup_status_until_done(id);
        assert_eq!(job["status"], "backup_completed", "{raw}");
        assert_eq!(job["progress"], 100);
        assert!(job["downloadUrl"].is_string(), "{raw}");
        assert!(job["expiresAt"].as_i64().unwrap() > job["requestedAt"].as_i64().unwrap());
    }
    let first = backup_list(&alice.get("/fzip/backup?limit=2&offset=0"));
    assert_eq!(first.len(), 2);
    let page = alice.get("/fzip/backup?limit=2&offset=0");
    assert_eq!(
        (page["hasMore"].clone(), page["total"].clone()),
        (json!(true), json!(3))
    );
    let second_raw = alice.get(&format!("/fzip/backup?limit=2&offset={}", first.len()));
    let second = backup_list(&second_raw);
    assert_eq!(second.len(), 1);
    assert_eq!(second_raw["hasMore"], false);
    let mut listed: Vec<&str> = first
        .iter()
        .chain(&second)
        .map(|b| b["backupId"].as_str().unwrap())
        .collect();
    listed.sort_unstable();
    let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(listed, want, "paging by offset lists every backup once");

    // getFZIPBackupDownloadUrl: JSON, never the ZIP (fetch follows redirects).
    let d = alice.get(&format!("/fzip/backup/{}/download", ids[0]));
    let url = d["downloadUrl"]
        .as_str()
        .or_else(|| d["url"].as_str())
        .unwrap_or_else(|| panic!("no downloadUrl: {d}"))
        .to_string();
    // downloadFZIPBackup: a link navigation to it (no token).
    let zip = Client::new().get(&url).send().unwrap();
    assert_eq!(zip.status(), StatusCode::OK);
    let package = zip.bytes().unwrap().to_vec();
    assert_eq!(&package[..2], b"PK");
    // curl -L and a browser navigation still get the file: a 302 to it.
    let no_redirects = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for accept in [
        "*/*",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ] {
        let r = no_redirects
            .get(server.url(&format!("/api/fzip/backup/{}/download", ids[0])))
            .header("authorization", format!("Bearer {}", alice.token))
            .header("accept", accept)
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::FOUND, "Accept: {accept}");
    }
    alice.delete(&format!("/fzip/backup/{}", ids[2]));
    assert_eq!(
        backup_list(&alice.get("/fzip/backup?limit=20&offset=0")).len(),
        2
    );

    // ---- restore: upload URL + form POST, poll through validation to the summary, start,
    // poll to completed, list
    let rid = bob.upload(&package);
    let v = bob.restore_status_until(
        &rid,
        &["restore_awaiting_confirmation", "restore_validation_failed"],
    );
    assert_eq!(v["status"], "restore_awaiting_confirmation", "{v}");
    let s = &v["summary"];
    assert_eq!(s["transactions"]["count"], 2000);
    assert!(s["accounts"]["items"][0]["name"].is_string());
    assert!(
        s["categories"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["level"] == 0),
        "{s}"
    );
    assert_eq!(s["transaction_files"]["count"], 3);
    assert!(
        !s["transaction_files"]["fileTypes"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(s["transactions"]["dateRange"].is_object(), "{s}");
    bob.post(&format!("/fzip/restore/{rid}/start"), None);
    let done = bob.restore_status_until(&rid, &["restore_completed", "restore_failed"]);
    assert_eq!(done["status"], "restore_completed", "{done}");
    assert_eq!(done["restoreResults"]["transactions"]["created"], 2000);
    assert!(done["restoreResults"]["total_processing_time"].is_string());
    assert_eq!(env.summary("bob")["transactions"], 2000);

    // ---- cancel (awaiting confirmation) and retry (a failed check, then the cause removed)
    let carol = HouseF3::new(&server, env.token("carol"));
    let cancel_id = carol.upload(&package);
    carol.restore_status_until(&cancel_id, &["restore_awaiting_confirmation"]);
    carol.post(&format!("/fzip/restore/{cancel_id}/cancel"), None);
    let canceled = carol.restore_status_until(&cancel_id, &["restore_canceled"]);
    assert!(canceled["completedAt"].is_number());
    assert!(env.summary("carol")["empty"].as_bool().unwrap());

    demo(&env, "carol", "10", "1");
    let retry_id = carol.upload(&package);
    let failed = carol.restore_status_until(
        &retry_id,
        &["restore_validation_failed", "restore_awaiting_confirmation"],
    );
    assert_eq!(failed["status"], "restore_validation_failed", "{failed}");
    assert_eq!(failed["validationResults"]["profileEmpty"], false);
    env.cli_ok(&["profile", "clear", "--user", "carol", "--yes"]);
    carol.post(&format!("/fzip/restore/{retry_id}/retry"), None);
    carol.restore_status_until(&retry_id, &["restore_awaiting_confirmation"]);
    carol.post(&format!("/fzip/restore/{retry_id}/start"), None);
    carol.restore_status_until(&retry_id, &["restore_completed"]);

    // The lists, every page (a completed restore among them), parse.
    let all = carol.restore_pages(1);
    let mut statuses: Vec<&str> = all.iter().map(|j| j["status"].as_str().unwrap()).collect();
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        ["restore_canceled", "restore_completed"],
        "{all:?}"
    );
    assert_eq!(bob.restore_pages(20).len(), 1);
    // Delete (the status hook's abort).
    carol.delete(&format!("/fzip/restore/{cancel_id}"));
    assert_eq!(carol.restore_pages(20).len(), 1);

    // ---- an expired backup: completed with a past expiresAt, download 410, lists still parse
    drop((alice, bob, carol));
    drop(server);
    let server = serve(&env, &["--package-ttl-hours", "0"]);
    let alice = HouseF3::new(&server, env.token("alice"));
    let id = alice.initiate_backup(json!({}))["jobId"]
        .as_str()
        .unwrap()
        .to_string();
    let (raw, job) = alice.backup_status_until_done(&id);
    assert_eq!(job["status"], "backup_completed", "{raw}");
    assert_eq!(
        raw["expired"], true,
        "fzip's page learns of the expiry: {raw}"
    );
    let now = chrono::Utc::now().timestamp_millis();
    assert!(job["expiresAt"].as_i64().unwrap() <= now, "{raw}");
    assert!(raw.get("downloadUrl").is_none(), "{raw}");
    let r = alice
        .request(reqwest::Method::GET, &format!("/fzip/backup/{id}/download"))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::GONE);
    let listed = backup_list(&alice.get("/fzip/backup?limit=20&offset=0"));
    assert_eq!(listed.len(), 3, "the expired backup breaks nothing");
}

fn cors_for_listed_origins_only(env: Env) {
    demo(&env, "alice", "50", "1");
    let origin = "http://localhost:5173";
    let server = serve(
        &env,
        &[
            "--cors-origin",
            origin,
            "--cors-origin",
            "https://app.example.com",
        ],
    );
    let http = Client::new();
    let preflight = |origin: &str, method: &str, path: &str| {
        http.request(reqwest::Method::OPTIONS, server.url(path))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
            .unwrap()
    };
    let header = |r: &Response, name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_ascii_lowercase())
    };
    for (method, path) in [
        ("POST", "/api/fzip/backup"),
        ("GET", "/api/fzip/backup/x/status"),
        ("DELETE", "/api/fzip/restore/x"),
        ("POST", "/api/fzip/restore/upload-url"),
    ] {
        let r = preflight(origin, method, path);
        assert!(r.status().is_success(), "{method} {path}: {}", r.status());
        assert_eq!(
            header(&r, "access-control-allow-origin").as_deref(),
            Some(origin)
        );
        let methods = header(&r, "access-control-allow-methods").unwrap();
        assert!(methods.contains(&method.to_ascii_lowercase()), "{methods}");
        let headers = header(&r, "access-control-allow-headers").unwrap();
        assert!(
            headers.contains("authorization") && headers.contains("content-type"),
            "{headers}"
        );
    }
    // Real calls carry the header too, errors included; the client's bare token works.
    let token = env.token("alice");
    let r = http
        .get(server.url("/api/fzip/backup?limit=20&offset=0"))
        .header("origin", origin)
        .header("authorization", &token)
        .header("content-type", "application/json")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some(origin)
    );
    let r = http
        .get(server.url("/api/fzip/backup"))
        .header("origin", "https://app.example.com")
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    // The upload URL (a form POST from the SPA's origin) answers with the header as well.
    let a = HouseF3::new(&server, token);
    let v = a.post("/fzip/restore/upload-url", None);
    let r = http
        .post(v["url"].as_str().unwrap())
        .header("origin", origin)
        .multipart(reqwest::blocking::multipart::Form::new().text("key", "nope"))
        .send()
        .unwrap();
    assert!(r.status().is_client_error());
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some(origin)
    );
    // An origin not listed: no CORS headers.
    let r = preflight("https://evil.example", "POST", "/api/fzip/backup");
    assert!(header(&r, "access-control-allow-origin").is_none());
    drop(a);
    drop(server);

    // None by default.
    let server = serve(&env, &[]);
    let r = Client::new()
        .request(reqwest::Method::OPTIONS, server.url("/api/fzip/backup"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .send()
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    drop(server);

    // A value that is no origin is a usage error.
    let (code, out) = env.cli(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--cors-origin",
        "localhost:5173/app",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("origin"), "{out}");
}

/// The earlier design's `backupType: "date_range"` is the date-range selection it names, and
/// creation answers carry the design's `estimatedSize` and `estimatedCompletion`.
fn design_documents_date_range_and_estimates(env: Env) {
    demo(&env, "alice", "3000", "2");
    let server = serve(&env, &[]);
    let alice = HouseF3::new(&server, env.token("alice"));
    let profile = alice.get("/fzip/profile");
    let (first, last) = (
        profile["firstTransactionDate"].as_i64().unwrap(),
        profile["lastTransactionDate"].as_i64().unwrap(),
    );
    let (from, to) = (first, first + (last - first) / 2);

    let before = chrono::Utc::now();
    let created = alice.post(
        "/fzip/backup",
        Some(json!({"backupType": "date_range", "dateRangeStart": from, "dateRangeEnd": to})),
    );
    let done_by =
        chrono::DateTime::parse_from_rfc3339(created["estimatedCompletion"].as_str().unwrap())
            .unwrap();
    assert!(
        done_by >= before - chrono::Duration::seconds(1),
        "{created}"
    );
    let size = created["estimatedSize"].as_str().unwrap();
    assert!(size.starts_with('~'), "{size}");
    let by_range = alice.raw_backup_until_done(created["jobId"].as_str().unwrap());
    assert_eq!(by_range["status"], "backup_completed", "{by_range}");
    assert_eq!(by_range["backupType"], "date_range");
    let selective = alice.post(
        "/fzip/backup",
        Some(json!({"backupType": "selective", "dateRangeStart": from, "dateRangeEnd": to})),
    );
    let by_selection = alice.raw_backup_until_done(selective["jobId"].as_str().unwrap());
    let n = by_range["dataSummary"]["transactions"].as_u64().unwrap();
    assert_eq!(
        n,
        by_selection["dataSummary"]["transactions"]
            .as_u64()
            .unwrap()
    );
    assert!(n > 0 && n < 3000, "only the range: {n}");

    // The estimate of a complete backup against what it weighs.
    let complete = alice.post("/fzip/backup", Some(json!({})));
    let estimate = complete["estimatedSizeBytes"].as_u64().unwrap();
    let (c, _) = alice.backup_status_until_done(complete["jobId"].as_str().unwrap());
    let actual = c["packageSize"].as_u64().unwrap();
    println!("estimated {estimate} bytes, package {actual} bytes");
    assert!(
        actual / 3 <= estimate && estimate <= actual * 3,
        "estimate {estimate} vs {actual}"
    );

    // date_range without dates, or with other filters: 400, saying what to send.
    for body in [
        json!({"backupType": "date_range"}),
        json!({"backupType": "date_range", "dateRangeStart": from, "accountIds": ["a"]}),
    ] {
        let r = alice
            .request(reqwest::Method::POST, "/fzip/backup")
            .body(body.to_string())
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(r.text().unwrap().contains("date_range"));
    }
}

macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite_local {
            $( #[test] fn $name() { super::$name(super::Env::new()); } )*
        }
        mod postgres_s3 {
            $(
                #[test]
                fn $name() {
                    if let Some(env) = super::Env::postgres_s3("housef3") {
                        super::$name(env);
                    }
                }
            )*
        }
    };
}

on_every_backend!(
    the_whole_flow,
    cors_for_listed_origins_only,
    design_documents_date_range_and_estimates,
);

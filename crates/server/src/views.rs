//! Jobs as the API shows them: HouseF3's key names and status strings, the design documents'
//! additions, one type per key (times are integer milliseconds), absent values omitted (never
//! `null`).

use fzip_engine::jobs::statuses;
use fzip_store::jobs::{Job, JobStatus};
use serde_json::{Map, Value, json};

use crate::state::Family;

/// A fresh download link for a completed backup.
pub struct DownloadLink {
    pub url: String,
    pub expires_at: i64,
    pub filename: String,
}

/// The file name a backup downloads as (HouseF3's).
pub fn package_filename(job: &Job) -> String {
    format!("{}_{}.fzip", job.job_type.as_str(), job.job_id)
}

fn put(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value
        && !v.is_null()
    {
        map.insert(key.to_string(), v);
    }
}

/// A package job's status, as of `now` (a backup past its expiry shows as expired even before
/// the sweeper removes the package).
pub fn effective_status(job: &Job, now: i64) -> JobStatus {
    let s = statuses(job.job_type);
    if job.job_type.produces_package()
        && job.status == s.completed
        && job.expires_at.is_some_and(|e| e <= now)
    {
        s.canceled_or_expired
    } else {
        job.status
    }
}

/// The fields every view has.
fn base(job: &Job, family: Family, now: i64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("jobId".into(), json!(job.job_id));
    m.insert(family.id_key().into(), json!(job.job_id));
    m.insert("jobType".into(), json!(job.job_type.as_str()));
    m.insert("status".into(), json!(effective_status(job, now).as_str()));
    m.insert("progress".into(), json!(job.progress));
    m.insert("currentPhase".into(), json!(job.current_phase));
    m.insert("packageFormat".into(), json!("fzip"));
    m.insert("createdAt".into(), json!(job.created_at));
    m.insert("updatedAt".into(), json!(job.updated_at));
    put(&mut m, "completedAt", job.completed_at.map(Value::from));
    put(&mut m, "expiresAt", job.expires_at.map(Value::from));
    put(&mut m, "packageSize", job.package_size.map(Value::from));
    put(&mut m, "error", job.error.clone().map(Value::from));
    put(&mut m, "errorMessage", job.error.clone().map(Value::from));
    put(&mut m, "errorCode", job.error_code.clone().map(Value::from));
    let p = &job.params;
    if job.job_type.produces_package() {
        m.insert(
            "backupType".into(),
            p.get("backupType")
                .cloned()
                .unwrap_or_else(|| json!("complete")),
        );
        m.insert(
            "includeAnalytics".into(),
            json!(job.param_bool("includeAnalytics")),
        );
        put(&mut m, "description", p.get("description").cloned());
        let filters: serde_json::Map<String, Value> = [
            "accountIds",
            "dateRangeStart",
            "dateRangeEnd",
            "categoryIds",
        ]
        .iter()
        .filter_map(|k| {
            p.get(*k)
                .filter(|v| !v.is_null())
                .map(|v| (k.to_string(), v.clone()))
        })
        .collect();
        if !filters.is_empty() {
            m.insert("filters".into(), Value::Object(filters));
        }
        put(&mut m, "selection", job.results.get("selection").cloned());
        put(
            &mut m,
            "postBackupVerification",
            job.results.get("postBackupVerification").cloned(),
        );
        put(
            &mut m,
            "packageSha256",
            job.package_sha256.clone().map(Value::from),
        );
        put(
            &mut m,
            "dataSummary",
            job.results.get("dataSummary").cloned(),
        );
        put(&mut m, "validation", job.results.get("validation").cloned());
        put(
            &mut m,
            "manifestChecksum",
            job.results.get("manifestChecksum").cloned(),
        );
        put(
            &mut m,
            "manifest_checksums",
            job.results.get("checksums").cloned(),
        );
        put(
            &mut m,
            "filesFailed",
            job.results
                .get("filesFailed")
                .cloned()
                .filter(|v| v.as_array().is_some_and(|a| !a.is_empty())),
        );
    } else {
        m.insert("validateOnly".into(), json!(job.param_bool("validateOnly")));
        put(&mut m, "mergeStrategy", p.get("mergeStrategy").cloned());
        put(&mut m, "uploadedAt", job.uploaded_at.map(Value::from));
        put(
            &mut m,
            "validationResults",
            job.results.get("validationResults").cloned(),
        );
        put(
            &mut m,
            "restoreResults",
            job.results.get("restoreResults").cloned(),
        );
        if family == Family::Import {
            // What the import did (created/updated/unchanged/skipped/conflicts, duplicates),
            // and before it runs, what it would do.
            put(
                &mut m,
                "importResults",
                job.results.get("importResults").cloned(),
            );
            put(
                &mut m,
                "importPreview",
                job.results.get("importPreview").cloned(),
            );
        }
    }
    m
}

/// `GET …/{id}/status`.
pub fn status(job: &Job, family: Family, now: i64, download: Option<DownloadLink>) -> Value {
    let mut m = base(job, family, now);
    if !job.job_type.produces_package() {
        // The preview only while it can still be confirmed.
        if job.status == statuses(job.job_type).awaiting
            || job.status == statuses(job.job_type).validation_passed
        {
            put(&mut m, "summary", job.results.get("summary").cloned());
        }
        put(
            &mut m,
            "validationReport",
            job.results.get("validationReport").cloned(),
        );
    }
    if let Some(d) = download {
        m.insert("downloadUrl".into(), json!(d.url));
        m.insert("downloadUrlExpiresAt".into(), json!(d.expires_at));
        m.insert("filename".into(), json!(d.filename));
    }
    Value::Object(m)
}

/// An item of `GET …` lists.
pub fn list_item(job: &Job, family: Family, now: i64) -> Value {
    Value::Object(base(job, family, now))
}

/// The answer to a request that created or moved a job.
pub fn accepted(job: &Job, family: Family, message: &str) -> Value {
    json!({
        "jobId": job.job_id,
        family.id_key(): job.job_id,
        "jobType": job.job_type.as_str(),
        "status": job.status.as_str(),
        "packageFormat": "fzip",
        "message": message,
    })
}

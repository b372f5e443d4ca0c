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
    // An expired backup reaches clients as HouseF3's backend expresses it: completed, with a
    // past `expiresAt` (its download answers 410), plus `expired: true` for those who want to
    // know without comparing clocks. `backup_expired` is not in HouseF3's client's status enum.
    let status = effective_status(job, now);
    let st = statuses(job.job_type);
    if job.job_type.produces_package() && status == st.canceled_or_expired {
        m.insert("status".into(), json!(st.completed.as_str()));
        m.insert("expired".into(), json!(true));
    } else {
        m.insert("status".into(), json!(status.as_str()));
    }
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
        // The type as requested (`date_range` is run as a selective backup).
        m.insert(
            "backupType".into(),
            p.get("requestedBackupType")
                .filter(|t| t.is_string())
                .or_else(|| p.get("backupType"))
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
            job.results
                .get("restoreResults")
                .cloned()
                .map(results_as_text),
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

/// `total_processing_time` is text in HouseF3's schema (`"2.3s"`); jobs finished before fzip
/// wrote it so carry a number, which moves to `processingTimeSeconds`.
fn results_as_text(mut results: Value) -> Value {
    if let Some(o) = results.as_object_mut()
        && let Some(secs) = o.get("total_processing_time").and_then(Value::as_f64)
    {
        o.insert("total_processing_time".into(), json!(format!("{secs:.1}s")));
        o.entry("processingTimeSeconds").or_insert(json!(secs));
    }
    results
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

/// What a backup of a profile will likely weigh and when it will likely be done (the design's
/// `estimatedSize` and `estimatedCompletion`), from what the profile holds: statement files as
/// stored, about 60 bytes of compressed package per transaction and 300 per other entity; time
/// at 50,000 transactions and 50 MB of statement files a second (a third of what the standard
/// benchmark measures, to leave room for a busy server), plus 2 s. For a selective backup it is
/// the whole profile's: an upper bound.
pub struct Estimate {
    pub bytes: u64,
    pub seconds: u64,
}

impl Estimate {
    pub fn of(summary: &fzip_store::ProfileSummary) -> Self {
        let c = &summary.counts;
        let others = c.accounts + c.categories + c.file_maps + c.transaction_files + c.analytics;
        let bytes = summary
            .file_bytes
            .saturating_add(c.transactions.saturating_mul(60))
            .saturating_add(others.saturating_mul(300))
            .saturating_add(2048);
        let seconds = 2 + c.transactions / 50_000 + summary.file_bytes / 50_000_000;
        Estimate { bytes, seconds }
    }

    /// `estimatedSize` (`"~1.2 MB"`), `estimatedSizeBytes`, `estimatedCompletion` (RFC 3339, UTC).
    pub fn insert_into(&self, body: &mut Value, now_ms: i64) {
        let done = now_ms.saturating_add((self.seconds as i64).saturating_mul(1000));
        if let Some(o) = body.as_object_mut() {
            o.insert(
                "estimatedSize".into(),
                json!(format!("~{}", fzip_engine::jobs::human_size(self.bytes))),
            );
            o.insert("estimatedSizeBytes".into(), json!(self.bytes));
            if let Some(t) = chrono::DateTime::from_timestamp_millis(done) {
                o.insert(
                    "estimatedCompletion".into(),
                    json!(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                );
            }
        }
    }
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

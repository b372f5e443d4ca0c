//! Limits that keep a hostile package from exhausting memory or disk.

/// Size and shape limits applied while opening and reading a package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most entries (files) in the archive.
    pub max_entries: usize,
    /// Largest uncompressed entry, in bytes.
    pub max_entry_size: u64,
    /// Largest uncompressed total of all entries, in bytes.
    pub max_total_size: u64,
    /// Highest compression ratio (uncompressed / compressed) allowed for an entry larger than
    /// [`Limits::ratio_floor`]; zip bombs reach 1000 and more.
    pub max_ratio: u64,
    /// Entries smaller than this are not subject to the ratio limit.
    pub ratio_floor: u64,
    /// Largest `manifest.json`, in bytes.
    pub max_manifest_size: u64,
    /// Largest single entity (one element of a data array), in bytes.
    pub max_entity_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 100_000,
            max_entry_size: 16 << 30,
            max_total_size: 64 << 30,
            max_ratio: 200,
            ratio_floor: 1 << 20,
            max_manifest_size: 16 << 20,
            max_entity_size: 16 << 20,
        }
    }
}

//! The files the daemon publishes under `/run/ksmtuned` for ksmctl's views
//! (its last estimate, its last cross-domain audit): JSON, written whole.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The file's value; `None` when there is none, or it does not parse
/// (a daemon of another version, a file cut short by a full disk).
pub fn read<T: DeserializeOwned>(path: &Path) -> Option<T> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Write `value` to `path`, making its directory: a temporary file renamed
/// over the old one, so a reader never sees half of it.
pub fn write<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(value)?)?;
    std::fs::rename(&tmp, path)
}

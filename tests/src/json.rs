//! The admin API's JSON answers, read with serde_json.

pub use serde_json::Value as Json;

/// `text` as JSON, or what is wrong with it.
pub fn parse(text: &str) -> Result<Json, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// The keys of a JSON object in sorted order (empty for anything else), to
/// assert an object's exact shape.
pub fn keys(v: &Json) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    k.sort_unstable();
    k
}

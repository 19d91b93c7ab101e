//! What native evaluation and the OPA-Wasm host share: the data document,
//! entrypoint names and the default timeout. Neither of them imports the
//! other.

use serde_json::Value as Json;
use wasmlayer_core::Error;

/// Wall-clock time one evaluation may take when the caller sets no limit.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Merges `value` (an object) into the data document `doc` (null: none
/// yet); a key already there with another value is a conflict.
pub fn add_data(doc: &mut Json, value: Json, origin: &str) -> Result<(), Error> {
    if !value.is_object() {
        return Err(Error::policy(format!(
            "{origin}: the data document must be a JSON object"
        )));
    }
    if doc.is_null() {
        *doc = Json::Object(Default::default());
    }
    merge(doc, value, origin, "data")
}

fn merge(into: &mut Json, value: Json, origin: &str, path: &str) -> Result<(), Error> {
    match (into, value) {
        (Json::Object(a), Json::Object(b)) => {
            for (k, v) in b {
                let sub = format!("{path}.{k}");
                match a.get_mut(&k) {
                    Some(existing) => merge(existing, v, origin, &sub)?,
                    None => {
                        a.insert(k, v);
                    }
                }
            }
            Ok(())
        }
        (into, value) if *into == value => Ok(()),
        _ => Err(Error::policy(format!(
            "{origin}: {path} conflicts with data already loaded"
        ))),
    }
}

/// `pkg/rule`, `pkg.rule` and `data.pkg.rule` all become `data.pkg.rule`.
pub fn normalize_entrypoint(entrypoint: &str) -> String {
    let dotted = entrypoint.trim().trim_matches('/').replace('/', ".");
    if dotted == "data" || dotted.starts_with("data.") {
        dotted
    } else if dotted.is_empty() {
        "data".to_string()
    } else {
        format!("data.{dotted}")
    }
}

/// `data.pkg.rule` → `pkg/rule`, the form OPA's Wasm modules name entrypoints by.
pub fn slash_entrypoint(entrypoint: &str) -> String {
    let path = normalize_entrypoint(entrypoint);
    path.strip_prefix("data.").unwrap_or("").replace('.', "/")
}

//! `veltrixctl export`: a namespace as a plain map of key → value, the form
//! `veltrixctl apply` reads back as the desired state (GitOps).
//!
//! ```yaml
//! # payments/prod at revision 2 (veltrixctl export)
//! db/url: postgres://db-2
//! limits:
//!   value: '{"rps": 100}'
//!   content_type: application/json
//! ```
//! Text values (`text/plain`) are plain strings; a value of another content
//! type is a map with `value` and `content_type`; binary values are written
//! `base64:...`. JSON has no comments, so there the namespace and revision
//! are the field `"# exported"`: no key can contain a space, so no key is
//! ever confused with it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use veltrix_client::{Entry, Listing, decode_value, encode_value};

use crate::cli::Output;

/// The JSON field that names what was exported.
pub const HEADER_FIELD: &str = "# exported";
/// The content type a plain string value has.
pub const TEXT: &str = "text/plain";

/// One value of the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Text(String),
    Typed {
        value: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        content_type: String,
    },
}

impl Value {
    fn of(entry: &Entry) -> Self {
        let value = encode_value(&entry.value);
        if entry.content_type.is_empty() || entry.content_type == TEXT {
            Self::Text(value)
        } else {
            Self::Typed { value, content_type: entry.content_type.clone() }
        }
    }

    /// The bytes and content type it stands for (`text/plain` when unsaid).
    pub fn decode(&self) -> Result<(bytes::Bytes, String), String> {
        let (value, content_type) = match self {
            Self::Text(v) => (v, ""),
            Self::Typed { value, content_type } => (value, content_type.as_str()),
        };
        let content_type = if content_type.is_empty() { TEXT } else { content_type };
        Ok((decode_value(value)?, content_type.to_owned()))
    }
}

/// The document of a listing: key → value, in key order.
pub fn document(listing: &Listing) -> BTreeMap<String, Value> {
    listing.entries.iter().map(|e| (e.key.clone(), Value::of(e))).collect()
}

/// The export as text: YAML with a comment line, or JSON with the header field.
pub fn render(format: Output, namespace: &str, listing: &Listing) -> Result<String, String> {
    let doc = document(listing);
    match format {
        Output::Json => {
            let mut map = serde_json::Map::new();
            map.insert(
                HEADER_FIELD.to_owned(),
                serde_json::json!({ "namespace": namespace, "revision": listing.revision }),
            );
            for (key, value) in doc {
                map.insert(key, serde_json::to_value(value).map_err(|e| e.to_string())?);
            }
            Ok(serde_json::to_string_pretty(&map).map_err(|e| e.to_string())? + "\n")
        }
        Output::Yaml | Output::Table => {
            let body = if doc.is_empty() {
                "{}\n".to_owned()
            } else {
                yaml_serde::to_string(&doc).map_err(|e| e.to_string())?
            };
            Ok(format!("# {namespace} at revision {} (veltrixctl export)\n{body}", listing.revision))
        }
    }
}

//! The names a client reports: its id, its labels, and label selectors.

use std::collections::BTreeMap;

use crate::validation::ValidationError;

const CLIENT_ID_RULE: &str = "must be 1 to 253 characters of letters, digits and -_.:/@";
const LABEL_RULE: &str = "keys must be 1 to 63 characters of letters, digits and -_./, values at most 253 characters without ',' or '='; at most 32 labels";
const SELECTOR_RULE: &str = "must be comma-separated k=v pairs (keys 1 to 63 characters of letters, digits and -_./)";

/// The most bytes of a NACK's error the ledger keeps.
pub const MAX_ERROR_BYTES: usize = 4096;
const MAX_LABELS: usize = 32;

/// A client's stable name (a pod name, never an IP).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let ok =
            !s.is_empty() && s.len() <= 253 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:/@".contains(&b));
        if ok { Ok(Self(s.to_owned())) } else { Err(ValidationError::new("client_id", CLIENT_ID_RULE)) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub type Labels = BTreeMap<String, String>;

fn valid_label_key(k: &str) -> bool {
    !k.is_empty() && k.len() <= 63 && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
}

fn valid_label_value(v: &str) -> bool {
    v.len() <= 253 && !v.contains([',', '=']) && !v.chars().any(char::is_control)
}

/// Checks a client's labels.
pub fn check_labels<'a>(labels: impl IntoIterator<Item = (&'a String, &'a String)>) -> Result<Labels, ValidationError> {
    let mut out = Labels::new();
    for (k, v) in labels {
        if !valid_label_key(k) || !valid_label_value(v) || out.len() >= MAX_LABELS {
            return Err(ValidationError::new("labels", LABEL_RULE));
        }
        out.insert(k.clone(), v.clone());
    }
    Ok(out)
}

/// `k=v,k2=v2`: matches labels holding every pair.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<(String, String)>);

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let bad = || ValidationError::new("label_selector", SELECTOR_RULE);
        if s.trim().is_empty() {
            return Ok(Self::default());
        }
        let pairs = s
            .split(',')
            .map(|pair| {
                let (k, v) = pair.split_once('=').ok_or_else(bad)?;
                let (k, v) = (k.trim(), v.trim());
                if valid_label_key(k) && valid_label_value(v) { Ok((k.to_owned(), v.to_owned())) } else { Err(bad()) }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if pairs.len() > MAX_LABELS {
            return Err(bad());
        }
        Ok(Self(pairs))
    }

    /// Whether it selects nothing in particular (it then matches everyone).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A selector of these pairs (a canary selector as a map), checked like
    /// labels; `field` names it in the error.
    pub fn from_pairs<'a>(
        field: &str,
        pairs: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Result<Self, ValidationError> {
        let labels = check_labels(pairs).map_err(|e| ValidationError::new(field, e.rule))?;
        Ok(Self(labels.into_iter().collect()))
    }

    /// Its pairs, as given.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// At most [`MAX_ERROR_BYTES`] of an error, cut at a character boundary.
pub(super) fn bounded_error(error: &str) -> String {
    if error.len() <= MAX_ERROR_BYTES {
        return error.to_owned();
    }
    let mut end = MAX_ERROR_BYTES;
    while !error.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    error.get(..end).unwrap_or_default().to_owned()
}

//! What the client returns and takes: plain Rust types, independent of the
//! wire format.

use std::time::SystemTime;

use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use veltrix_proto::v1;

/// A revision: the position of a change set in the event stream.
pub type Revision = u64;

/// A key's current (or point-in-time) value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    #[serde(with = "text_or_base64")]
    pub value: Bytes,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub content_type: String,
    /// Revision that created the key (since its last deletion).
    pub create_revision: Revision,
    /// Revision of the key's last change.
    pub mod_revision: Revision,
    /// Changes since the key was created (1 after creation).
    pub version: u64,
    #[serde(default, with = "opt_time")]
    pub updated_at: Option<SystemTime>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub updated_by: String,
}

impl Entry {
    /// The value as text, if it is UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }
}

/// One change of a change set, as committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyChange {
    pub key: String,
    /// The value set; `None` for a delete.
    #[serde(default, with = "opt_text_or_base64", skip_serializing_if = "Option::is_none")]
    pub value: Option<Bytes>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub content_type: String,
    /// The key's mod_revision before this change (0: it did not exist).
    pub previous_mod_revision: Revision,
}

/// A committed change set: one revision, with who, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSet {
    pub revision: Revision,
    pub namespace: String,
    #[serde(default, with = "opt_time")]
    pub time: Option<SystemTime>,
    pub actor: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub traceparent: String,
    pub changes: Vec<KeyChange>,
    /// Why it was made: a write, a rollback, a promotion, ...
    #[serde(default)]
    pub origin: crate::Origin,
    /// Changes to the namespace's schemas (not keys).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schema_changes: Vec<crate::SchemaChange>,
    /// Set when it is a rollout's transition (History), or a rollout's
    /// target (or, at an abort, its base values) sent to this Sync client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Box<RolloutMark>>,
}

/// How a change set is part of a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutMark {
    pub rollout_id: String,
    /// started, advanced, paused, resumed, aborted, completed.
    pub kind: String,
    /// The rollout's step (0-based) and its share of the clients.
    pub step: u32,
    pub percent: u32,
    /// user, gate, timeout.
    pub triggered_by: String,
}

/// A change to make, for [`crate::Client::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: String,
    /// Compare-and-set: the key's expected mod_revision (0: must not exist).
    pub expected_revision: Option<Revision>,
    pub op: ChangeOp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOp {
    Set { value: Bytes, content_type: String },
    Delete,
}

impl Change {
    pub fn set(key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Self {
            key: key.into(),
            expected_revision: None,
            op: ChangeOp::Set { value: value.into(), content_type: String::new() },
        }
    }

    pub fn delete(key: impl Into<String>) -> Self {
        Self { key: key.into(), expected_revision: None, op: ChangeOp::Delete }
    }

    pub fn expecting(mut self, revision: Revision) -> Self {
        self.expected_revision = Some(revision);
        self
    }
}

/// A namespace and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceInfo {
    pub name: String,
    pub revision: Revision,
    pub key_count: u64,
    /// Deleted by DeleteNamespace (listed only when asked for).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// Who the caller is to the query service ([`crate::Client::who_am_i`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmI {
    /// Empty when authentication is off.
    pub identity: String,
    pub authentication_enabled: bool,
    pub roles: Vec<Roles>,
}

/// The caller's roles on one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roles {
    pub namespace: String,
    pub read: bool,
    pub write: bool,
    pub admin: bool,
}

/// What a watch stream yields.
#[derive(Debug, Clone, PartialEq)]
// Changes is the variant nearly every event is: boxing it would add an
// allocation per change set to save bytes in the rare other two.
#[allow(clippy::large_enum_variant)]
pub enum WatchEvent {
    /// The matching keys as of `revision` (when a snapshot was asked for, or
    /// when the history needed to resume was gone). Replaces what the
    /// receiver knew.
    Snapshot { entries: Vec<Entry>, revision: Revision },
    /// A committed change set (only its matching changes).
    Changes(ChangeSet),
    /// Everything up to `revision` has been delivered.
    Progress(Revision),
}

pub(crate) fn time(t: Option<prost_types::Timestamp>) -> Option<SystemTime> {
    t.and_then(|t| SystemTime::try_from(t).ok())
}

impl From<v1::KeyValue> for Entry {
    fn from(kv: v1::KeyValue) -> Self {
        Self {
            key: kv.key,
            value: kv.value,
            content_type: kv.content_type,
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            updated_at: time(kv.updated_at),
            updated_by: kv.updated_by,
        }
    }
}

impl From<v1::ChangeRecord> for ChangeSet {
    fn from(r: v1::ChangeRecord) -> Self {
        let changes = r
            .changes
            .into_iter()
            .map(|c| {
                let delete = c.op == v1::key_change::Op::Delete as i32;
                KeyChange {
                    key: c.key,
                    value: (!delete).then_some(c.value),
                    content_type: c.content_type,
                    previous_mod_revision: c.previous_mod_revision,
                }
            })
            .collect();
        Self {
            revision: r.revision,
            namespace: r.namespace,
            time: time(r.time),
            actor: r.actor,
            reason: r.reason,
            request_id: r.request_id,
            traceparent: r.traceparent,
            changes,
            origin: crate::Origin::from(r.origin),
            schema_changes: r.schema_changes.into_iter().map(crate::SchemaChange::from).collect(),
            rollout: r.rollout.map(|m| {
                Box::new(RolloutMark {
                    rollout_id: m.rollout_id,
                    kind: crate::rollout::kind_name(m.kind).to_owned(),
                    step: m.step,
                    percent: m.percent,
                    triggered_by: crate::rollout::trigger_name(m.triggered_by).to_owned(),
                })
            }),
        }
    }
}

impl From<Change> for v1::Change {
    fn from(c: Change) -> Self {
        let op = match c.op {
            ChangeOp::Set { value, content_type } => {
                v1::change::Op::Set(v1::SetValue { value: value.to_vec(), content_type })
            }
            ChangeOp::Delete => v1::change::Op::Delete(v1::DeleteKey {}),
        };
        Self { key: c.key, expected_revision: c.expected_revision, op: Some(op) }
    }
}

/// Values as text when they are UTF-8, else as `base64:...`, in JSON/YAML.
mod text_or_base64 {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::encode_value(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        super::decode_value(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

mod opt_text_or_base64 {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Bytes>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(&super::encode_value(v)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Bytes>, D::Error> {
        Option::<String>::deserialize(d)?.map(|s| super::decode_value(&s).map_err(serde::de::Error::custom)).transpose()
    }
}

pub(crate) mod opt_time {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    /// RFC 3339 in UTC, e.g. `2026-11-26T07:46:24.772363Z`.
    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&super::rfc3339(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| {
                super::parse_rfc3339(&text).ok_or_else(|| serde::de::Error::custom(format!("invalid time '{text}'")))
            })
            .transpose()
    }
}

/// A time as RFC 3339 in UTC (microseconds when not whole seconds).
pub fn rfc3339(t: SystemTime) -> String {
    use time::{OffsetDateTime, format_description::well_known::Rfc3339};
    let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let micros = i128::try_from(since.as_micros()).unwrap_or(i128::MAX);
    OffsetDateTime::from_unix_timestamp_nanos(micros.saturating_mul(1000))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "-".to_owned())
}

fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    use time::{OffsetDateTime, format_description::well_known::Rfc3339};
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    let nanos = u64::try_from(t.unix_timestamp_nanos()).ok()?;
    std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_nanos(nanos))
}

const BASE64_PREFIX: &str = "base64:";
const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Text when the value is UTF-8 and does not look like our base64 form.
pub fn encode_value(v: &[u8]) -> String {
    match std::str::from_utf8(v) {
        Ok(s) if !s.starts_with(BASE64_PREFIX) => s.to_owned(),
        _ => format!("{BASE64_PREFIX}{}", BASE64.encode(v)),
    }
}

pub fn decode_value(s: &str) -> Result<Bytes, String> {
    match s.strip_prefix(BASE64_PREFIX) {
        Some(b64) => BASE64.decode(b64).map(Bytes::from).map_err(|e| format!("invalid base64: {e}")),
        None => Ok(Bytes::copy_from_slice(s.as_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_as_rfc3339() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::new(1_795_679_184, 772_363_000);
        assert_eq!(rfc3339(t), "2026-11-26T07:46:24.772363Z");
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        assert_eq!(rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339("2024-02-29T23:59:59Z").map(rfc3339).as_deref(), Some("2024-02-29T23:59:59Z"));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn values_round_trip_as_text_or_base64() {
        for v in [&b"postgres://db"[..], &[0, 159, 146, 150], b"", b"base64:looks-like-ours", b"ab", b"abc", b"abcd"] {
            assert_eq!(decode_value(&encode_value(v)).unwrap(), v);
        }
        assert_eq!(encode_value(b"plain"), "plain");
        assert_eq!(encode_value(&[0xff]), "base64:/w==");
    }
}

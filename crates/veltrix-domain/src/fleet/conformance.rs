//! The behaviour every [`LedgerStore`] must show: run against the memory
//! ledger here and against Redis in the adapter's tests.

use std::time::{Duration, SystemTime};

use super::{Agent, ClientError, ClientId, ClientRecord, LedgerStore, Step};
use crate::{Namespace, Revision};

fn record(ns: &str, id: &str) -> ClientRecord {
    let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
    let (Ok(id), Ok(ns)) = (ClientId::parse(id), Namespace::parse(ns)) else { panic!("test names are valid") };
    let mut r = ClientRecord::new(id, ns, "db/".into(), "replica-1", now);
    r.labels.insert("zone".into(), "a".into());
    r.agent = Agent { name: "veltrix-agent".into(), version: "0.1.0".into() };
    r.connected = true;
    r.delivered(Revision::new(7), now);
    r.ack(Revision::new(5), "sha256:ab", now);
    r.nack(Revision::new(7), Revision::new(5), Step::Check, "invalid port", now);
    r
}

/// Panics on the first broken rule. `ns` must have no entries yet.
pub async fn run<L: LedgerStore>(ledger: &L, ns: &str) {
    let Ok(namespace) = Namespace::parse(ns) else { panic!("test namespace is valid") };
    assert!(ledger.records(&namespace).await.expect("records").is_empty(), "starts empty");

    let (a, mut b) = (record(ns, "web-2"), record(ns, "web-1"));
    ledger.put(&[a.clone(), b.clone()]).await.expect("put");
    let all = ledger.records(&namespace).await.expect("records");
    assert_eq!(all, vec![b.clone(), a.clone()], "every field round-trips, in client id order");
    assert!(matches!(&all[1].last_error, Some(ClientError { step: Step::Check, .. })), "the last error is kept");

    b.connected = false;
    b.ack(Revision::new(9), "", b.last_seen);
    ledger.put(std::slice::from_ref(&b)).await.expect("put again");
    assert_eq!(ledger.record(&namespace, &b.client_id).await.expect("record"), Some(b.clone()), "last write wins");

    let other = record("other-ns", "web-1");
    ledger.put(std::slice::from_ref(&other)).await.expect("put other");
    assert_eq!(ledger.records(&namespace).await.expect("records").len(), 2, "namespaces are apart");

    ledger.remove(&namespace, std::slice::from_ref(&b.client_id)).await.expect("remove");
    assert_eq!(ledger.records(&namespace).await.expect("records"), vec![a], "removed");
    assert_eq!(ledger.record(&namespace, &b.client_id).await.expect("record"), None);
    let Ok(other_ns) = Namespace::parse("other-ns") else { panic!() };
    ledger.remove(&other_ns, std::slice::from_ref(&other.client_id)).await.expect("clean up");
}

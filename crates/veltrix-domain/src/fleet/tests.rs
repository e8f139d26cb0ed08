use std::time::{Duration, SystemTime};

use super::*;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
}

fn client(id: &str, prefix: &str) -> ClientRecord {
    let (Ok(id), Ok(ns)) = (ClientId::parse(id), Namespace::parse("app")) else { panic!("valid") };
    let mut r = ClientRecord::new(id, ns, prefix.into(), "q1", at(0));
    r.connected = true;
    r
}

const T: Timing = Timing {
    stale_after: Duration::from_secs(60),
    forget_after: Duration::from_secs(3600),
    heartbeat: Duration::from_secs(10),
};

fn r(n: u64) -> Revision {
    Revision::new(n)
}

#[test]
fn an_ack_of_the_newest_revision_is_synced_and_a_delivered_one_pending_then_stale() {
    let mut c = client("web-1", "");
    c.delivered(r(5), at(0));
    c.ack(r(5), "d", at(1));
    c.replica_seen = at(1);
    assert_eq!(c.state(r(5), None, at(2), &T), ClientState::Synced);
    c.delivered(r(6), at(3));
    assert_eq!(c.state(r(6), Some(at(3)), at(20), &T), ClientState::Pending);
    c.replica_seen = at(70);
    assert_eq!(c.state(r(6), Some(at(3)), at(70), &T), ClientState::Stale);
    c.ack(r(6), "", at(71));
    assert_eq!(c.state(r(6), Some(at(3)), at(71), &T), ClientState::Synced);
}

#[test]
fn a_nack_on_the_newest_revision_is_rejected_even_after_an_ack_of_it_and_a_later_ack_clears_it() {
    let mut c = client("web-1", "");
    c.delivered(r(6), at(0));
    c.ack(r(6), "", at(1));
    c.nack(r(6), r(5), Step::Health, "unhealthy", at(2));
    assert_eq!(c.applied, r(5));
    assert_eq!(c.state(r(6), None, at(3), &T), ClientState::Rejected);
    // Its keepalive repeats what it runs: still rejected.
    c.ack(r(5), "", at(4));
    assert_eq!(c.state(r(6), None, at(5), &T), ClientState::Rejected);
    // A newer revision it has not reported on yet: pending.
    c.delivered(r(7), at(6));
    assert_eq!(c.state(r(7), Some(at(6)), at(7), &T), ClientState::Pending);
    c.ack(r(7), "", at(8));
    assert_eq!(c.state(r(7), None, at(9), &T), ClientState::Synced);
    assert_eq!(c.rejected, None);
    assert!(c.last_error.is_some(), "the last error stays for the record");
}

#[test]
fn a_client_is_disconnected_when_its_stream_closed_or_its_replica_went_silent_and_forgotten_later() {
    let mut c = client("web-1", "");
    assert!(c.is_live(at(29), &T));
    assert_eq!(c.state(r(0), None, at(31), &T), ClientState::Disconnected, "no heartbeat for 3 x 10 s");
    c.replica_seen = at(31);
    c.connected = false;
    assert_eq!(c.state(r(0), None, at(31), &T), ClientState::Disconnected);
    assert!(!c.is_forgotten(at(3600), &T));
    assert!(c.is_forgotten(at(3632), &T));
}

#[test]
fn revision_status_counts_the_clients_it_concerns_and_groups_rejections() {
    let mut clients = Vec::new();
    for i in 0..5 {
        let mut c = client(&format!("web-{i}"), if i == 4 { "other/" } else { "db/" });
        c.delivered(r(9), at(0));
        clients.push(c);
    }
    clients[0].ack(r(9), "", at(1));
    clients[1].ack(r(10), "", at(1));
    clients[2].nack(r(9), r(8), Step::Check, "invalid port", at(1));
    clients[3].connected = false;
    let touch = Touch { keys: vec!["db/port".into()], whole_namespace: false };
    let s = revision_status(&clients, r(9), Some(at(0)), &touch, at(2), &T);
    assert_eq!((s.applied, s.pending, s.stale, s.rejected, s.disconnected), (2, 0, 0, 1, 1));
    assert_eq!(
        s.rejections,
        vec![RejectionGroup {
            step: Step::Check,
            error: "invalid port".into(),
            count: 1,
            client_ids: vec!["web-2".into()]
        }]
    );
    let schema = Touch { keys: vec![], whole_namespace: true };
    let s = revision_status(&clients, r(9), Some(at(0)), &schema, at(2), &T);
    assert_eq!(s.pending, 1, "a schema change concerns every client");
}

#[test]
fn names_and_selectors() {
    assert!(ClientId::parse("web-7.prod:0@zone/a").is_ok());
    for bad in ["", "a b", "é", &"x".repeat(254)] {
        assert!(ClientId::parse(bad).is_err(), "{bad:?}");
    }
    let sel = LabelSelector::parse("zone=a, canary=true").expect("parses");
    let mut labels = Labels::new();
    labels.insert("zone".into(), "a".into());
    assert!(!sel.matches(&labels));
    labels.insert("canary".into(), "true".into());
    assert!(sel.matches(&labels));
    assert!(LabelSelector::parse("zone").is_err());
    assert!(LabelSelector::parse("").expect("empty").matches(&Labels::new()));
    assert_eq!(names::bounded_error(&"é".repeat(3000)).len(), MAX_ERROR_BYTES);
}

#[test]
fn the_memory_ledger_conforms() {
    let ledger = MemoryLedger::default();
    let f = conformance::run(&ledger, "app");
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(f.as_mut().poll(&mut cx).is_ready(), "the memory ledger does not wait");
}

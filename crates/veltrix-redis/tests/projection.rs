//! The Redis projection against a real redis-server: whatever the delivery
//! order and however often an event is redelivered, the read model equals
//! the reference fold of the same events.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use veltrix_domain::{
    ChangeSetCommitted, Namespace, Revision,
    fixtures::{self, Command, KeyOp},
    projection::Projection,
};
use veltrix_redis::{ApplyOptions, Generation, ReadModel};

const G1: Generation = Generation::from_u64(1);

fn app_a() -> Namespace {
    Namespace::parse("app/a").unwrap()
}
use veltrix_testkit::Redis;

fn committed(cmds: &[Command]) -> Vec<(Revision, ChangeSetCommitted)> {
    fixtures::committed(&[app_a(), Namespace::parse("app/b").unwrap()], cmds)
}

fn commands() -> impl Strategy<Value = Vec<Command>> {
    let op = prop_oneof![3 => any::<u8>().prop_map(KeyOp::Set), 1 => Just(KeyOp::Delete)];
    proptest::collection::vec((any::<u8>(), proptest::collection::vec((0u8..6, op), 1..4)), 1..40)
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

async fn check(model: &ReadModel, events: &[(Revision, ChangeSetCommitted)], order: &[usize]) {
    let generation = Generation::from_u64(GENERATION.fetch_add(1, Ordering::Relaxed));
    model.mark_complete_inactive(generation).await.unwrap();
    for &i in order {
        let (revision, event) = &events[i % events.len()];
        model.apply(generation, *revision, event, ApplyOptions::default()).await.unwrap();
    }
    let mut reference = Projection::new();
    for (revision, event) in events {
        reference.apply(*revision, event);
    }
    for ns in ["app/a", "app/b"] {
        let namespace = Namespace::parse(ns).unwrap();
        let page = model.list(generation, &namespace, "", None, 1000).await.unwrap();
        let expected = reference.keys(&namespace);
        assert_eq!(page.kvs.len(), expected.len(), "{ns}: live keys");
        for (kv, (key, want)) in page.kvs.iter().zip(expected) {
            assert_eq!(kv.key, key.as_str());
            assert_eq!(kv.value, want.value, "{ns}/{key}");
            assert_eq!(
                (kv.create_revision, kv.mod_revision, kv.version, kv.updated_by.as_str()),
                (want.create_revision.get(), want.mod_revision.get(), want.version, want.updated_by.as_str()),
                "{ns}/{key}"
            );
        }
        assert_eq!(page.namespace_revision, reference.revision(&namespace));
        let (history, _) = model.history(generation, &namespace, None, Revision::ZERO, None, 1000).await.unwrap();
        let expected: Vec<u64> =
            events.iter().filter(|(_, e)| e.namespace == namespace).map(|(r, _)| r.get()).collect();
        assert_eq!(
            history.iter().map(|r| r.revision).collect::<Vec<_>>(),
            expected,
            "{ns}: history in order, once each"
        );
    }
    // Point in time: every revision's listing equals the fold of its prefix.
    for at in 1..=events.len() as u64 {
        let mut past = Projection::new();
        for (revision, event) in events.iter().take_while(|(r, _)| *r <= at) {
            past.apply(*revision, event);
        }
        for ns in ["app/a", "app/b"] {
            let namespace = Namespace::parse(ns).unwrap();
            let page = model.list_at(generation, &namespace, "", None, 1000, Revision::new(at)).await.unwrap();
            let want: Vec<(String, u64)> =
                past.keys(&namespace).iter().map(|(k, v)| (k.to_string(), v.mod_revision.get())).collect();
            let got: Vec<(String, u64)> = page.kvs.iter().map(|kv| (kv.key.clone(), kv.mod_revision)).collect();
            assert_eq!(got, want, "{ns} at {at}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn read_model_equals_reference_fold_in_any_delivery_order(
        cmds in commands(),
        shuffle in proptest::collection::vec(any::<usize>(), 0..200),
        dups in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let events = committed(&cmds);
        prop_assume!(!events.is_empty());
        // Every event at least once, in a shuffled order, some twice.
        let mut order: Vec<usize> = (0..events.len()).collect();
        for (i, s) in shuffle.iter().enumerate() {
            let (a, b) = (i % order.len(), s % order.len());
            order.swap(a, b);
        }
        order.extend(dups.iter().map(|d| d % events.len()));
        RUNTIME.block_on(async {
            let model = model().await;
            check(&model, &events, &order).await;
        });
    }
}

static RUNTIME: std::sync::LazyLock<tokio::runtime::Runtime> =
    std::sync::LazyLock::new(|| tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap());
static REDIS: std::sync::LazyLock<Redis> = std::sync::LazyLock::new(Redis::from_env);

async fn model() -> ReadModel {
    ReadModel::connect(&REDIS.url(), "prop").await.unwrap()
}

#[tokio::test]
async fn history_is_compacted_to_the_configured_length() {
    let redis = Redis::from_env();
    let model = ReadModel::connect(&redis.url(), "c").await.unwrap();
    model.mark_complete_inactive(G1).await.unwrap();
    let events = committed(&(0..10u8).map(|i| (0u8, vec![(i % 3, KeyOp::Set(i))])).collect::<Vec<_>>());
    for (revision, event) in &events {
        model.apply(G1, *revision, event, ApplyOptions { history_keep: 4 }).await.unwrap();
    }
    assert_eq!(model.oldest_revision(G1, &app_a()).await.unwrap(), 7);
    let (records, _) = model.history(G1, &app_a(), None, Revision::new(7), None, 100).await.unwrap();
    assert_eq!(records.iter().map(|r| r.revision).collect::<Vec<_>>(), vec![7, 8, 9, 10]);
    assert!(matches!(
        model.history(G1, &app_a(), None, Revision::new(6), None, 100).await,
        Err(veltrix_redis::Error::Compacted { oldest, .. }) if oldest == 7
    ));
    assert!(matches!(
        model.get_at(G1, &app_a(), "k/0", Revision::new(5)).await,
        Err(veltrix_redis::Error::Compacted { .. })
    ));
    // At the floor every key still answers: k/0 was last set at 10, k/1 at 8, k/2 at 9; at 7 k/0 is from 7.
    let at7: Vec<_> = model
        .list_at(G1, &app_a(), "", None, 100, Revision::new(7))
        .await
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| (kv.key, kv.mod_revision))
        .collect();
    assert_eq!(at7, vec![("k/0".to_string(), 7), ("k/1".to_string(), 5), ("k/2".to_string(), 6)]);
}

#[tokio::test]
async fn rollout_events_are_kept_apart_and_a_finished_rollout_leaves_the_round_until_the_next() {
    use veltrix_domain::rollout::{RolloutChange, RolloutEvent, RolloutId, Trigger};
    let redis = Redis::from_env();
    let model = ReadModel::connect(&redis.url(), "r").await.unwrap();
    model.mark_complete_inactive(G1).await.unwrap();
    let transition = |revision: u64, id: &str, change: RolloutChange| {
        let base = committed(&[(0, vec![(0, KeyOp::Set(1))])]).remove(0).1;
        let rollout =
            RolloutEvent { id: RolloutId::parse(id).unwrap(), change, triggered_by: Trigger::User, inputs: None };
        (Revision::new(revision), ChangeSetCommitted { changes: Vec::new(), rollout: Some(Box::new(rollout)), ..base })
    };
    let plain = committed(&[(0, vec![(1, KeyOp::Set(2))])]);
    let (paused, aborted) = (
        transition(5, "r-1", RolloutChange::Paused),
        transition(6, "r-1", RolloutChange::Aborted { rejections: Vec::new() }),
    );
    for (revision, event) in [(Revision::new(4), &plain[0].1), (paused.0, &paused.1), (aborted.0, &aborted.1)] {
        model.apply(G1, revision, event, ApplyOptions::default()).await.unwrap();
    }
    // Only the transitions are stored apart, in order, and read back whole.
    let stored = model.rollout_events(G1, &app_a()).await.unwrap();
    assert_eq!(stored, vec![paused.clone(), aborted.clone()]);
    assert_eq!(model.rollout_namespaces(G1).await.unwrap(), vec![app_a()]);
    // A finished rollout leaves the round; an older view of it does not
    // take out a newer one.
    let next = transition(9, "r-2", RolloutChange::Paused);
    model.apply(G1, next.0, &next.1, ApplyOptions::default()).await.unwrap();
    model.rollout_finished(G1, &app_a(), Revision::new(6)).await.unwrap();
    assert_eq!(model.rollout_namespaces(G1).await.unwrap(), vec![app_a()], "r-2 came after");
    model.rollout_finished(G1, &app_a(), Revision::new(9)).await.unwrap();
    assert!(model.rollout_namespaces(G1).await.unwrap().is_empty());
    // Applying an event again (a replay) stores nothing twice; it may put
    // the namespace back in the round, where the next look takes it out.
    model.apply(G1, aborted.0, &aborted.1, ApplyOptions::default()).await.unwrap();
    assert_eq!(model.rollout_events(G1, &app_a()).await.unwrap().len(), 3);
    model.rollout_finished(G1, &app_a(), Revision::new(9)).await.unwrap();
    assert!(model.rollout_namespaces(G1).await.unwrap().is_empty());
}

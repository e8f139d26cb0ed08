//! Every validation rule: INVALID_ARGUMENT naming the field and the rule,
//! and nothing appended.
#![allow(clippy::unwrap_used)] // tests may unwrap

use tonic::Code;
use veltrix_proto::v1::{ApplyRequest, Change, DeleteKey, DeleteRequest, PutRequest, SetValue, change};
use veltrix_testsystem::*;

fn set(key: &str) -> Change {
    Change {
        key: key.into(),
        expected_revision: None,
        op: Some(change::Op::Set(SetValue { value: b"v".to_vec(), content_type: String::new() })),
    }
}

#[tokio::test]
async fn bad_input_is_invalid_argument_and_appends_nothing() {
    let sys = TestSystem::builder().queries(0).command(|c| c.max_value_bytes = Some(1024)).start().await;
    let mut client = sys.cmd();
    // The stream exists once the service is ready; every case below must leave it empty.
    let mut reader = StreamReader::new(&sys.nats_url()).await;

    let long_segment = "a".repeat(64);
    let nine_segments = ["a"; 9].join("/");
    let cases: Vec<(&str, PutRequest, &str)> = vec![
        ("empty namespace", put("", "k", "v"), "namespace"),
        ("upper-case namespace", put("Payments", "k", "v"), "namespace"),
        ("namespace segment too long", put(&long_segment, "k", "v"), "namespace"),
        ("too many segments", put(&nine_segments, "k", "v"), "namespace"),
        ("empty segment", put("a//b", "k", "v"), "namespace"),
        ("empty key", put("ns", "", "v"), "key"),
        ("key with a space", put("ns", "a b", "v"), "key"),
        ("key starting with /", put("ns", "/a", "v"), "key"),
        ("key ending with .", put("ns", "a.", "v"), "key"),
        ("key too long", put("ns", &"k".repeat(257), "v"), "key"),
        ("value too large", put("ns", "k", &"x".repeat(1025)), "value"),
        ("invalid JSON", PutRequest { content_type: "application/json".into(), ..put("ns", "k", "{nope") }, "value"),
        ("bad content type", PutRequest { content_type: "json".into(), ..put("ns", "k", "1") }, "content_type"),
        ("request id with a space", PutRequest { request_id: "a b".into(), ..put("ns", "k", "1") }, "request_id"),
        ("reason too long", PutRequest { reason: "r".repeat(1025), ..put("ns", "k", "1") }, "reason"),
        (
            "the rollout controller's request id",
            PutRequest { request_id: "rollout/r-1/2".into(), ..put("ns", "k", "1") },
            "request_id",
        ),
    ];
    for (what, req, field) in cases {
        let status = assert_code(client.put(req).await, Code::InvalidArgument);
        assert!(status.message().starts_with(&format!("{field}: ")), "{what}: {}", status.message());
        assert!(status.message().contains("must"), "{what}: the rule is named: {}", status.message());
    }
    let bad_delete = DeleteRequest { namespace: "ns".into(), key: ".hidden".into(), ..Default::default() };
    assert!(assert_code(client.delete(bad_delete).await, Code::InvalidArgument).message().starts_with("key: "));

    let apply = |changes: Vec<Change>| ApplyRequest { namespace: "ns".into(), changes, ..Default::default() };
    let apply_cases: Vec<(&str, ApplyRequest, &str)> = vec![
        ("no changes", apply(vec![]), "changes: must hold at least one change"),
        (
            "too many changes",
            apply((0..1001).map(|i| set(&format!("k{i}"))).collect()),
            "changes: must hold at most 1000",
        ),
        ("same key twice", apply(vec![set("a"), set("b"), set("a")]), "changes[2].key: must not repeat"),
        ("bad key inside", apply(vec![set("a"), set("b c")]), "changes[1].key: "),
        (
            "missing op",
            apply(vec![Change { key: "a".into(), expected_revision: None, op: None }]),
            "changes[0].op: must be set",
        ),
        (
            "bad JSON inside",
            apply(vec![
                set("a"),
                Change {
                    key: "j".into(),
                    expected_revision: None,
                    op: Some(change::Op::Set(SetValue {
                        value: b"[".to_vec(),
                        content_type: "application/json".into(),
                    })),
                },
            ]),
            "changes[1].set.value: must be valid JSON",
        ),
    ];
    for (what, req, prefix) in apply_cases {
        let status = assert_code(client.apply(req).await, Code::InvalidArgument);
        assert!(status.message().starts_with(prefix), "{what}: {}", status.message());
    }
    let status =
        assert_code(client.put(with_actor(put("ns", "k", "v"), &"a".repeat(300))).await, Code::InvalidArgument);
    assert!(status.message().starts_with("x-veltrix-actor metadata: must"), "{}", status.message());
    let exactly_1000 = apply((0..1000).map(|i| set(&format!("k{i}"))).collect());
    let delete_only = apply(vec![Change {
        key: "missing".into(),
        expected_revision: None,
        op: Some(change::Op::Delete(DeleteKey {})),
    }]);
    assert_code(client.apply(delete_only).await, Code::NotFound);
    assert_eq!(reader.count().await, 0, "nothing appended by any invalid request");
    client.apply(exactly_1000).await.expect("1000 changes are allowed");
    client.put(put("ns", "k", &"x".repeat(1024))).await.expect("a value at the limit is allowed");
}

#[tokio::test]
async fn a_bad_rollout_strategy_is_invalid_argument_naming_the_field_and_appends_nothing() {
    use veltrix_proto::v1::{RolloutStep, RolloutStrategy, StartRolloutRequest};
    let sys = TestSystem::builder().queries(0).start().await;
    let mut client = sys.cmd();
    let mut reader = StreamReader::new(&sys.nats_url()).await;
    let secs = |s: i64| Some(prost_types::Duration { seconds: s, nanos: 0 });
    let step = |percent: u32| RolloutStep { percent, bake_time: secs(60), ..Default::default() };
    let strategy = |steps: Vec<RolloutStep>| Some(RolloutStrategy { steps, ..Default::default() });
    let start = |strategy: Option<RolloutStrategy>| StartRolloutRequest {
        namespace: "ns".into(),
        changes: vec![set("k")],
        strategy,
        ..Default::default()
    };
    let week_and_a_bit = 7 * 24 * 3600 + 1;
    let cases: Vec<(&str, StartRolloutRequest, &str)> = vec![
        ("no strategy", start(None), "strategy: must be set"),
        ("no steps", start(strategy(vec![])), "strategy.steps: must hold 1 to 20 steps"),
        ("zero percent", start(strategy(vec![step(0), step(100)])), "strategy.steps[0].percent: "),
        ("not increasing", start(strategy(vec![step(50), step(50), step(100)])), "strategy.steps[1].percent: "),
        (
            "last is not 100",
            start(strategy(vec![step(10), step(50)])),
            "strategy.steps[1].percent: the last step must be 100",
        ),
        (
            "a gate above 100",
            start(strategy(vec![RolloutStep { min_applied_percent: Some(101), ..step(100) }])),
            "strategy.steps[0].min_applied_percent: ",
        ),
        (
            "a negative bake time",
            start(strategy(vec![RolloutStep { bake_time: secs(-1), ..step(100) }])),
            "strategy.steps[0].bake_time: ",
        ),
        (
            "a bake time over a week",
            start(strategy(vec![RolloutStep { bake_time: secs(week_and_a_bit), ..step(100) }])),
            "strategy.steps[0].bake_time: must be at most 7 days",
        ),
        (
            "a zero ack timeout",
            start(Some(RolloutStrategy { steps: vec![step(100)], ack_timeout: secs(0), ..Default::default() })),
            "strategy.ack_timeout: ",
        ),
        (
            "a bad canary label",
            start(Some(RolloutStrategy {
                steps: vec![step(100)],
                canary_selector: [("bad key".to_owned(), "x".to_owned())].into(),
                ..Default::default()
            })),
            "strategy.canary_selector: ",
        ),
        (
            "a bad change",
            StartRolloutRequest { changes: vec![set("a b")], ..start(strategy(vec![step(100)])) },
            "changes[0].key: ",
        ),
        ("no changes", StartRolloutRequest { changes: vec![], ..start(strategy(vec![step(100)])) }, "changes: "),
    ];
    for (what, req, prefix) in cases {
        let status = assert_code(client.start_rollout(req).await, Code::InvalidArgument);
        assert!(status.message().starts_with(prefix), "{what}: {}", status.message());
    }
    assert_eq!(reader.count().await, 0, "nothing appended by any invalid start");
}

//! Compare-and-set under contention: one winner among 32 writers, in one
//! process and across two command-service processes on one NATS.
#![allow(clippy::unwrap_used)] // tests may unwrap

use tonic::{Code, transport::Channel};
use veltrix_proto::v1::PutRequest;
use veltrix_testsystem::*;

/// 32 writers race with the same expected revision; answers the number of
/// winners and the new revision.
async fn race(clients: &[Command], key: &str, expected: u64, round: usize) -> (usize, u64) {
    let mut tasks = Vec::new();
    for i in 0..32 {
        let mut c = clients[i % clients.len()].clone();
        let req = PutRequest { expected_revision: Some(expected), ..put("race", key, &format!("{round}-{i}")) };
        tasks.push(tokio::spawn(async move { c.put(req).await }));
    }
    let (mut winners, mut revision) = (0, 0);
    for t in tasks {
        match t.await.expect("task") {
            Ok(r) => {
                winners += 1;
                revision = r.into_inner().revision;
            }
            Err(s) => assert_eq!(s.code(), Code::Aborted, "losers get ABORTED: {s:?}"),
        }
    }
    (winners, revision)
}

#[tokio::test]
async fn one_winner_among_32_concurrent_writers() {
    let sys = TestSystem::builder().queries(0).start().await;
    let mut reader = StreamReader::new(&sys.nats_url()).await;
    let clients = vec![sys.cmd()];
    let mut expected = 0;
    for round in 0..10 {
        let (winners, revision) = race(&clients, "k", expected, round).await;
        assert_eq!(winners, 1, "round {round}");
        expected = revision;
    }
    assert_eq!(reader.count().await, 10);
}

/// A `veltrix-command` process, killed when dropped.
struct Process {
    _child: tokio::process::Child,
    client: Command,
}

async fn spawn_process(sys: &TestSystem) -> Process {
    let port = free_port();
    let args = ["--nats-url".to_owned(), sys.nats_url()];
    let child = spawn_service(&binary("veltrix-command"), &args, &[], port, "veltrix.config.v1.ConfigCommand").await;
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await.unwrap();
    Process { _child: child, client: Command::new(channel) }
}

#[tokio::test]
async fn one_winner_across_two_command_service_processes() {
    // NATS only: the two services are processes of the built binary.
    let sys = TestSystem::builder().commands(0).queries(0).start().await;
    let a = spawn_process(&sys).await;
    let b = spawn_process(&sys).await;
    let clients = vec![a.client.clone(), b.client.clone()];
    let mut expected = 0;
    for round in 0..10 {
        let (winners, revision) = race(&clients, "k", expected, round).await;
        assert_eq!(winners, 1, "round {round}: exactly one winner across both processes");
        expected = revision;
    }

    // Unconditional writes from both processes to one namespace: every
    // acknowledged revision is distinct and in the stream.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let mut c = clients[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut revisions = Vec::new();
            for j in 0..10 {
                let req =
                    PutRequest { request_id: format!("w{i}-{j}"), ..put("race", &format!("k{i}"), &j.to_string()) };
                revisions.push(c.put(req).await.expect("unconditional put").into_inner().revision);
            }
            revisions
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.expect("task"));
    }
    acked.sort_unstable();
    acked.dedup();
    assert_eq!(acked.len(), 160, "every write got its own revision");
    let mut reader = StreamReader::new(&sys.nats_url()).await;
    let stored: Vec<u64> = reader.all().await.into_iter().map(|(seq, _)| seq).collect();
    assert_eq!(stored.len(), 170);
    assert!(acked.iter().all(|r| stored.contains(r)));
}

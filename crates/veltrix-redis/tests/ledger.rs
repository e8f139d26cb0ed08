//! The fleet ledger against a real redis-server: the same conformance suite
//! as the memory ledger, and a rebuild of the read model keeps it.
#![allow(clippy::unwrap_used)] // tests may unwrap

use veltrix_domain::{Namespace, fleet::LedgerStore};
use veltrix_redis::{Generation, ReadModel, RedisLedger, RedisOptions};
use veltrix_testkit::Redis;

#[tokio::test]
async fn the_redis_ledger_conforms_and_outlives_a_read_model_generation() {
    let redis = Redis::from_env();
    let ledger = RedisLedger::connect_with(&RedisOptions::new(redis.url()), "l").await.unwrap();
    veltrix_domain::fleet::conformance::run(&ledger, "app/fleet").await;

    let ns = Namespace::parse("app/kept").unwrap();
    let mut record = veltrix_domain::fleet::ClientRecord::new(
        veltrix_domain::fleet::ClientId::parse("web-1").unwrap(),
        ns.clone(),
        String::new(),
        "q1",
        std::time::SystemTime::now(),
    );
    record.connected = true;
    ledger.put(std::slice::from_ref(&record)).await.unwrap();
    let model = ReadModel::connect(&redis.url(), "l").await.unwrap();
    model.delete_generation(Generation::from_u64(1)).await.unwrap();
    assert_eq!(ledger.records(&ns).await.unwrap().len(), 1, "deleting a generation keeps the ledger");
}

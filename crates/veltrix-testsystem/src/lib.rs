//! The one way tests start Veltrix Config (dev only): [`TestSystem`] runs
//! real NATS and Redis processes and both services in-process, configured
//! by one builder (auth, TLS, limits, replicas, history retention, a NATS
//! cluster), and hands out clients and handles to stop and restart each
//! part. Beside it, the helpers tests share: requests, reads of everything
//! a client can see, metrics scrapes, the built binaries, the raw stream,
//! and `veltrixctl` as a child process.

mod binaries;
mod ctl;
mod metrics;
mod reads;
mod requests;
mod stream;
mod system;

pub use binaries::{binary, spawn_service};
pub use ctl::Ctl;
pub use metrics::{
    alert_metric_names, dashboard_exprs, dashboard_metric_names, exported, labelled, metric, metrics_addr, scrape,
};
pub use reads::{Dump, burst, dump};
pub use requests::{assert_code, get, put, with_actor};
pub use stream::{StreamReader, fill_history};
pub use system::{Builder, Command, Query, TEST_PAGE_TOKEN_KEY, TestSystem, channel};
pub use veltrix_testkit::Redis;
pub use veltrix_testkit::{Balancer, eventually, free_port};

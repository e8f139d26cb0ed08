//! The three shapes of Redis a read model runs on, behind one connection
//! type: one server (`redis://`), a Redis Cluster (`redis+cluster://`) and a
//! master found through Sentinel (`redis+sentinel://`). Every command the
//! read model sends touches one hash slot, so the same commands run on all
//! three; what differs (a pipeline per slot on a cluster, SCAN per master)
//! asks [`Conn::is_cluster`].

use std::{sync::Arc, time::Duration};

use redis::{
    Cmd, ConnectionAddr, Pipeline, RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection},
    cluster::ClusterClientBuilder,
    cluster_async::ClusterConnection,
    sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType},
};
use tokio::sync::Mutex;

use crate::{Error, RedisOptions};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the read model's data lives, parsed from `--redis-url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// `redis://` or `rediss://`: one server.
    Single,
    /// `redis+cluster://[user:pass@]host:port,host:port,...`: seed nodes of
    /// a Redis Cluster (any few; the client discovers the rest).
    Cluster { tls: bool, nodes: Vec<(String, u16)>, username: Option<String>, password: Option<String> },
    /// `redis+sentinel://[user:pass@]host:port,host:port,.../master-name`:
    /// Sentinels and the name of the master they watch; the credentials are
    /// the master's.
    Sentinel {
        tls: bool,
        sentinels: Vec<(String, u16)>,
        master: String,
        username: Option<String>,
        password: Option<String>,
    },
}

impl Topology {
    /// Parses the scheme and, for a cluster or Sentinel, the host list. A
    /// plain URL is left to the redis crate.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let bad = |rule: &str| Error::Config(format!("redis url: {rule}"));
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("expected scheme://"))?;
        let (tls, cluster) = match scheme {
            "redis" | "rediss" => return Ok(Self::Single),
            "redis+cluster" => (false, true),
            "rediss+cluster" => (true, true),
            "redis+sentinel" => (false, false),
            "rediss+sentinel" => (true, false),
            other => {
                return Err(bad(&format!("unknown scheme {other:?} (redis, rediss, redis+cluster, redis+sentinel)")));
            }
        };
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((auth, rest)) => (Some(auth), rest),
            None => (None, rest),
        };
        let (username, password) = match auth.map(|a| a.split_once(':').unwrap_or(("", a))) {
            None => (None, None),
            Some((user, pass)) => {
                ((!user.is_empty()).then(|| user.to_owned()), (!pass.is_empty()).then(|| pass.to_owned()))
            }
        };
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let nodes = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| {
                let (host, port) = h.rsplit_once(':').unwrap_or((h, if cluster { "6379" } else { "26379" }));
                let port = port.parse::<u16>().map_err(|_| bad(&format!("port of {h:?} is not a number")))?;
                Ok((host.to_owned(), port))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        if nodes.is_empty() {
            return Err(bad("at least one host:port is required"));
        }
        if cluster {
            return Ok(Self::Cluster { tls, nodes, username, password });
        }
        let master = path.trim_matches('/');
        if master.is_empty() {
            return Err(bad("a Sentinel URL ends with /<master name>"));
        }
        Ok(Self::Sentinel { tls, sentinels: nodes, master: master.to_owned(), username, password })
    }
}

/// A connection to whichever shape of Redis the options name. Cheap to
/// clone; every clone shares the underlying connections.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(Arc<SentinelConn>),
}

impl Conn {
    pub(crate) async fn open(options: &RedisOptions) -> Result<Self, Error> {
        match Topology::parse(&options.url)? {
            Topology::Single => Ok(Self::Single(open_single(options).await?)),
            Topology::Cluster { tls, nodes, username, password } => {
                let scheme = if tls { "rediss" } else { "redis" };
                let urls = nodes.iter().map(|(h, p)| format!("{scheme}://{h}:{p}"));
                let mut builder = ClusterClientBuilder::new(urls)
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    // A failover takes the cluster's node timeout: retry across it
                    // (waits of 100 ms doubling, capped at 1 s).
                    .retries(12)
                    .min_retry_wait(100)
                    .max_retry_wait(1000)
                    .tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
                if let Some(user) = username.or_else(|| options.username.clone()) {
                    builder = builder.username(user);
                }
                if let Some(password) = password.or_else(|| options.password.clone()) {
                    builder = builder.password(password);
                }
                if tls && let Some(certs) = certificates(options)? {
                    builder = builder.certs(certs);
                }
                let client = builder.build()?;
                // get_async_connection can hang on an unreachable cluster
                // (redis-rs #1953): bound it.
                let connect = client.get_async_connection();
                let conn = tokio::time::timeout(Duration::from_secs(10), connect)
                    .await
                    .map_err(|_| Error::Config("redis cluster: no seed node answered within 10 s".into()))??;
                Ok(Self::Cluster(conn))
            }
            Topology::Sentinel { tls, sentinels, master, username, password } => {
                let addrs = sentinels.into_iter().map(|(host, port)| {
                    if tls {
                        ConnectionAddr::TcpTls { host, port, insecure: false, tls_params: None }
                    } else {
                        ConnectionAddr::Tcp(host, port)
                    }
                });
                let mut builder = SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)?
                    .set_client_to_redis_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
                if tls {
                    builder = builder
                        .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
                        .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure);
                    if let Some(certs) = certificates(options)? {
                        builder = builder.set_client_to_redis_certificates(certs);
                    }
                }
                if let Some(user) = username.or_else(|| options.username.clone()) {
                    builder = builder.set_client_to_redis_username(user);
                }
                if let Some(password) = password.or_else(|| options.password.clone()) {
                    builder = builder.set_client_to_redis_password(password);
                }
                let mut client = builder.build()?;
                let current = resolve(&mut client).await?;
                Ok(Self::Sentinel(Arc::new(SentinelConn {
                    client: Mutex::new((client, None)),
                    current: std::sync::RwLock::new(current),
                })))
            }
        }
    }

    /// Commands of different slots need their own pipelines.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// The cluster connection, for commands routed to one node.
    pub(crate) fn cluster(&self) -> Option<ClusterConnection> {
        match self {
            Self::Cluster(c) => Some(c.clone()),
            _ => None,
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
            Self::Sentinel(s) => {
                let s = s.clone();
                Box::pin(async move {
                    let mut conn = s.connection();
                    let result = conn.req_packed_command(cmd).await;
                    s.after(&result).await;
                    result
                })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Sentinel(s) => {
                let s = s.clone();
                Box::pin(async move {
                    let mut conn = s.connection();
                    let result = conn.req_packed_commands(pipeline, offset, count).await;
                    // A pipeline's refusals come back as values, not as an
                    // error: a demoted master's READONLY among them too.
                    let demoted = result.as_ref().is_ok_and(|values| {
                        values.iter().any(|v| {
                            matches!(v, Value::ServerError(e) if e.kind() == Some(redis::ServerErrorKind::ReadOnly))
                        })
                    });
                    if demoted {
                        s.after::<()>(&Err(redis::RedisError::from((
                            redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly),
                            "a pipeline was refused by a replica",
                        ))))
                        .await;
                    } else {
                        s.after(&result).await;
                    }
                    result
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
            Self::Sentinel(_) => 0,
        }
    }
}

/// The master Sentinel names, asked again after any error that may mean it
/// moved (the redis crate's Sentinel client hands out plain connections
/// that do not follow a failover).
pub(crate) struct SentinelConn {
    /// The Sentinel client and when it last named a master.
    client: Mutex<(SentinelClient, Option<tokio::time::Instant>)>,
    current: std::sync::RwLock<MultiplexedConnection>,
}

/// Errors within this long of the last resolution do not ask again (a
/// burst of failing calls asks once).
const RESOLVE_EVERY: Duration = Duration::from_millis(250);

impl SentinelConn {
    fn connection(&self) -> MultiplexedConnection {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// After a connection error or a write refused by a demoted master,
    /// asks the Sentinels for the master and reconnects (the caller's retry
    /// then reaches it). One resolution at a time.
    async fn after<T>(&self, result: &redis::RedisResult<T>) {
        let Err(e) = result else { return };
        let moved = e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
            || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly);
        if !moved {
            return;
        }
        let mut guard = self.client.lock().await;
        let (client, last) = &mut *guard;
        if last.is_some_and(|at| at.elapsed() < RESOLVE_EVERY) {
            return;
        }
        *last = Some(tokio::time::Instant::now());
        match resolve(client).await {
            Ok(conn) => match self.current.write() {
                Ok(mut current) => *current = conn,
                Err(poisoned) => *poisoned.into_inner() = conn,
            },
            Err(e) => tracing::warn!(error = %e, "the Sentinels named no reachable master yet"),
        }
    }
}

async fn resolve(client: &mut SentinelClient) -> Result<MultiplexedConnection, Error> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    let lookup = client.get_async_connection_with_config(&config);
    Ok(tokio::time::timeout(Duration::from_secs(5), lookup)
        .await
        .map_err(|_| Error::Config("redis sentinel: no Sentinel answered within 5 s".into()))??)
}

fn certificates(options: &RedisOptions) -> Result<Option<redis::TlsCertificates>, Error> {
    if options.ca_cert.is_none() && options.client_cert.is_none() {
        return Ok(None);
    }
    let read = |p: &std::path::PathBuf| {
        std::fs::read(p).map_err(|e| Error::Config(format!("cannot read {}: {e}", p.display())))
    };
    let client_tls = match (&options.client_cert, &options.client_key) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig { client_cert: read(cert)?, client_key: read(key)? }),
        _ => None,
    };
    let root_cert = options.ca_cert.as_ref().map(read).transpose()?;
    Ok(Some(redis::TlsCertificates { client_tls, root_cert }))
}

/// A reconnecting connection to one Redis server.
async fn open_single(options: &RedisOptions) -> Result<ConnectionManager, Error> {
    // Without TCP_NODELAY a pipeline written in several segments waits
    // for the delayed ACK (~40 ms) on every read.
    let mut info = redis::IntoConnectionInfo::into_connection_info(options.url.as_str())?
        .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
    if options.username.is_some() || options.password.is_some() {
        let mut settings = info.redis_settings().clone();
        if let Some(user) = &options.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &options.password {
            settings = settings.set_password(password);
        }
        info = info.set_redis_settings(settings);
    }
    let client = match certificates(options)? {
        Some(certs) => redis::Client::build_with_tls(info, certs)?,
        None => redis::Client::open(info)?,
    };
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(1));
    Ok(ConnectionManager::new_with_config(client, config).await?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls_name_the_shape() {
        assert_eq!(Topology::parse("redis://127.0.0.1:6379").unwrap(), Topology::Single);
        assert_eq!(
            Topology::parse("redis+cluster://u:p@a:7000,b:7001").unwrap(),
            Topology::Cluster {
                tls: false,
                nodes: vec![("a".into(), 7000), ("b".into(), 7001)],
                username: Some("u".into()),
                password: Some("p".into()),
            }
        );
        assert_eq!(
            Topology::parse("rediss+sentinel://:secret@s1:26379,s2/veltrix").unwrap(),
            Topology::Sentinel {
                tls: true,
                sentinels: vec![("s1".into(), 26379), ("s2".into(), 26379)],
                master: "veltrix".into(),
                username: None,
                password: Some("secret".into()),
            }
        );
        for bad in ["redis+sentinel://s1:26379", "redis+cluster://", "redis+cluster://a:x", "http://a", "nope"] {
            assert!(Topology::parse(bad).is_err(), "{bad}");
        }
    }
}

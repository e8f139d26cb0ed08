#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid stream settings: {0}")]
    Settings(String),
    #[error(
        "the existing stream {stream} is incompatible with this service: {reason}; \
         fix or recreate the stream, or point the service at another one"
    )]
    IncompatibleStream { stream: String, reason: String },
    #[error("JetStream request failed: {context}: {source}")]
    JetStream {
        context: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

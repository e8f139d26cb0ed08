//! `ConfigQuery` over gRPC: each call is authorized, then answered by the
//! read RPCs ([`crate::read`]) or a watch stream ([`crate::watch`]); every
//! error becomes a status in one place ([`crate::status`]).

use std::{future::Future, sync::Arc, time::Duration};

use tokio::time::Instant;

use tonic::{Request, Response, Status};
use veltrix_access::{Auth, Caller, Role};
use veltrix_domain::Namespace;
use veltrix_proto::v1::{
    BlameRequest, BlameResponse, DiffRequest, DiffResponse, GetRequest, GetResponse, GetRevisionStatusRequest,
    GetRevisionStatusResponse, HistoryRequest, HistoryResponse, ListClientsRequest, ListClientsResponse,
    ListNamespacesRequest, ListNamespacesResponse, ListRequest, ListResponse, ListSchemasRequest, ListSchemasResponse,
    ReportStatusRequest, ReportStatusResponse, SyncRequest, WatchRequest, config_query_server::ConfigQuery,
};
use veltrix_proto::v1::{GetRolloutRequest, GetRolloutResponse, ListRolloutsRequest, ListRolloutsResponse};
use veltrix_proto::v1::{NamespaceRoles, WhoAmIRequest, WhoAmIResponse};
use veltrix_redis::ReadModel;
use veltrix_server::{CallTime, CancellationToken, ServingGate};

use crate::{
    read::token::TokenKey,
    state::ReadState,
    status::{ReadError, to_status},
    watch::{WatchSettings, WatchStream, hub::Hub},
};

pub struct QueryService {
    pub auth: Auth,
    pub state: Arc<ReadState>,
    pub model: ServingGate<ReadModel>,
    pub tokens: TokenKey,
    pub call_time: CallTime,
    /// The most bytes a List or History page carries.
    pub max_response_bytes: usize,
    pub hub: Arc<Hub>,
    pub watch: WatchSettings,
    pub shutdown: CancellationToken,
    pub fleet: Arc<crate::fleet::Fleet>,
}

/// Authenticates the call and checks the read role on its namespace. An
/// invalid namespace name is left to validation (INVALID_ARGUMENT).
fn authorize_read<T>(auth: &Auth, request: &Request<T>, namespace: &str) -> Result<Caller, ReadError> {
    let caller = auth.caller(request)?;
    if Namespace::parse(namespace).is_ok() {
        caller.require(Role::Read, namespace)?;
    }
    Ok(caller)
}

/// The most namespaces one WhoAmI may ask about.
const MAX_WHO_AM_I_NAMESPACES: usize = 1000;

/// The caller's identity and roles on the namespaces asked about.
fn who_am_i(caller: &Caller, enabled: bool, request: &WhoAmIRequest) -> Result<WhoAmIResponse, ReadError> {
    if request.namespaces.len() > MAX_WHO_AM_I_NAMESPACES {
        let rule = format!("must name at most {MAX_WHO_AM_I_NAMESPACES} namespaces (got {})", request.namespaces.len());
        return Err(veltrix_domain::ValidationError::new("namespaces", rule).into());
    }
    let roles = request
        .namespaces
        .iter()
        .map(|namespace| NamespaceRoles {
            namespace: namespace.clone(),
            read: caller.can(Role::Read, namespace),
            write: caller.can(Role::Write, namespace),
            admin: caller.can(Role::Admin, namespace),
        })
        .collect();
    Ok(WhoAmIResponse {
        identity: caller.identity().unwrap_or_default().to_owned(),
        authentication_enabled: enabled,
        roles,
    })
}

/// Beyond a call's deadline, for answers that report their own deadline
/// (a read-your-writes wait names how far the model is) to come first.
const GRACE: Duration = Duration::from_millis(100);

/// `answer`, or DEADLINE_EXCEEDED once the call's time is up: no call holds
/// the server longer than its limit, whatever it waits on.
async fn within<T>(deadline: Instant, answer: impl Future<Output = Result<T, ReadError>>) -> Result<T, ReadError> {
    tokio::time::timeout_at(deadline + GRACE, answer).await.unwrap_or(Err(ReadError::TimedOut))
}

#[tonic::async_trait]
impl ConfigQuery for QueryService {
    type WatchStream = WatchStream;
    type SyncStream = crate::fleet::SyncStream;

    async fn sync(
        &self,
        request: Request<tonic::Streaming<SyncRequest>>,
    ) -> Result<Response<Self::SyncStream>, Status> {
        let deadline = self.deadline(&request);
        let answer = async {
            let caller = self.auth.caller(&request)?;
            self.open_sync(caller, request.into_inner()).await
        };
        // Opening (up to the subscribe message's checks) is bounded like
        // any call; the stream itself is not.
        within(deadline, answer).await.map(Response::new).map_err(to_status)
    }

    async fn report_status(
        &self,
        request: Request<ReportStatusRequest>,
    ) -> Result<Response<ReportStatusResponse>, Status> {
        let deadline = self.deadline(&request);
        let answer = async {
            authorize_read(&self.auth, &request, &request.get_ref().namespace)?;
            self.report_status(request.into_inner()).await
        };
        within(deadline, answer).await.map(Response::new).map_err(to_status)
    }

    async fn list_clients(
        &self,
        request: Request<ListClientsRequest>,
    ) -> Result<Response<ListClientsResponse>, Status> {
        let deadline = self.deadline(&request);
        let answer = async {
            authorize_read(&self.auth, &request, &request.get_ref().namespace)?;
            self.list_clients(request.into_inner()).await
        };
        within(deadline, answer).await.map(Response::new).map_err(to_status)
    }

    async fn get_revision_status(
        &self,
        request: Request<GetRevisionStatusRequest>,
    ) -> Result<Response<GetRevisionStatusResponse>, Status> {
        let deadline = self.deadline(&request);
        let answer = async {
            authorize_read(&self.auth, &request, &request.get_ref().namespace)?;
            self.revision_status(request.into_inner()).await
        };
        within(deadline, answer).await.map(Response::new).map_err(to_status)
    }

    async fn watch(&self, request: Request<WatchRequest>) -> Result<Response<WatchStream>, Status> {
        let deadline = self.deadline(&request);
        let answer = async {
            let caller = authorize_read(&self.auth, &request, &request.get_ref().namespace)?;
            let permit = caller.watcher()?;
            self.open_watch(request.into_inner(), permit).await
        };
        // Opening is bounded like any call; the stream itself is not.
        within(deadline, answer).await.map(Response::new).map_err(to_status)
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let deadline = self.deadline(&request);
        let answer = async {
            authorize_read(&self.auth, &request, &request.get_ref().namespace)?;
            self.get(request.into_inner(), deadline).await
        };
        within(deadline, answer).await.map(Response::new).map_err(to_status)
    }

    async fn list(&self, request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let deadline = self.deadline(&request);
        let answer = async {
            authorize_read(&self.auth, &request, &request.get_ref().namespace)?;
            self.list(request.into_inner(), deadline).await
        };
        within(deadline, answer).await.map(Response::new).map_err(to_status)
    }

    async fn history(&self, request: Request<HistoryRequest>) -> Result<Response<HistoryResponse>, Status> {
        let deadline = self.deadline(&request);
        let answer = async {
            authorize_read(&self.auth, &request, &request.get_ref().namespace)?;
            QueryService::history(self, request.into_inner()).await
        };
        within(deadline, answer).await.map(Response::new).map_err(to_status)
    }

    async fn diff(&self, request: Request<DiffRequest>) -> Result<Response<DiffResponse>, Status> {
        let deadline = self.deadline(&request);
        let answer = async {
            let message = request.get_ref();
            let to = if message.to_namespace.is_empty() { &message.from_namespace } else { &message.to_namespace };
            authorize_read(&self.auth, &request, &message.from_namespace)?;
            authorize_read(&self.auth, &request, to)?;
            QueryService::diff(self, request.into_inner(), deadline).await
        };
        within(deadline, answer).await.map(Response::new).map_err(to_status)
    }

    async fn blame(&self, request: Request<BlameRequest>) -> Result<Response<BlameResponse>, Status> {
        let deadline = self.deadline(&request);
        let answer = async {
            authorize_read(&self.auth, &request, &request.get_ref().namespace)?;
            QueryService::blame(self, request.into_inner(), deadline).await
        };
        within(deadline, answer).await.map(Response::new).map_err(to_status)
    }

    async fn list_schemas(
        &self,
        request: Request<ListSchemasRequest>,
    ) -> Result<Response<ListSchemasResponse>, Status> {
        let deadline = self.deadline(&request);
        let answer = async {
            authorize_read(&self.auth, &request, &request.get_ref().namespace)?;
            QueryService::list_schemas(self, request.into_inner(), deadline).await
        };
        within(deadline, answer).await.map(Response::new).map_err(to_status)
    }

    async fn get_rollout(&self, request: Request<GetRolloutRequest>) -> Result<Response<GetRolloutResponse>, Status> {
        let deadline = self.deadline(&request);
        let answer = async {
            authorize_read(&self.auth, &request, &request.get_ref().namespace)?;
            self.get_rollout(request.into_inner()).await
        };
        within(deadline, answer).await.map(Response::new).map_err(to_status)
    }

    async fn list_rollouts(
        &self,
        request: Request<ListRolloutsRequest>,
    ) -> Result<Response<ListRolloutsResponse>, Status> {
        let deadline = self.deadline(&request);
        let answer = async {
            authorize_read(&self.auth, &request, &request.get_ref().namespace)?;
            self.list_rollouts(request.into_inner()).await
        };
        within(deadline, answer).await.map(Response::new).map_err(to_status)
    }

    async fn who_am_i(&self, request: Request<WhoAmIRequest>) -> Result<Response<WhoAmIResponse>, Status> {
        let answer = || {
            let caller = self.auth.caller(&request)?;
            who_am_i(&caller, self.auth.enabled(), request.get_ref())
        };
        answer().map(Response::new).map_err(to_status)
    }

    async fn list_namespaces(
        &self,
        request: Request<ListNamespacesRequest>,
    ) -> Result<Response<ListNamespacesResponse>, Status> {
        let deadline = self.deadline(&request);
        let answer = async {
            let caller = self.auth.caller(&request)?;
            self.namespaces(request.into_inner(), &caller).await
        };
        within(deadline, answer).await.map(Response::new).map_err(to_status)
    }
}

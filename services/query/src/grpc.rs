//! `ConfigQuery` over gRPC: each call is authorized, then answered by the
//! read RPCs ([`crate::read`]) or a watch stream ([`crate::watch`]); every
//! error becomes a status in one place ([`crate::status`]).

use std::{sync::Arc, time::Duration};

use tonic::{Request, Response, Status};
use veltrix_access::{Auth, Caller, Role};
use veltrix_domain::Namespace;
use veltrix_proto::v1::{
    GetRequest, GetResponse, HistoryRequest, HistoryResponse, ListNamespacesRequest, ListNamespacesResponse,
    ListRequest, ListResponse, WatchRequest, config_query_server::ConfigQuery,
};
use veltrix_redis::ReadModel;
use veltrix_server::{CancellationToken, ServingGate};

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
    pub default_deadline: Duration,
    pub hub: Arc<Hub>,
    pub watch: WatchSettings,
    pub shutdown: CancellationToken,
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

#[tonic::async_trait]
impl ConfigQuery for QueryService {
    type WatchStream = WatchStream;

    async fn watch(&self, request: Request<WatchRequest>) -> Result<Response<WatchStream>, Status> {
        let answer = async {
            let caller = authorize_read(&self.auth, &request, &request.get_ref().namespace)?;
            let permit = caller.watcher()?;
            self.open_watch(request.into_inner(), permit).await
        };
        answer.await.map(Response::new).map_err(to_status)
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let answer = async {
            authorize_read(&self.auth, &request, &request.get_ref().namespace)?;
            let deadline = self.deadline(&request);
            self.get(request.into_inner(), deadline).await
        };
        answer.await.map(Response::new).map_err(to_status)
    }

    async fn list(&self, request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let answer = async {
            authorize_read(&self.auth, &request, &request.get_ref().namespace)?;
            let deadline = self.deadline(&request);
            self.list(request.into_inner(), deadline).await
        };
        answer.await.map(Response::new).map_err(to_status)
    }

    async fn history(&self, request: Request<HistoryRequest>) -> Result<Response<HistoryResponse>, Status> {
        let answer = async {
            authorize_read(&self.auth, &request, &request.get_ref().namespace)?;
            QueryService::history(self, request.into_inner()).await
        };
        answer.await.map(Response::new).map_err(to_status)
    }

    async fn list_namespaces(
        &self,
        request: Request<ListNamespacesRequest>,
    ) -> Result<Response<ListNamespacesResponse>, Status> {
        let answer = async {
            let caller = self.auth.caller(&request)?;
            self.namespaces(request.into_inner(), &caller).await
        };
        answer.await.map(Response::new).map_err(to_status)
    }
}

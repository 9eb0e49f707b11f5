//! CORS plugins: preflights and actual requests. Every failure sends no CORS headers.

use wasmtime::Store;
use wasmtime::component::InstancePre;

use crate::authorizer::check_headers;
use crate::bindings::cors_world::{CorsPlugin as Bindings, CorsPluginPre};
use crate::bindings::types::{CorsRequest, Header, PreflightRequest};
use crate::error::CallFailure;
use crate::instance::{HostState, Kind, Loaded, PluginStats};
use crate::runtime::PluginKind;

pub(crate) struct CorsKind;

impl Kind for CorsKind {
    const KIND: PluginKind = PluginKind::Cors;
    type Pre = CorsPluginPre<HostState>;
    type Bindings = Bindings;

    fn pre(pre: InstancePre<HostState>) -> wasmtime::Result<Self::Pre> {
        CorsPluginPre::new(pre)
    }

    async fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Bindings> {
        pre.instantiate_async(store).await
    }

    async fn init(b: &Bindings, store: &mut Store<HostState>) -> wasmtime::Result<Result<(), String>> {
        b.cairn_policy_cors().call_init(store).await
    }
}

/// Only CORS response headers may come from a CORS plugin.
fn is_cors_header(name: &str) -> bool {
    name.starts_with("access-control-") || name == "vary"
}

/// A loaded CORS plugin. Cheap to clone; safe to call from many tasks at once.
#[derive(Clone)]
pub struct CorsPlugin(Loaded<CorsKind>);

impl CorsPlugin {
    pub(crate) fn new(loaded: Loaded<CorsKind>) -> Self {
        CorsPlugin(loaded)
    }

    /// The plugin's name for logs.
    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// Call counters.
    pub fn stats(&self) -> PluginStats {
        self.0.stats()
    }

    /// Headers for a preflight answer; none when the plugin failed.
    pub async fn preflight(&self, req: &PreflightRequest) -> Vec<Header> {
        self.try_preflight(req).await.unwrap_or_default()
    }

    /// Headers for a preflight answer, reporting a failed call.
    pub async fn try_preflight(&self, req: &PreflightRequest) -> Result<Vec<Header>, CallFailure> {
        let mut lease = self.0.checkout().await?;
        let (b, store) = lease.parts();
        let result = b.cairn_policy_cors().call_preflight(store, req).await;
        let headers = self.0.finish(lease, result)?;
        check_headers(&headers, is_cors_header).map_err(|why| self.0.malformed(why))?;
        Ok(headers)
    }

    /// Headers for an actual response; none when the plugin failed.
    pub async fn actual(&self, req: &CorsRequest) -> Vec<Header> {
        self.try_actual(req).await.unwrap_or_default()
    }

    /// Headers for an actual response, reporting a failed call.
    pub async fn try_actual(&self, req: &CorsRequest) -> Result<Vec<Header>, CallFailure> {
        let mut lease = self.0.checkout().await?;
        let (b, store) = lease.parts();
        let result = b.cairn_policy_cors().call_actual(store, req).await;
        let headers = self.0.finish(lease, result)?;
        check_headers(&headers, is_cors_header).map_err(|why| self.0.malformed(why))?;
        Ok(headers)
    }
}

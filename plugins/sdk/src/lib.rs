//! Cairn policy SDK: a policy is a plain Rust trait impl.
//!
//! Implement the trait of the plugin's kind ([`Authorizer`], [`Cors`], [`Allocator`]), and export it:
//!
//! ```
//! use cairn_policy_sdk::{Authorizer, types::*};
//! struct Open;
//! impl Authorizer for Open {
//!     fn from_config(_config: &str) -> Result<Self, String> { Ok(Open) }
//!     fn authorize_request(&self, _req: &ApiRequest) -> RequestDecision {
//!         RequestDecision::Allow("anonymous".into())
//!     }
//! }
//! cairn_policy_sdk::export_authorizer!(Open);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release`; the output `.wasm` is a
//! component Cairn loads directly. The same code compiles natively, so policies can be
//! unit-tested and benchmarked without a runtime (host imports are no-ops there).

#[doc(hidden)]
pub mod __base {
    wit_bindgen::generate!({
        world: "sdk-base",
        path: "../../wit",
        generate_unused_types: true,
        additional_derives: [PartialEq, Eq],
    });
}

/// The contract's data types (`cairn:policy/types`).
pub mod types {
    pub use crate::__base::cairn::policy::types::*;
}

use std::collections::HashMap;

use types::{AllocationRequest, Denial, Header, MetricColumn, MetricEntry, PinInfo};

/// One peer's metric as IPFS Cluster's `Metric` carries it; rows of these build an
/// [`AllocationRequest`] (whose metrics travel as columns) with [`AllocationRequest::from_rows`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerMetric {
    pub name: String,
    pub value: String,
    pub weight: i64,
    pub partitionable: bool,
    /// Expiry, Unix nanoseconds.
    pub expire: i64,
}

impl PeerMetric {
    /// A metric that never expires.
    pub fn new(name: &str, value: &str, weight: i64, partitionable: bool) -> Self {
        PeerMetric { name: name.into(), value: value.into(), weight, partitionable, expire: i64::MAX }
    }
}

impl AllocationRequest {
    /// A request from per-peer rows: `candidates` in order, each with its metrics. Columns
    /// appear in the order their names are first seen.
    pub fn from_rows(
        pin: PinInfo,
        current: Vec<String>,
        priority: Vec<String>,
        candidates: Vec<(String, Vec<PeerMetric>)>,
    ) -> Self {
        // Per column: the column and an index of its distinct values.
        let mut columns: Vec<(MetricColumn, HashMap<String, u32>)> = Vec::new();
        let mut ids = Vec::with_capacity(candidates.len());
        for (peer, (id, row)) in candidates.into_iter().enumerate() {
            ids.push(id);
            for m in row {
                let at = match columns.iter().position(|(c, _)| c.name == m.name) {
                    Some(at) => at,
                    None => {
                        let column = MetricColumn { name: m.name, distinct_values: Vec::new(), entries: Vec::new() };
                        columns.push((column, HashMap::new()));
                        columns.len() - 1
                    }
                };
                let (column, index) = &mut columns[at];
                let value = *index.entry(m.value).or_insert_with_key(|v| {
                    column.distinct_values.push(v.clone());
                    (column.distinct_values.len() - 1) as u32
                });
                column.entries.push(MetricEntry {
                    peer: peer as u32,
                    value,
                    weight: m.weight,
                    partitionable: m.partitionable,
                    expire: m.expire,
                });
            }
        }
        let metrics = columns.into_iter().map(|(c, _)| c).collect();
        AllocationRequest { pin, current, priority, candidates: ids, metrics }
    }

    /// The column of metric `name`, if any candidate has it.
    pub fn column(&self, name: &str) -> Option<&MetricColumn> {
        self.metrics.iter().find(|c| c.name == name)
    }
}

/// Log levels of the host's `log` import.
pub use __base::cairn::policy::host::LogLevel;

/// Write a line to the peer's log (a no-op when not running inside Cairn).
pub fn log(level: LogLevel, message: &str) {
    #[cfg(target_arch = "wasm32")]
    __base::cairn::policy::host::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    let _ = (level, message);
}

/// This plugin's configuration as JSON text (`null` when not running inside Cairn).
pub fn config() -> String {
    #[cfg(target_arch = "wasm32")]
    {
        __base::cairn::policy::host::config()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        "null".to_string()
    }
}

/// A denial with no extra headers.
pub fn denial(status: u16, reason: impl Into<String>) -> Denial {
    Denial { status, reason: reason.into(), headers: Vec::new() }
}

/// The first value of header `name` (lower-case) in `headers`.
pub fn header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// An API and peer authorizer. Unimplemented decisions deny (fail closed).
pub trait Authorizer: Sized + Send + Sync + 'static {
    /// Build the policy from its `service.json` config (JSON text; `null` when absent).
    fn from_config(config: &str) -> Result<Self, String>;

    /// Decide an API request.
    fn authorize_request(&self, req: &types::ApiRequest) -> types::RequestDecision;

    /// Decide a peer action; by default every peer action is denied.
    fn authorize_peer(&self, req: &types::PeerRequest) -> types::PeerDecision {
        let _ = req;
        types::PeerDecision::Deny("this plugin does not authorize peer actions".into())
    }

    /// Issue a token for `POST /token`; by default no tokens are issued.
    fn issue_token(&self, req: &types::ApiRequest) -> types::TokenDecision {
        let _ = req;
        types::TokenDecision::Deny(denial(401, "unauthorized"))
    }
}

/// A CORS policy.
pub trait Cors: Sized + Send + Sync + 'static {
    /// Build the policy from its `service.json` config (JSON text; `null` when absent).
    fn from_config(config: &str) -> Result<Self, String>;
    /// Headers for a preflight answer; empty = no CORS headers.
    fn preflight(&self, req: &types::PreflightRequest) -> Vec<Header>;
    /// Headers for the response to an actual request with an `Origin`.
    fn actual(&self, req: &types::CorsRequest) -> Vec<Header>;
}

/// A pin allocator.
pub trait Allocator: Sized + Send + Sync + 'static {
    /// Build the policy from its `service.json` config (JSON text; `null` when absent).
    fn from_config(config: &str) -> Result<Self, String>;
    /// The full ordered allocation, or an error message for the user.
    fn allocate(&self, req: &types::AllocationRequest) -> Result<Vec<String>, String>;
}

#[doc(hidden)]
pub mod __authorizer {
    wit_bindgen::generate!({
        world: "authorizer-plugin",
        path: "../../wit",
        with: {
            "cairn:policy/types@0.1.0": crate::__base::cairn::policy::types,
            "cairn:policy/host@0.1.0": crate::__base::cairn::policy::host,
        },
        pub_export_macro: true,
        export_macro_name: "__cairn_export_authorizer_world",
    });
}

#[doc(hidden)]
pub mod __cors {
    wit_bindgen::generate!({
        world: "cors-plugin",
        path: "../../wit",
        with: {
            "cairn:policy/types@0.1.0": crate::__base::cairn::policy::types,
            "cairn:policy/host@0.1.0": crate::__base::cairn::policy::host,
        },
        pub_export_macro: true,
        export_macro_name: "__cairn_export_cors_world",
    });
}

#[doc(hidden)]
pub mod __allocator {
    wit_bindgen::generate!({
        world: "allocator-plugin",
        path: "../../wit",
        with: {
            "cairn:policy/types@0.1.0": crate::__base::cairn::policy::types,
            "cairn:policy/host@0.1.0": crate::__base::cairn::policy::host,
        },
        pub_export_macro: true,
        export_macro_name: "__cairn_export_allocator_world",
    });
}

/// Per-instance policy state: built once from the config, then reused by every call.
#[doc(hidden)]
pub struct __Instance<P>(std::sync::OnceLock<Result<P, String>>);

impl<P> __Instance<P> {
    #[doc(hidden)]
    pub const fn new() -> Self {
        Self(std::sync::OnceLock::new())
    }

    #[doc(hidden)]
    pub fn get(&self, build: impl FnOnce(&str) -> Result<P, String>) -> Result<&P, String> {
        self.0.get_or_init(|| build(&config())).as_ref().map_err(|e| format!("plugin configuration error: {e}"))
    }
}

/// Export an [`Authorizer`] implementation as this component's `authorizer` world.
#[macro_export]
macro_rules! export_authorizer {
    ($policy:ty) => {
        // Natively (unit tests, benchmarks) nothing is exported; this keeps the policy "used".
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn(&str) -> ::core::result::Result<$policy, ::std::string::String> =
            <$policy as $crate::Authorizer>::from_config;
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::__authorizer::exports::cairn::policy::authorizer::Guest;
            use $crate::types::*;
            static POLICY: $crate::__Instance<$policy> = $crate::__Instance::new();
            fn policy() -> ::core::result::Result<&'static $policy, ::std::string::String> {
                POLICY.get(<$policy as $crate::Authorizer>::from_config)
            }
            struct Export;
            impl Guest for Export {
                fn init() -> ::core::result::Result<(), ::std::string::String> {
                    policy().map(|_| ())
                }
                fn authorize_request(req: ApiRequest) -> RequestDecision {
                    match policy() {
                        Ok(p) => $crate::Authorizer::authorize_request(p, &req),
                        Err(e) => RequestDecision::Deny($crate::denial(500, e)),
                    }
                }
                fn authorize_peer(req: PeerRequest) -> PeerDecision {
                    match policy() {
                        Ok(p) => $crate::Authorizer::authorize_peer(p, &req),
                        Err(e) => PeerDecision::Deny(e),
                    }
                }
                fn issue_token(req: ApiRequest) -> TokenDecision {
                    match policy() {
                        Ok(p) => $crate::Authorizer::issue_token(p, &req),
                        Err(e) => TokenDecision::Deny($crate::denial(500, e)),
                    }
                }
            }
    $crate::__authorizer::__cairn_export_authorizer_world!(Export with_types_in $crate::__authorizer);
        };
    };
}

/// Export a [`Cors`] implementation as this component's `cors` world.
#[macro_export]
macro_rules! export_cors {
    ($policy:ty) => {
        // Natively (unit tests, benchmarks) nothing is exported; this keeps the policy "used".
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn(&str) -> ::core::result::Result<$policy, ::std::string::String> =
            <$policy as $crate::Cors>::from_config;
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::__cors::exports::cairn::policy::cors::Guest;
            use $crate::types::*;
            static POLICY: $crate::__Instance<$policy> = $crate::__Instance::new();
            fn policy() -> ::core::result::Result<&'static $policy, ::std::string::String> {
                POLICY.get(<$policy as $crate::Cors>::from_config)
            }
            struct Export;
            impl Guest for Export {
                fn init() -> ::core::result::Result<(), ::std::string::String> {
                    policy().map(|_| ())
                }
                fn preflight(req: PreflightRequest) -> ::std::vec::Vec<Header> {
                    policy().map(|p| $crate::Cors::preflight(p, &req)).unwrap_or_default()
                }
                fn actual(req: CorsRequest) -> ::std::vec::Vec<Header> {
                    policy().map(|p| $crate::Cors::actual(p, &req)).unwrap_or_default()
                }
            }
    $crate::__cors::__cairn_export_cors_world!(Export with_types_in $crate::__cors);
        };
    };
}

/// Export an [`Allocator`] implementation as this component's `allocator` world.
#[macro_export]
macro_rules! export_allocator {
    ($policy:ty) => {
        // Natively (unit tests, benchmarks) nothing is exported; this keeps the policy "used".
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn(&str) -> ::core::result::Result<$policy, ::std::string::String> =
            <$policy as $crate::Allocator>::from_config;
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::__allocator::exports::cairn::policy::allocator::Guest;
            use $crate::types::*;
            static POLICY: $crate::__Instance<$policy> = $crate::__Instance::new();
            fn policy() -> ::core::result::Result<&'static $policy, ::std::string::String> {
                POLICY.get(<$policy as $crate::Allocator>::from_config)
            }
            struct Export;
            impl Guest for Export {
                fn init() -> ::core::result::Result<(), ::std::string::String> {
                    policy().map(|_| ())
                }
                fn allocate(
                    req: AllocationRequest,
                ) -> ::core::result::Result<::std::vec::Vec<::std::string::String>, ::std::string::String> {
                    $crate::Allocator::allocate(policy()?, &req)
                }
            }
    $crate::__allocator::__cairn_export_allocator_world!(Export with_types_in $crate::__allocator);
        };
    };
}

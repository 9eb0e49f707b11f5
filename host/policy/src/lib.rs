//! Cairn's policy-plugin runtime: loads WebAssembly components written against the
//! `cairn:policy` WIT contract (`wit/`), sandboxes them, and turns every call into a
//! decision — failures included, which become fail-safe decisions.
//!
//! - [`PolicyRuntime`] owns the engine, the epoch ticker and the compile cache.
//! - [`AuthorizerPlugin`], [`CorsPlugin`], [`AllocatorPlugin`] are loaded plugins; they
//!   are cheap to clone and safe to call from many tasks at once.
//! - [`PluginSlot`] holds the active plugin of a decision point and swaps it on reload.
//! - [`builtin`] holds the default policies embedded in the binary.

mod allocator;
mod authorizer;
mod bindings;
pub mod builtin;
mod compile;
mod cors;
mod error;
mod instance;
mod reload;
mod runtime;
mod sandbox;
mod stderr;

pub use allocator::{AllocatorPlugin, PeerMetric};
pub use authorizer::AuthorizerPlugin;
pub use bindings::types;
pub use cors::CorsPlugin;
pub use error::{CallFailure, PolicyError};
pub use instance::{CallLatency, LATENCY_BUCKETS, PluginStats};
pub use reload::{Loadable, PluginSlot, ReloadStats};
pub use runtime::{Limits, PluginKind, PluginSource, PluginSpec, PolicyRuntime, RuntimeSettings};
pub use sandbox::ComponentInfo;

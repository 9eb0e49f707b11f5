//! Helpers shared by the runtime's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use cairn_policy::types::*;
use cairn_policy::{Limits, PolicyRuntime, RuntimeSettings};

/// A runtime with the default limits and no compile cache.
pub fn runtime() -> PolicyRuntime {
    PolicyRuntime::new(RuntimeSettings::default()).expect("runtime")
}

/// A runtime with the given call deadline.
pub fn runtime_with_deadline(deadline: Duration) -> PolicyRuntime {
    let limits = Limits { call_deadline: deadline, ..Limits::default() };
    PolicyRuntime::new(RuntimeSettings { cache_dir: None, limits }).expect("runtime")
}

/// Path of a guest component built by build.rs (e.g. `hostile_spin`).
pub fn wasm(name: &str) -> PathBuf {
    PathBuf::from(env!("CAIRN_PLUGIN_WASM_DIR")).join(format!("{name}.wasm"))
}

/// An API request with the given method, path and credentials.
pub fn request(method: &str, path: &str, credentials: Credentials) -> ApiRequest {
    let mut headers: Vec<(String, String)> =
        (0..8).map(|i| (format!("x-header-{i}"), "some header value of thirty b".to_string())).collect();
    headers.push(("user-agent".into(), "cairn-test".into()));
    headers.push(("accept".into(), "application/json".into()));
    ApiRequest {
        api: Api::Restapi,
        method: method.into(),
        path: path.into(),
        query: String::new(),
        headers,
        remote_addr: "127.0.0.1:40000".into(),
        peer_id: None,
        tls: false,
        credentials,
    }
}

/// `Authorization: Basic` credentials.
pub fn basic(user: &str, password: &str) -> Credentials {
    Credentials::Basic(BasicCredentials { user: user.into(), password: password.into() })
}

//! Load the embedded `basic-auth` policy and ask it to authorize two requests.
//!
//! Run: `cargo run -p cairn-policy --example authorize`

use cairn_policy::types::{Api, ApiRequest, BasicCredentials, Credentials};
use cairn_policy::{PluginSpec, PolicyRuntime, RuntimeSettings};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = PolicyRuntime::new(RuntimeSettings::default())?;
    // The plugin's config is the API section's own keys, as in IPFS Cluster's service.json.
    let config = serde_json::json!({ "basic_auth_credentials": { "alice": "secret" } });
    let authorizer = runtime.load_authorizer(&PluginSpec::builtin("basic-auth", config)).await?;

    for credentials in
        [Credentials::Basic(BasicCredentials { user: "alice".into(), password: "secret".into() }), Credentials::None]
    {
        let request = ApiRequest {
            api: Api::Restapi,
            method: "POST".into(),
            path: "/pins/bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi".into(),
            query: String::new(),
            headers: vec![("user-agent".into(), "example".into())],
            remote_addr: "127.0.0.1:40000".into(),
            peer_id: None,
            tls: false,
            credentials,
        };
        println!("{:?}", authorizer.authorize_request(&request).await);
    }
    println!("{:?}", authorizer.stats());
    Ok(())
}

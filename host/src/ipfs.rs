//! The daemon's IPFS side: the connector built from `ipfs_connector` (ipfshttp or embedded), and the adapter
//! through which the pin tracker uses it.

use std::collections::HashMap;
use std::sync::Arc;

use cairn_ipfs::{IpfsConnector, IpfsHttp, IpfsHttpConfig, PinRequest, PinStatus as IpfsPinStatus};
use cairn_ipfs_embedded::EmbeddedIpfs;
use cairn_state::{Cid, PinMode};
use cairn_tracker::{IpfsPinType, IpfsPins};
use futures::StreamExt;
use futures::future::BoxFuture;

use crate::config::{ConfigDir, ServiceConfig};

/// The IPFS backend of `ipfs_connector`: the Kubo RPC client, or the node inside this process.
pub struct IpfsBackend {
    /// What the tracker, informers and APIs talk to.
    pub connector: Arc<dyn IpfsConnector>,
    /// The embedded node, to stop with the peer.
    pub embedded: Option<Arc<EmbeddedIpfs>>,
}

/// Builds the configured backend; a bad setting names its key, an embedded node that cannot
/// start names its data folder.
pub async fn connector(dir: &ConfigDir, config: &ServiceConfig) -> anyhow::Result<IpfsBackend> {
    let file = dir.service();
    if let Some(section) = &config.ipfs_connector.embedded {
        let node = EmbeddedIpfs::start(section, &dir.0, config.secret_bytes())
            .await
            .map_err(|e| anyhow::anyhow!("{}: ipfs_connector.embedded: {e}", file.display()))?;
        tracing::info!(peer_id = %node.peer_id(), folder = %node.data_folder().display(), "embedded IPFS node started");
        return Ok(IpfsBackend { connector: node.clone(), embedded: Some(node) });
    }
    let Some(section) = &config.ipfs_connector.ipfshttp else {
        anyhow::bail!("{}: ipfs_connector has no IPFS backend", file.display());
    };
    let settings = IpfsHttpConfig {
        node_multiaddress: section.node_multiaddress.clone(),
        connect_swarms_delay: section.connect_swarms_delay.0,
        ipfs_request_timeout: section.ipfs_request_timeout.0,
        pin_timeout: section.pin_timeout.0,
        unpin_timeout: section.unpin_timeout.0,
        repogc_timeout: section.repogc_timeout.0,
        informer_trigger_interval: section.informer_trigger_interval,
        unpin_disable: section.unpin_disable,
        ..IpfsHttpConfig::default()
    };
    let http = IpfsHttp::new(settings)
        .map_err(|e| anyhow::anyhow!("{}: ipfs_connector.ipfshttp.node_multiaddress: {e}", file.display()))?;
    Ok(IpfsBackend { connector: Arc::new(http), embedded: None })
}

/// [`IpfsPins`] over the connector.
pub struct TrackerIpfs(pub Arc<dyn IpfsConnector>);

fn ipfs_mode(mode: PinMode) -> cairn_ipfs::PinMode {
    match mode {
        PinMode::Recursive => cairn_ipfs::PinMode::Recursive,
        PinMode::Direct => cairn_ipfs::PinMode::Direct,
    }
}

impl IpfsPins for TrackerIpfs {
    fn pin(&self, cid: &Cid, mode: PinMode) -> BoxFuture<'_, Result<(), String>> {
        let request = PinRequest {
            cid: *cid.raw(),
            mode: ipfs_mode(mode),
            max_depth: None,
            origins: Vec::new(),
            update_from: None,
            progress: None,
        };
        Box::pin(async move { self.0.pin(request).await.map(|_| ()).map_err(|e| e.to_string()) })
    }

    fn unpin(&self, cid: &Cid) -> BoxFuture<'_, Result<(), String>> {
        let cid = *cid.raw();
        Box::pin(async move { self.0.unpin(cid).await.map(|_| ()).map_err(|e| e.to_string()) })
    }

    fn pin_ls(&self, cid: &Cid) -> BoxFuture<'_, Result<Option<IpfsPinType>, String>> {
        let cid = *cid.raw();
        Box::pin(async move {
            let status = self.0.pin_ls_cid(cid, None).await.map_err(|e| e.to_string())?;
            Ok(pin_type(status))
        })
    }

    fn pin_ls_all(&self) -> BoxFuture<'_, Result<HashMap<Vec<u8>, IpfsPinType>, String>> {
        Box::pin(async move {
            let mut all = HashMap::new();
            let mut stream = self.0.pin_ls();
            while let Some(item) = stream.next().await {
                let item = item.map_err(|e| e.to_string())?;
                if let Some(kind) = pin_type(item.status) {
                    all.insert(item.cid.hash().to_bytes(), kind);
                }
            }
            Ok(all)
        })
    }
}

fn pin_type(status: IpfsPinStatus) -> Option<IpfsPinType> {
    match status {
        IpfsPinStatus::Recursive => Some(IpfsPinType::Recursive),
        IpfsPinStatus::Direct => Some(IpfsPinType::Direct),
        IpfsPinStatus::Indirect => Some(IpfsPinType::Indirect),
        IpfsPinStatus::Unpinned => None,
    }
}

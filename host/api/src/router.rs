//! The route table of reference §1.3, matched the way gorilla/mux matches IPFS Cluster's routes:
//! in registration order, on the decoded path, first full match wins; a path that matches some
//! route with another method is 405, anything else 404.

use http::Method;

/// A matched route with its path variables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    Id,
    Version,
    Peers,
    PeerAdd,
    PeerRemove(&'a str),
    Add,
    Allocations,
    Allocation(&'a str),
    StatusAll,
    Recover(&'a str),
    RecoverAll,
    Status(&'a str),
    Pin(&'a str),
    PinPath(&'a str, &'a str),
    Unpin(&'a str),
    UnpinPath(&'a str, &'a str),
    RepoGc,
    Graph,
    Alerts,
    Bandwidth,
    Metrics(&'a str),
    MetricNames,
    Token,
    Health,
}

/// Why no route matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NoRoute {
    /// No pattern matches the path: 404.
    NotFound,
    /// A pattern matches but not with this method: 405.
    MethodNotAllowed,
}

/// `{keyType:ipfs|ipns|ipld}/{path:.*}`.
const KEY_TYPES: [&str; 3] = ["ipfs", "ipns", "ipld"];

/// The routes in IPFS Cluster's registration order (`api/rest/restapi.go`), then `HEAD /health`
/// (beyond IPFS Cluster, which answers it 405): monitors probe with HEAD, and it is open as GET is.
const TABLE: [(Method, &str); 25] = [
    (Method::GET, "/id"),
    (Method::GET, "/version"),
    (Method::GET, "/peers"),
    (Method::POST, "/peers"),
    (Method::DELETE, "/peers/{peer}"),
    (Method::POST, "/add"),
    (Method::GET, "/allocations"),
    (Method::GET, "/allocations/{hash}"),
    (Method::GET, "/pins"),
    (Method::POST, "/pins/{hash}/recover"),
    (Method::POST, "/pins/recover"),
    (Method::GET, "/pins/{hash}"),
    (Method::POST, "/pins/{hash}"),
    (Method::POST, "/pins/{keyType}/{path}"),
    (Method::DELETE, "/pins/{hash}"),
    (Method::DELETE, "/pins/{keyType}/{path}"),
    (Method::POST, "/ipfs/gc"),
    (Method::GET, "/health/graph"),
    (Method::GET, "/health/alerts"),
    (Method::GET, "/health/bandwidth"),
    (Method::GET, "/monitor/metrics/{name}"),
    (Method::GET, "/monitor/metrics"),
    (Method::POST, "/token"),
    (Method::GET, "/health"),
    (Method::HEAD, "/health"),
];

/// Matches `path` against a pattern; the captured variables in order.
fn match_pattern<'a>(pattern: &str, path: &'a str) -> Option<Vec<&'a str>> {
    let mut vars = Vec::new();
    let mut rest = path.strip_prefix('/')?;
    let mut segments = pattern.trim_start_matches('/').split('/').peekable();
    while let Some(segment) = segments.next() {
        match segment {
            // `.*`: everything left, slashes included, possibly empty.
            "{path}" => {
                vars.push(rest);
                rest = "";
                break;
            }
            "{keyType}" | "{peer}" | "{hash}" | "{name}" => {
                let (value, tail) = rest.split_once('/').map_or((rest, None), |(v, t)| (v, Some(t)));
                if value.is_empty() || (segment == "{keyType}" && !KEY_TYPES.contains(&value)) {
                    return None;
                }
                vars.push(value);
                rest = match (tail, segments.peek()) {
                    (Some(t), Some(_)) => t,
                    (None, None) => "",
                    _ => return None,
                };
            }
            literal => {
                let tail = rest.strip_prefix(literal)?;
                rest = match (tail.strip_prefix('/'), segments.peek()) {
                    (Some(t), Some(_)) => t,
                    (None, None) if tail.is_empty() => "",
                    _ => return None,
                };
            }
        }
    }
    (rest.is_empty() && segments.next().is_none()).then_some(vars)
}

/// The route pattern a request matched (e.g. `/pins/{hash}`), `other` when none: a label for
/// metrics that never holds a CID or a peer id.
pub(crate) fn pattern(method: &Method, path: &str) -> &'static str {
    TABLE
        .iter()
        .find(|(route_method, pattern)| route_method == method && match_pattern(pattern, path).is_some())
        .map_or("other", |(_, pattern)| pattern)
}

/// Finds the route for a method and decoded, clean path.
pub(crate) fn route<'a>(method: &Method, path: &'a str) -> Result<Route<'a>, NoRoute> {
    let mut path_matched = false;
    for (index, (route_method, pattern)) in TABLE.iter().enumerate() {
        let Some(vars) = match_pattern(pattern, path) else { continue };
        if route_method != method {
            path_matched = true;
            continue;
        }
        let var = |i: usize| vars.get(i).copied().unwrap_or("");
        return Ok(match index {
            0 => Route::Id,
            1 => Route::Version,
            2 => Route::Peers,
            3 => Route::PeerAdd,
            4 => Route::PeerRemove(var(0)),
            5 => Route::Add,
            6 => Route::Allocations,
            7 => Route::Allocation(var(0)),
            8 => Route::StatusAll,
            9 => Route::Recover(var(0)),
            10 => Route::RecoverAll,
            11 => Route::Status(var(0)),
            12 => Route::Pin(var(0)),
            13 => Route::PinPath(var(0), var(1)),
            14 => Route::Unpin(var(0)),
            15 => Route::UnpinPath(var(0), var(1)),
            16 => Route::RepoGc,
            17 => Route::Graph,
            18 => Route::Alerts,
            19 => Route::Bandwidth,
            20 => Route::Metrics(var(0)),
            21 => Route::MetricNames,
            22 => Route::Token,
            _ => Route::Health,
        });
    }
    Err(if path_matched { NoRoute::MethodNotAllowed } else { NoRoute::NotFound })
}

/// Go's `path.Clean` for an absolute path: no empty, `.` or `..` segments.
pub(crate) fn clean_path(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: &str = "QmXoypizjW3WknFiJnKLwHCnL72vedxjQkDDP1mXWo6uco";

    #[test]
    fn routes_resolve_in_cluster_order() {
        let get = Method::GET;
        let post = Method::POST;
        let delete = Method::DELETE;
        assert_eq!(route(&get, "/id"), Ok(Route::Id));
        assert_eq!(route(&post, "/pins/recover"), Ok(Route::RecoverAll));
        assert_eq!(route(&get, "/pins/recover"), Ok(Route::Status("recover")));
        assert_eq!(route(&post, &format!("/pins/{CID}")), Ok(Route::Pin(CID)));
        assert_eq!(route(&post, &format!("/pins/{CID}/recover")), Ok(Route::Recover(CID)));
        assert_eq!(route(&post, &format!("/pins/ipfs/{CID}/a/b")), Ok(Route::PinPath("ipfs", &format!("{CID}/a/b"))));
        assert_eq!(route(&delete, "/pins/ipns/example.com"), Ok(Route::UnpinPath("ipns", "example.com")));
        // A single segment after /pins is always {hash}, even `ipfs`.
        assert_eq!(route(&post, "/pins/ipfs"), Ok(Route::Pin("ipfs")));
        // `/pins/{hash}/recover` is registered before the path route and wins for POST.
        assert_eq!(route(&post, "/pins/ipfs/recover"), Ok(Route::Recover("ipfs")));
        assert_eq!(route(&get, "/monitor/metrics/freespace"), Ok(Route::Metrics("freespace")));
        assert_eq!(route(&get, "/monitor/metrics"), Ok(Route::MetricNames));
        assert_eq!(route(&delete, "/peers/12D3KooW"), Ok(Route::PeerRemove("12D3KooW")));
        assert_eq!(route(&get, "/health"), Ok(Route::Health));
        assert_eq!(route(&Method::HEAD, "/health"), Ok(Route::Health));
        assert_eq!(pattern(&Method::HEAD, "/health"), "/health");
    }

    #[test]
    fn unknown_paths_and_wrong_methods() {
        assert_eq!(route(&Method::GET, "/nope"), Err(NoRoute::NotFound));
        assert_eq!(route(&Method::GET, "/pins/a/b"), Err(NoRoute::NotFound));
        assert_eq!(route(&Method::DELETE, "/id"), Err(NoRoute::MethodNotAllowed));
        assert_eq!(route(&Method::HEAD, "/id"), Err(NoRoute::MethodNotAllowed));
        assert_eq!(route(&Method::OPTIONS, "/pins"), Err(NoRoute::MethodNotAllowed));
        assert_eq!(route(&Method::GET, &format!("/pins/ipfs/{CID}")), Err(NoRoute::MethodNotAllowed));
        assert_eq!(route(&Method::GET, "/"), Err(NoRoute::NotFound));
        assert_eq!(route(&Method::GET, "/idx"), Err(NoRoute::NotFound));
        assert_eq!(route(&Method::GET, "/id/x"), Err(NoRoute::NotFound));
    }

    #[test]
    fn paths_clean_like_go() {
        assert_eq!(clean_path("//pins"), "/pins");
        assert_eq!(clean_path("/pins/./x/../y"), "/pins/y");
        assert_eq!(clean_path("/../id"), "/id");
    }
}

//! Query strings and URL parameters as IPFS Cluster reads them: Go's `url.ParseQuery`,
//! `PinOptions.FromQuery` (reference §1.5), `AddParamsFromQuery` (§1.6), peer ids, CIDs and
//! IPFS paths, with IPFS Cluster's error messages.

use std::collections::BTreeMap;
use std::str::FromStr;

use cairn_state::{Cid, PinMode, PinOptions, Timestamp};

use crate::cluster::{AddFormat, AddLayout, AddParams};
use crate::error::ApiError;

/// Default shard size of an add (IPFS Cluster's `DefaultShardSize`, 100 MiB).
pub const DEFAULT_SHARD_SIZE: u64 = 100 * 1024 * 1024;

/// A parsed query string: pairs in order, as Go's `url.Values` keeps them per key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses like Go's `r.URL.Query()`: pairs split on `&`, `+` is a space, `%XX` escapes are
    /// decoded; a pair with `;` or a bad escape is dropped (Go reports it and `Query()` ignores
    /// the error).
    pub fn parse(raw: &str) -> Self {
        let mut pairs = Vec::new();
        for part in raw.split('&') {
            if part.is_empty() || part.contains(';') {
                continue;
            }
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            if let (Some(k), Some(v)) = (unescape(k), unescape(v)) {
                pairs.push((k, v));
            }
        }
        Self { pairs }
    }

    /// The first value of `key`, or `""` (Go's `Values.Get`).
    pub fn get(&self, key: &str) -> &str {
        self.pairs.iter().find(|(k, _)| k == key).map_or("", |(_, v)| v.as_str())
    }

    /// Whether `key` is present.
    pub fn has(&self, key: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == key)
    }

    /// Every key/value pair, in order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// `key=true` exactly, which is how IPFS Cluster reads `local`.
    pub fn is_true(&self, key: &str) -> bool {
        self.get(key) == "true"
    }
}

/// Go's `url.QueryUnescape`; `None` for a malformed escape or non-UTF-8 result.
fn unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = hex_value(*bytes.get(i + 1)?)?;
                let lo = hex_value(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes a URL path (no `+` rule); `None` for a malformed escape or non-UTF-8 result.
pub fn decode_path(raw: &str) -> Option<String> {
    if !raw.contains('%') {
        return Some(raw.to_owned());
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = hex_value(*bytes.get(i + 1)?)?;
            let lo = hex_value(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `time.ParseDuration`, in nanoseconds, with Go's error texts (overflow included).
pub fn parse_go_duration(input: &str) -> Result<i64, String> {
    cairn_go_duration::parse(input).map_err(|e| e.to_string())
}

/// Decodes a peer id in either form Go's `peer.Decode` accepts (base58 multihash, or a CIDv1 with
/// the `libp2p-key` codec) into its base58 form.
pub fn parse_peer_id(s: &str) -> Option<String> {
    if let Ok(id) = libp2p_identity::PeerId::from_str(s) {
        return Some(id.to_base58());
    }
    const LIBP2P_KEY: u64 = 0x72;
    let cid = cid::Cid::try_from(s).ok()?;
    if cid.codec() != LIBP2P_KEY {
        return None;
    }
    libp2p_identity::PeerId::from_multihash(*cid.hash()).ok().map(|id| id.to_base58())
}

/// Parses a CID from a URL parameter, with IPFS Cluster's 400 message.
pub fn parse_cid(s: &str) -> Result<Cid, ApiError> {
    Cid::parse(s).map_err(|e| ApiError::bad_request(format!("error decoding Cid: {}", e.source)))
}

fn parse_int(q: &Query, name: &str, dest: &mut i32) -> Result<(), ApiError> {
    let v = q.get(name);
    if !v.is_empty() {
        *dest = v.parse().map_err(|_| ApiError::bad_request(format!("parameter {name} invalid")))?;
    }
    Ok(())
}

fn parse_bool(q: &Query, name: &str, dest: &mut bool) -> Result<(), ApiError> {
    let v = q.get(name);
    if !v.is_empty() {
        *dest = parse_go_bool(v).ok_or_else(|| ApiError::bad_request(format!("parameter {name} invalid")))?;
    }
    Ok(())
}

/// IPFS Cluster's `PinOptions.FromQuery`, with its validation and messages. Peer ids in
/// `user-allocations` that do not decode are dropped, as IPFS Cluster does; every origin must be
/// a multiaddr with `/p2p/<id>`.
pub fn pin_options_from_query(q: &Query) -> Result<PinOptions, ApiError> {
    let mut opts = PinOptions {
        name: q.get("name").to_owned(),
        mode: PinMode::from_str_lenient(q.get("mode")),
        ..PinOptions::default()
    };

    // `replication` overrides both bounds.
    let replication = q.get("replication");
    if replication.is_empty() {
        parse_int(q, "replication-min", &mut opts.replication_factor_min)?;
        parse_int(q, "replication-max", &mut opts.replication_factor_max)?;
    } else {
        let v: i32 = replication.parse().map_err(|_| ApiError::bad_request("parameter replication-min invalid"))?;
        opts.replication_factor_min = v;
        opts.replication_factor_max = v;
    }

    let shard_size = q.get("shard-size");
    if !shard_size.is_empty() {
        // Go's ParseUint takes no sign; Rust's would accept `+`.
        if shard_size.starts_with('+') {
            return Err(ApiError::bad_request("parameter shard_size is invalid"));
        }
        opts.shard_size = shard_size.parse().map_err(|_| ApiError::bad_request("parameter shard_size is invalid"))?;
    }

    let allocations = q.get("user-allocations");
    if !allocations.is_empty() {
        opts.user_allocations = allocations.split(',').filter_map(parse_peer_id).collect();
    }

    let expire_at = q.get("expire-at");
    let expire_in = q.get("expire-in");
    if !expire_at.is_empty() {
        opts.expire_at = Timestamp::parse(expire_at)
            .map_err(|e| ApiError::bad_request(format!("expire-at cannot be parsed: {e}")))?;
    } else if !expire_in.is_empty() {
        let nanos = parse_go_duration(expire_in)
            .map_err(|e| ApiError::bad_request(format!("expire-in cannot be parsed: {e}")))?;
        if nanos < 1_000_000_000 {
            return Err(ApiError::bad_request("expire-in duration too short"));
        }
        let delta = std::time::Duration::from_nanos(nanos.unsigned_abs());
        opts.expire_at = Timestamp::now()
            .checked_add(delta)
            .ok_or_else(|| ApiError::bad_request(format!("expire-in: {expire_in} is out of range")))?;
    }

    let mut metadata = BTreeMap::new();
    for (k, _) in q.pairs() {
        if let Some(key) = k.strip_prefix("meta-")
            && !key.is_empty()
            && !metadata.contains_key(key)
        {
            metadata.insert(key.to_owned(), q.get(k).to_owned());
        }
    }
    opts.metadata = metadata;

    let update = q.get("pin-update");
    if !update.is_empty() {
        let cid = Cid::parse(update)
            .map_err(|e| ApiError::bad_request(format!("error decoding update option parameter: {}", e.source)))?;
        opts.pin_update = Some(cid);
    }

    let origins = q.get("origins");
    if !origins.is_empty() {
        let mut list = Vec::new();
        for origin in origins.split(',') {
            let addr = multiaddr::Multiaddr::from_str(origin)
                .map_err(|e| ApiError::bad_request(format!("error decoding multiaddress: {e}")))?;
            if !addr.iter().any(|p| matches!(p, multiaddr::Protocol::P2p(_))) {
                return Err(ApiError::bad_request(
                    "multiaddress does not contain peer ID: protocol not found in multiaddr",
                ));
            }
            list.push(addr.to_string());
        }
        opts.origins = list;
    }
    Ok(opts)
}

/// IPFS Cluster's `AddParamsFromQuery` (reference §1.6): the pin options plus the adder's
/// parameters, with the same defaults and 400 messages. `pin-update` is ignored for adds.
pub fn add_params_from_query(q: &Query) -> Result<AddParams, ApiError> {
    let mut options = pin_options_from_query(q)?;
    options.pin_update = None;
    if !q.has("shard-size") || q.get("shard-size").is_empty() {
        options.shard_size = DEFAULT_SHARD_SIZE;
    }
    let mut params = AddParams { options, ..AddParams::default() };

    params.layout = match q.get("layout") {
        "" | "balanced" => AddLayout::Balanced,
        "trickle" => AddLayout::Trickle,
        _ => return Err(ApiError::bad_request("layout parameter is invalid")),
    };
    let chunker = q.get("chunker");
    if !chunker.is_empty() {
        params.chunker = chunker.to_owned();
    }
    let hash = q.get("hash");
    if !hash.is_empty() {
        params.hash_fun = hash.to_owned();
    }
    params.format = match q.get("format") {
        "" | "unixfs" => AddFormat::Unixfs,
        "car" => AddFormat::Car,
        _ => return Err(ApiError::bad_request("format parameter is invalid")),
    };
    parse_bool(q, "local", &mut params.local)?;
    parse_bool(q, "recursive", &mut params.recursive)?;
    parse_bool(q, "hidden", &mut params.hidden)?;
    parse_bool(q, "wrap-with-directory", &mut params.wrap_with_directory)?;
    parse_bool(q, "shard", &mut params.shard)?;
    parse_bool(q, "progress", &mut params.progress)?;
    parse_int(q, "cid-version", &mut params.cid_version)?;
    // As kubo: CIDv1 switches raw leaves on unless the request says otherwise.
    if params.cid_version > 0 {
        params.raw_leaves = true;
    }
    parse_bool(q, "raw-leaves", &mut params.raw_leaves)?;
    parse_bool(q, "stream-channels", &mut params.stream_channels)?;
    parse_bool(q, "nocopy", &mut params.nocopy)?;
    parse_bool(q, "no-pin", &mut params.no_pin)?;
    Ok(params)
}

/// Builds and checks the IPFS path of `POST|DELETE /pins/{ipfs|ipns|ipld}/{path}` (boxo's
/// `path.NewPath`): `/ipfs/<cid>/...` and `/ipld/<cid>/...` need a CID root, `/ipns/<name>/...`
/// any non-empty name. The result is the path as given, without a trailing slash.
pub fn parse_ipfs_path(key_type: &str, rest: &str) -> Result<String, ApiError> {
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let path = format!("/{key_type}/{rest}");
    let fail = |why: String| ApiError::bad_request(format!("error parsing path: invalid path {path:?}: {why}"));
    let root = rest.split('/').next().unwrap_or("");
    if root.is_empty() {
        return Err(fail("path does not have enough components".to_owned()));
    }
    if key_type != "ipns" {
        Cid::parse(root).map_err(|e| fail(format!("invalid cid: {}", e.source)))?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V0: &str = "QmXoypizjW3WknFiJnKLwHCnL72vedxjQkDDP1mXWo6uco";
    const PEER: &str = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";

    fn opts(q: &str) -> Result<PinOptions, String> {
        pin_options_from_query(&Query::parse(q)).map_err(|e| e.message().to_owned())
    }

    #[test]
    fn query_parsing_is_go_like() {
        let q = Query::parse("a=1&a=2&b=x+y%21&c&bad=%zz&semi=1;2&=e");
        assert_eq!(q.get("a"), "1");
        assert_eq!(q.get("b"), "x y!");
        assert!(q.has("c") && q.get("c").is_empty());
        assert!(!q.has("bad") && !q.has("semi"));
        assert_eq!(q.get(""), "e");
        assert!(Query::parse("local=true").is_true("local"));
        assert!(!Query::parse("local=1").is_true("local"));
        assert_eq!(decode_path("/pins/ipfs/a%20b").as_deref(), Some("/pins/ipfs/a b"));
        assert_eq!(decode_path("/x%zz"), None);
    }

    #[test]
    fn pin_options_parse_like_cluster() {
        let o = opts(&format!(
            "name=n&mode=direct&replication-min=2&replication-max=3&shard-size=10&user-allocations={PEER},junk&meta-a=1&meta-=x&pin-update={V0}&origins=/ip4/1.2.3.4/tcp/4001/p2p/{PEER}"
        ))
        .expect("valid");
        assert_eq!(o.name, "n");
        assert_eq!(o.mode, PinMode::Direct);
        assert_eq!((o.replication_factor_min, o.replication_factor_max), (2, 3));
        assert_eq!(o.shard_size, 10);
        assert_eq!(o.user_allocations, [PEER]);
        assert_eq!(o.metadata, BTreeMap::from([("a".to_owned(), "1".to_owned())]));
        assert_eq!(o.pin_update.as_ref().map(Cid::as_str), Some(V0));
        assert_eq!(o.origins.len(), 1);

        let o = opts("replication=-1&replication-min=5&mode=weird").expect("valid");
        assert_eq!((o.replication_factor_min, o.replication_factor_max), (-1, -1));
        assert_eq!(o.mode, PinMode::Recursive);

        assert_eq!(opts("replication-min=x").unwrap_err(), "parameter replication-min invalid");
        assert_eq!(opts("replication-max=1.5").unwrap_err(), "parameter replication-max invalid");
        assert_eq!(opts("shard-size=-1").unwrap_err(), "parameter shard_size is invalid");
        assert!(opts("expire-at=tomorrow").unwrap_err().starts_with("expire-at cannot be parsed"));
        assert_eq!(opts("expire-in=500ms").unwrap_err(), "expire-in duration too short");
        assert!(opts("expire-in=1x").unwrap_err().contains("unknown unit"));
        assert!(opts("pin-update=nope").unwrap_err().starts_with("error decoding update option parameter"));
        assert!(opts("origins=/ip4/1.2.3.4/tcp/1").unwrap_err().starts_with("multiaddress does not contain peer ID"));
        assert!(opts("origins=garbage").unwrap_err().starts_with("error decoding multiaddress"));

        let o = opts("expire-in=1h").expect("valid");
        let left = o.expire_at.0 - Timestamp::now().0;
        assert!(left > time_secs(3590) && left <= time_secs(3600));
        let o = opts("expire-at=2030-01-02T03:04:05Z").expect("valid");
        assert_eq!(o.expire_at, Timestamp::parse("2030-01-02T03:04:05Z").expect("time"));
    }

    fn time_secs(s: i64) -> std::time::Duration {
        std::time::Duration::from_secs(s as u64)
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_go_duration("-2ms"), Ok(-2_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("300µs"), Ok(300_000));
        assert!(parse_go_duration("").is_err());
        assert_eq!(parse_go_duration("10"), Err(r#"time: missing unit in duration "10""#.to_owned()));
        assert!(parse_go_duration("99999999999h").is_err());
        assert_eq!(parse_go_bool("T"), Some(true));
        assert_eq!(parse_go_bool("yes"), None);
    }

    #[test]
    fn an_expire_in_out_of_range_is_refused_not_wrapped() {
        // Issue #14: this wrapped to a small expiry and the pin was accepted (200).
        let input = "94522879700260684295381835.9h";
        assert_eq!(
            opts(&format!("expire-in={input}")).unwrap_err(),
            format!("expire-in cannot be parsed: time: invalid duration \"{input}\"")
        );
        for input in ["9223372036854775808ns", "2562047h48m", "9223372036854775807ns1ns"] {
            assert!(opts(&format!("expire-in={input}")).unwrap_err().contains("invalid duration"), "{input}");
        }
        // The largest duration Go has still makes a valid expiry (292 years from now).
        let o = opts("expire-in=9223372036854775807ns").expect("the largest duration");
        assert!(o.expire_at.0 > Timestamp::now().0 + time_secs(292 * 365 * 24 * 3600));
    }

    #[test]
    fn peer_ids_in_both_forms() {
        assert_eq!(parse_peer_id(PEER).as_deref(), Some(PEER));
        assert!(parse_peer_id("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N").is_some());
        assert_eq!(parse_peer_id("not-a-peer"), None);
        // The CIDv1 (libp2p-key) form of the same id.
        let id = libp2p_identity::PeerId::from_str(PEER).expect("peer");
        let cid = cid::Cid::new_v1(0x72, *id.as_ref());
        assert_eq!(parse_peer_id(&cid.to_string()).as_deref(), Some(PEER));
        // A CID with another codec is not a peer id.
        assert_eq!(parse_peer_id("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"), None);
    }

    #[test]
    fn add_params_defaults_and_errors() {
        let p = add_params_from_query(&Query::parse("")).expect("defaults");
        assert_eq!(p.options.shard_size, DEFAULT_SHARD_SIZE);
        assert!(p.stream_channels && !p.raw_leaves && !p.local);
        assert_eq!(p.chunker, "size-262144");
        assert_eq!(p.hash_fun, "sha2-256");
        assert_eq!(p.format, AddFormat::Unixfs);

        let p = add_params_from_query(&Query::parse(&format!(
            "cid-version=1&stream-channels=false&format=car&layout=trickle&pin-update={V0}"
        )))
        .expect("valid");
        assert!(p.raw_leaves && !p.stream_channels);
        assert_eq!((p.format, p.layout), (AddFormat::Car, AddLayout::Trickle));
        assert_eq!(p.options.pin_update, None);
        let p = add_params_from_query(&Query::parse("cid-version=1&raw-leaves=false")).expect("valid");
        assert!(!p.raw_leaves);

        let err = |q: &str| add_params_from_query(&Query::parse(q)).expect_err(q).message().to_owned();
        assert_eq!(err("layout=weird"), "layout parameter is invalid");
        assert_eq!(err("format=zip"), "format parameter is invalid");
        assert_eq!(err("local=maybe"), "parameter local invalid");
        assert_eq!(err("cid-version=x"), "parameter cid-version invalid");
    }

    #[test]
    fn ipfs_paths() {
        assert_eq!(parse_ipfs_path("ipfs", &format!("{V0}/a/b/")).as_deref(), Ok(&*format!("/ipfs/{V0}/a/b")));
        assert_eq!(parse_ipfs_path("ipns", "example.com").as_deref(), Ok("/ipns/example.com"));
        let e = parse_ipfs_path("ipfs", "nope").expect_err("bad cid");
        assert!(e.message().starts_with("error parsing path: invalid path \"/ipfs/nope\": invalid cid"), "{e}");
        assert!(parse_ipfs_path("ipns", "").is_err());
    }
}

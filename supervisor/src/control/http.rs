//! The control socket's one protocol: a small, strict HTTP/1.1 subset (the REST/JSON API,
//! docs/api.md and docs/openapi.json).
//!
//! Hand-written because no HTTP parser is on the project's verified crate list
//! (TOOLCHAIN.md) and the subset is small: one request per connection (`Connection: close`),
//! a body only with `Content-Length` (no chunked encoding), at most [`MAX_HEAD`] bytes of
//! request line and headers and [`MAX_BODY`] of body. Everything else is refused with a
//! status code, never guessed at.
//!
//! Both sides of the route table live here: [`route`] turns a parsed request into a
//! [`ControlRequest`] for the daemon, [`target`] turns a `ControlRequest` into the request
//! the CLI sends, and a unit test checks that one undoes the other for every request, so the
//! CLI cannot use a call the API does not have.
//!
//! Answers are JSON (the structs `palisade ... --json` prints) unless the client asks for
//! [`BINCODE_MEDIA_TYPE`] (the CLI does): then the body is the versioned bincode
//! `ControlResponse` the CLI decodes with a byte limit.

use std::fmt::Write as _;

use palisade_ipc::{
    PROTOCOL_VERSION,
    messages::{
        BlockAddRequest, ControlErrorKind, ControlRequest, ControlResponse, FlowOrder,
        LogLevelChange, RestartTarget, TlsRuleKind, TlsRuleSpec, TraceFilter, WorkerKind,
    },
};
use serde::Serialize;

/// Request line and headers, at most.
pub const MAX_HEAD: usize = 8 * 1024;
/// Request body, at most (a block rule or a TLS rule is a few hundred bytes).
pub const MAX_BODY: usize = 16 * 1024;
/// Header lines, at most.
const MAX_HEADERS: usize = 64;

/// The media type of the bincode answers, carrying the protocol version: a CLI of another
/// version gets 406 and says so (exit 5), as the bincode handshake did.
pub fn bincode_media_type() -> String {
    format!("application/vnd.palisade.v{PROTOCOL_VERSION}+bincode")
}
/// Prefix of [`bincode_media_type`] for every version.
pub const BINCODE_MEDIA_TYPE: &str = "application/vnd.palisade.v";
/// Response header naming the daemon's protocol version.
pub const VERSION_HEADER: &str = "Palisade-Protocol";

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path segments, percent-decoded (`/v1/block/10.0.0.0%2F8` -> `["v1", "block",
    /// "10.0.0.0/8"]`; `/v1/block/10.0.0.0/8` -> `["v1", "block", "10.0.0.0", "8"]`).
    pub path: Vec<String>,
    /// Query parameters, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    /// `Accept`, if given.
    pub accept: Option<String>,
    /// `Authorization`, if given (the bearer token of the API over TCP).
    pub authorization: Option<String>,
    /// The body (empty without `Content-Length`).
    pub body: Vec<u8>,
}

/// An error answer: status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// HTTP status code.
    pub status: u16,
    /// What was wrong, for the client.
    pub message: String,
    /// For 405: the methods the path takes.
    pub allow: Option<&'static str>,
}

impl HttpError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            allow: None,
        }
    }

    /// 400.
    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }
}

/// What [`parse`] made of the bytes received so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parse {
    /// More bytes are needed.
    Incomplete,
    /// A whole request.
    Complete(Request),
}

/// Parses `buf`, the bytes a client sent so far. Refuses as soon as the bytes can no longer
/// become an acceptable request (too long, malformed), so a hostile client is answered early.
pub fn parse(buf: &[u8]) -> Result<Parse, HttpError> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err(HttpError::new(
                413,
                format!("request line and headers exceed {MAX_HEAD} bytes"),
            ));
        }
        return Ok(Parse::Incomplete);
    };
    if head_end + 4 > MAX_HEAD {
        return Err(HttpError::new(
            413,
            format!("request line and headers exceed {MAX_HEAD} bytes"),
        ));
    }
    let head = std::str::from_utf8(buf.get(..head_end).unwrap_or_default())
        .map_err(|_| HttpError::bad("request head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::bad("malformed request line"));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(HttpError::bad("malformed method"));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(HttpError::new(505, "only HTTP/1.1 and HTTP/1.0 are served"));
    }
    let mut content_length: Option<usize> = None;
    let mut accept = None;
    let mut authorization = None;
    for (n, line) in lines.enumerate() {
        if n >= MAX_HEADERS {
            return Err(HttpError::new(
                413,
                format!("more than {MAX_HEADERS} header lines"),
            ));
        }
        if line.starts_with([' ', '\t']) {
            return Err(HttpError::bad("folded header lines are not accepted"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(HttpError::bad("header line without a colon"));
        };
        if name.is_empty() || name.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(HttpError::bad("malformed header name"));
        }
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("content-length") {
            if content_length.is_some() {
                return Err(HttpError::bad("more than one Content-Length"));
            }
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HttpError::bad("malformed Content-Length"));
            }
            // Too many digits to parse is too large anyway.
            let len = value.parse::<usize>().unwrap_or(usize::MAX);
            if len > MAX_BODY {
                return Err(HttpError::new(
                    413,
                    format!("the body exceeds {MAX_BODY} bytes"),
                ));
            }
            content_length = Some(len);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HttpError::new(
                501,
                "Transfer-Encoding is not supported: send Content-Length",
            ));
        } else if name.eq_ignore_ascii_case("accept") {
            accept = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("authorization") {
            authorization = Some(value.to_owned());
        }
    }
    let body_start = head_end + 4;
    let len = content_length.unwrap_or(0);
    let Some(body) = buf.get(body_start..body_start + len) else {
        return Ok(Parse::Incomplete);
    };
    if buf.len() > body_start + len {
        return Err(HttpError::bad(
            "bytes after the request (one request per connection)",
        ));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    if !path.starts_with('/') {
        return Err(HttpError::bad("the request target must be a path"));
    }
    let path = path
        .split('/')
        .skip(1)
        .map(decode)
        .collect::<Result<Vec<_>, _>>()?;
    let mut params = Vec::new();
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        params.push((decode(&k.replace('+', " "))?, decode(&v.replace('+', " "))?));
    }
    Ok(Parse::Complete(Request {
        method: method.to_owned(),
        path,
        query: params,
        accept,
        authorization,
        body: body.to_vec(),
    }))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Percent-decodes one path segment or query component (UTF-8 required).
fn decode(s: &str) -> Result<String, HttpError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| HttpError::bad("malformed percent-encoding"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| HttpError::bad("percent-encoding is not UTF-8"))
}

/// Percent-encodes `s` for a path segment or a query value (unreserved characters kept).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routed {
    /// A control request (the same the daemon answers over every path).
    Control(ControlRequest),
    /// `GET /metrics`: the status in Prometheus text format.
    Metrics,
}

/// Query parameters a route takes, each at most once; anything else is a 400.
struct Query<'a> {
    params: &'a [(String, String)],
}

impl<'a> Query<'a> {
    fn new(params: &'a [(String, String)], allowed: &[&str]) -> Result<Self, HttpError> {
        for (i, (k, _)) in params.iter().enumerate() {
            if !allowed.contains(&k.as_str()) {
                return Err(HttpError::bad(format!(
                    "unknown query parameter {k:?} (this route takes: {})",
                    if allowed.is_empty() {
                        "none".to_owned()
                    } else {
                        allowed.join(", ")
                    }
                )));
            }
            if params.iter().skip(i + 1).any(|(k2, _)| k2 == k) {
                return Err(HttpError::bad(format!("query parameter {k:?} given twice")));
            }
        }
        Ok(Self { params })
    }

    fn get(&self, key: &str) -> Option<&'a str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// An integer in `1..=max`, or `default` when absent.
    fn limit(&self, key: &str, default: u32, max: u32) -> Result<u32, HttpError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(HttpError::bad(format!(
                    "{key} must be an integer from 1 to {max}"
                ))),
            },
        }
    }
}

/// Defaults of the query parameters, the CLI's too.
pub mod defaults {
    /// `flows top`.
    pub const FLOWS_TOP: u32 = 20;
    /// `flows show`.
    pub const FLOWS_SHOW: u32 = 50;
    /// `block list`.
    pub const BLOCK_LIST: u32 = 50;
    /// `tls rules list`.
    pub const TLS_LIST: u32 = 100;
    /// `guard`.
    pub const GUARD: u32 = 50;
}

/// Every documented path pattern and its methods (the OpenAPI description lists the same;
/// a test checks it against the running daemon). `{x}` is one segment, `{x*}` the rest.
pub const ROUTES: &[(&str, &str)] = &[
    ("/v1/status", "GET"),
    ("/v1/version", "GET"),
    ("/v1/restart/{target}", "POST"),
    ("/v1/reload", "POST"),
    ("/v1/check", "POST"),
    ("/v1/reopen-logs", "POST"),
    ("/v1/dns/test", "GET"),
    ("/v1/dns/blocked-hits", "GET"),
    ("/v1/flows/top", "GET"),
    ("/v1/flows", "GET"),
    ("/v1/block", "GET, POST"),
    ("/v1/block/{cidr*}", "DELETE"),
    ("/v1/tls/rules", "GET, POST"),
    ("/v1/tls/rules/{kind}/{value*}", "DELETE"),
    ("/v1/devices", "GET"),
    ("/v1/guard", "GET"),
    ("/v1/log-level", "POST"),
    ("/v1/features", "GET"),
    ("/v1/features/{name}/{enable|disable}", "POST"),
    ("/v1/trace", "GET, POST, DELETE"),
    ("/metrics", "GET"),
];

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, HttpError> {
    if body.is_empty() {
        return Err(HttpError::bad("this route needs a JSON body"));
    }
    serde_json::from_slice(body).map_err(|e| HttpError::bad(format!("JSON body: {e}")))
}

fn no_body(req: &Request) -> Result<(), HttpError> {
    if req.body.is_empty() {
        Ok(())
    } else {
        Err(HttpError::bad("this route takes no body"))
    }
}

/// What `req` asks for, or why it cannot be served.
pub fn route(req: &Request) -> Result<Routed, HttpError> {
    let segs: Vec<&str> = req.path.iter().map(String::as_str).collect();
    let m = req.method.as_str();
    let none = |r: ControlRequest| -> Result<Routed, HttpError> {
        Query::new(&req.query, &[])?;
        no_body(req)?;
        Ok(Routed::Control(r))
    };
    let (allow, result): (&'static str, Option<Result<Routed, HttpError>>) = match segs[..] {
        ["metrics"] => (
            "GET",
            (m == "GET").then(|| {
                Query::new(&req.query, &[])?;
                no_body(req)?;
                Ok(Routed::Metrics)
            }),
        ),
        ["v1", "status"] => ("GET", (m == "GET").then(|| none(ControlRequest::Status))),
        ["v1", "version"] => ("GET", (m == "GET").then(|| none(ControlRequest::Version))),
        ["v1", "reload"] => ("POST", (m == "POST").then(|| none(ControlRequest::Reload))),
        ["v1", "check"] => ("POST", (m == "POST").then(|| none(ControlRequest::Check))),
        ["v1", "reopen-logs"] => (
            "POST",
            (m == "POST").then(|| none(ControlRequest::ReopenLogs)),
        ),
        ["v1", "restart", target] => (
            "POST",
            (m == "POST").then(|| {
                let target = match target {
                    "all" => RestartTarget::All,
                    name => RestartTarget::One(WorkerKind::from_name(name).ok_or_else(|| {
                        HttpError::new(
                            404,
                            format!("no worker {name:?} (dhcp, dns, tls, flow, all)"),
                        )
                    })?),
                };
                none(ControlRequest::Restart(target))
            }),
        ),
        ["v1", "dns", "test"] => (
            "GET",
            (m == "GET").then(|| {
                let q = Query::new(&req.query, &["name"])?;
                no_body(req)?;
                let name = q
                    .get("name")
                    .ok_or_else(|| HttpError::bad("name is required"))?;
                Ok(Routed::Control(ControlRequest::DnsTest(name.to_owned())))
            }),
        ),
        ["v1", "dns", "blocked-hits"] => (
            "GET",
            (m == "GET").then(|| none(ControlRequest::DnsBlockedHits)),
        ),
        ["v1", "flows", "top"] => (
            "GET",
            (m == "GET").then(|| {
                let q = Query::new(&req.query, &["by", "limit"])?;
                no_body(req)?;
                let by = match q.get("by") {
                    None | Some("bytes") => FlowOrder::Bytes,
                    Some("packets") => FlowOrder::Packets,
                    Some(_) => return Err(HttpError::bad("by must be bytes or packets")),
                };
                let limit = q.limit(
                    "limit",
                    defaults::FLOWS_TOP,
                    palisade_ipc::messages::FLOW_ROWS_MAX,
                )?;
                Ok(Routed::Control(ControlRequest::FlowsTop { by, limit }))
            }),
        ),
        ["v1", "flows"] => (
            "GET",
            (m == "GET").then(|| {
                let q = Query::new(&req.query, &["host", "limit"])?;
                no_body(req)?;
                let host = q
                    .get("host")
                    .ok_or_else(|| HttpError::bad("host is required"))?;
                if host.parse::<std::net::IpAddr>().is_err() {
                    return Err(HttpError::bad("host must be an IPv4 or IPv6 address"));
                }
                let limit = q.limit(
                    "limit",
                    defaults::FLOWS_SHOW,
                    palisade_ipc::messages::FLOW_ROWS_MAX,
                )?;
                Ok(Routed::Control(ControlRequest::FlowsShow {
                    host: host.to_owned(),
                    limit,
                }))
            }),
        ),
        ["v1", "block"] => (
            "GET, POST",
            match m {
                "GET" => Some((|| {
                    let q = Query::new(&req.query, &["limit"])?;
                    no_body(req)?;
                    let limit = q.limit("limit", defaults::BLOCK_LIST, u32::MAX)?;
                    Ok(Routed::Control(ControlRequest::BlockList { limit }))
                })()),
                "POST" => Some((|| {
                    Query::new(&req.query, &[])?;
                    let add: BlockAddRequest = json_body(&req.body)?;
                    Ok(Routed::Control(ControlRequest::BlockAdd(add)))
                })()),
                _ => None,
            },
        ),
        ["v1", "block", ref rest @ ..] if !rest.is_empty() => (
            "DELETE",
            (m == "DELETE").then(|| none(ControlRequest::BlockRemove(rest.join("/")))),
        ),
        ["v1", "tls", "rules"] => (
            "GET, POST",
            match m {
                "GET" => Some((|| {
                    let q = Query::new(&req.query, &["limit"])?;
                    no_body(req)?;
                    let limit = q.limit("limit", defaults::TLS_LIST, u32::MAX)?;
                    Ok(Routed::Control(ControlRequest::TlsRuleList { limit }))
                })()),
                "POST" => Some((|| {
                    Query::new(&req.query, &[])?;
                    let spec: TlsRuleSpec = json_body(&req.body)?;
                    Ok(Routed::Control(ControlRequest::TlsRuleAdd(spec)))
                })()),
                _ => None,
            },
        ),
        ["v1", "tls", "rules", kind, ref rest @ ..] if !rest.is_empty() => (
            "DELETE",
            (m == "DELETE").then(|| {
                let kind = TlsRuleKind::from_name(kind)
                    .ok_or_else(|| HttpError::new(404, format!("no TLS rule kind {kind:?}")))?;
                none(ControlRequest::TlsRuleRemove(TlsRuleSpec {
                    kind,
                    value: rest.join("/"),
                    block: false,
                    comment: None,
                }))
            }),
        ),
        ["v1", "devices"] => (
            "GET",
            (m == "GET").then(|| {
                let q = Query::new(&req.query, &["offset"])?;
                no_body(req)?;
                let offset = match q.get("offset") {
                    None => 0,
                    Some(v) => v
                        .parse::<u64>()
                        .map_err(|_| HttpError::bad("offset must be a non-negative integer"))?,
                };
                Ok(Routed::Control(ControlRequest::Devices { offset }))
            }),
        ),
        ["v1", "features"] => ("GET", (m == "GET").then(|| none(ControlRequest::Features))),
        ["v1", "features", name, switch @ ("enable" | "disable")] => (
            "POST",
            (m == "POST").then(|| {
                none(ControlRequest::FeatureSet {
                    name: name.to_owned(),
                    enabled: switch == "enable",
                })
            }),
        ),
        ["v1", "log-level"] => (
            "POST",
            (m == "POST").then(|| {
                Query::new(&req.query, &[])?;
                let change: LogLevelChange = json_body(&req.body)?;
                Ok(Routed::Control(ControlRequest::LogLevel(change)))
            }),
        ),
        ["v1", "guard"] => (
            "GET",
            (m == "GET").then(|| {
                let q = Query::new(&req.query, &["limit"])?;
                no_body(req)?;
                let limit = q.limit(
                    "limit",
                    defaults::GUARD,
                    palisade_ipc::messages::GUARD_SENDERS_MAX,
                )?;
                Ok(Routed::Control(ControlRequest::Guard { limit }))
            }),
        ),
        ["v1", "trace"] => (
            "GET, POST, DELETE",
            match m {
                "GET" => Some((|| {
                    let q = Query::new(&req.query, &["after"])?;
                    no_body(req)?;
                    let after = match q.get("after") {
                        None => 0,
                        Some(v) => v
                            .parse::<u64>()
                            .map_err(|_| HttpError::bad("after must be a non-negative integer"))?,
                    };
                    Ok(Routed::Control(ControlRequest::TracePoll { after }))
                })()),
                "POST" => Some((|| {
                    Query::new(&req.query, &[])?;
                    let filter: TraceFilter = if req.body.is_empty() {
                        json_body(b"{}")?
                    } else {
                        json_body(&req.body)?
                    };
                    Ok(Routed::Control(ControlRequest::TraceStart(filter)))
                })()),
                "DELETE" => Some(none(ControlRequest::TraceStop)),
                _ => None,
            },
        ),
        _ => return Err(HttpError::new(404, "no such route (see docs/api.md)")),
    };
    result.unwrap_or_else(|| {
        Err(HttpError {
            status: 405,
            message: format!("{m} is not allowed here (allowed: {allow})"),
            allow: Some(allow),
        })
    })
}

/// The HTTP request the CLI sends for `req`: method, target and JSON body (empty: none).
pub fn target(req: &ControlRequest) -> (&'static str, String, Vec<u8>) {
    let get = |t: String| ("GET", t, Vec::new());
    let post = |t: &str| ("POST", t.to_owned(), Vec::new());
    match req {
        ControlRequest::Status => get("/v1/status".into()),
        ControlRequest::Version => get("/v1/version".into()),
        ControlRequest::Restart(RestartTarget::All) => post("/v1/restart/all"),
        ControlRequest::Restart(RestartTarget::One(k)) => {
            ("POST", format!("/v1/restart/{}", k.name()), Vec::new())
        }
        ControlRequest::Reload => post("/v1/reload"),
        ControlRequest::Check => post("/v1/check"),
        ControlRequest::ReopenLogs => post("/v1/reopen-logs"),
        ControlRequest::DnsTest(name) => get(format!("/v1/dns/test?name={}", encode(name))),
        ControlRequest::DnsBlockedHits => get("/v1/dns/blocked-hits".into()),
        ControlRequest::FlowsTop { by, limit } => {
            let by = match by {
                FlowOrder::Bytes => "bytes",
                FlowOrder::Packets => "packets",
            };
            get(format!("/v1/flows/top?by={by}&limit={limit}"))
        }
        ControlRequest::FlowsShow { host, limit } => {
            get(format!("/v1/flows?host={}&limit={limit}", encode(host)))
        }
        ControlRequest::BlockAdd(add) => (
            "POST",
            "/v1/block".into(),
            serde_json::to_vec(add).unwrap_or_default(),
        ),
        ControlRequest::BlockRemove(cidr) => {
            ("DELETE", format!("/v1/block/{}", encode(cidr)), Vec::new())
        }
        ControlRequest::BlockList { limit } => get(format!("/v1/block?limit={limit}")),
        ControlRequest::TlsRuleAdd(spec) => (
            "POST",
            "/v1/tls/rules".into(),
            serde_json::to_vec(spec).unwrap_or_default(),
        ),
        ControlRequest::TlsRuleRemove(spec) => (
            "DELETE",
            format!("/v1/tls/rules/{}/{}", spec.kind.name(), encode(&spec.value)),
            Vec::new(),
        ),
        ControlRequest::TlsRuleList { limit } => get(format!("/v1/tls/rules?limit={limit}")),
        ControlRequest::Devices { offset } => get(format!("/v1/devices?offset={offset}")),
        ControlRequest::Guard { limit } => get(format!("/v1/guard?limit={limit}")),
        ControlRequest::Features => get("/v1/features".into()),
        ControlRequest::FeatureSet { name, enabled } => (
            "POST",
            format!(
                "/v1/features/{}/{}",
                encode(name),
                if *enabled { "enable" } else { "disable" }
            ),
            Vec::new(),
        ),
        ControlRequest::LogLevel(change) => (
            "POST",
            "/v1/log-level".into(),
            serde_json::to_vec(change).unwrap_or_default(),
        ),
        ControlRequest::TraceStart(filter) => (
            "POST",
            "/v1/trace".into(),
            serde_json::to_vec(filter).unwrap_or_default(),
        ),
        ControlRequest::TracePoll { after } => get(format!("/v1/trace?after={after}")),
        ControlRequest::TraceStop => ("DELETE", "/v1/trace".into(), Vec::new()),
    }
}

/// An HTTP response, ready to write.
pub fn response(
    status: u16,
    content_type: &str,
    extra_headers: &[(&str, String)],
    body: &[u8],
) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n{VERSION_HEADER}: {PROTOCOL_VERSION}\r\n",
        reason(status),
        body.len()
    );
    for (name, value) in extra_headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// The JSON error document: `{"error": {"kind", "message"}}`, the shape `palisade --json`
/// prints on stderr.
pub fn error_response(err: &HttpError) -> Vec<u8> {
    #[derive(Serialize)]
    struct Inner<'a> {
        kind: &'static str,
        message: &'a str,
    }
    #[derive(Serialize)]
    struct Doc<'a> {
        error: Inner<'a>,
    }
    let kind = match err.status {
        401 | 403 => "permission_denied",
        406 => "protocol",
        408 => "timeout",
        413 => "too_large",
        404 => "not_found",
        405 => "method_not_allowed",
        422 => "failed",
        s if s >= 500 => "internal",
        _ => "bad_request",
    };
    let body = serde_json::to_vec(&Doc {
        error: Inner {
            kind,
            message: &err.message,
        },
    })
    .unwrap_or_default();
    let mut extra: Vec<(&str, String)> = err
        .allow
        .map(|a| vec![("Allow", a.to_owned())])
        .unwrap_or_default();
    if err.status == 401 {
        extra.push(("WWW-Authenticate", "Bearer realm=\"palisade\"".to_owned()));
    }
    response(err.status, "application/json", &extra, &body)
}

/// How the client wants the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// JSON (curl, integrations).
    Json,
    /// The versioned bincode `ControlResponse` (the CLI).
    Bincode,
}

/// The encoding `accept` asks for; a bincode of another protocol version is a 406.
pub fn encoding(accept: Option<&str>) -> Result<Encoding, HttpError> {
    let Some(accept) = accept else {
        return Ok(Encoding::Json);
    };
    for item in accept.split(',') {
        let media = item.split(';').next().unwrap_or_default().trim();
        if let Some(rest) = media.strip_prefix(BINCODE_MEDIA_TYPE) {
            if media == bincode_media_type() {
                return Ok(Encoding::Bincode);
            }
            let theirs = rest.split('+').next().unwrap_or_default();
            return Err(HttpError::new(
                406,
                format!(
                    "protocol version mismatch: the client speaks version {theirs}, the daemon {PROTOCOL_VERSION}"
                ),
            ));
        }
    }
    Ok(Encoding::Json)
}

/// The HTTP answer to a daemon's `ControlResponse`, in JSON: the document
/// `palisade ... --json` prints, with 200, or the error with 403 (refused) or 422 (failed).
pub fn json_answer(resp: &ControlResponse) -> Vec<u8> {
    #[derive(Serialize)]
    struct Restarting<'a> {
        restarting: &'a [WorkerKind],
    }
    #[derive(Serialize)]
    struct Reopened<'a> {
        reopened: &'a [WorkerKind],
    }
    #[derive(Serialize)]
    struct Features<'a> {
        features: &'a [palisade_ipc::messages::FeatureState],
    }
    let body = match resp {
        ControlResponse::Error { kind, message } => {
            let status = match kind {
                ControlErrorKind::PermissionDenied => 403,
                ControlErrorKind::Failed => 422,
            };
            return error_response(&HttpError::new(status, message.clone()));
        }
        ControlResponse::Devices(chunk) => {
            // The inventory as the DHCP worker wrote it (JSON lines the daemon does not
            // parse: they come from an unprivileged worker), one piece per request.
            return response(
                200,
                "application/x-ndjson",
                &[
                    ("Palisade-Inventory-Size", chunk.total.to_string()),
                    ("Palisade-Offset", chunk.offset.to_string()),
                ],
                &chunk.bytes,
            );
        }
        ControlResponse::Status(r) => serde_json::to_vec_pretty(r),
        ControlResponse::Version(r) => serde_json::to_vec_pretty(r),
        ControlResponse::Restarted(k) => serde_json::to_vec_pretty(&Restarting { restarting: k }),
        ControlResponse::Reloaded(r) => serde_json::to_vec_pretty(r),
        ControlResponse::DnsTest(r) => serde_json::to_vec_pretty(r),
        ControlResponse::DnsBlockedHits(r) => serde_json::to_vec_pretty(r),
        ControlResponse::LogsReopened(k) => serde_json::to_vec_pretty(&Reopened { reopened: k }),
        ControlResponse::Flows(r) => serde_json::to_vec_pretty(r),
        ControlResponse::BlockAdded(r) | ControlResponse::BlockRemoved(r) => {
            serde_json::to_vec_pretty(r)
        }
        ControlResponse::BlockList(r) => serde_json::to_vec_pretty(r),
        ControlResponse::TlsRuleAdded(r) | ControlResponse::TlsRuleRemoved(r) => {
            serde_json::to_vec_pretty(r)
        }
        ControlResponse::TlsRuleList(r) => serde_json::to_vec_pretty(r),
        ControlResponse::Checked(r) => serde_json::to_vec_pretty(r),
        ControlResponse::Guard(r) => serde_json::to_vec_pretty(r),
        ControlResponse::LogLevelSet(r) => serde_json::to_vec_pretty(r),
        ControlResponse::Features(f) => serde_json::to_vec_pretty(&Features { features: f }),
        ControlResponse::Trace(r) => serde_json::to_vec_pretty(r),
    };
    match body {
        Ok(mut body) => {
            body.push(b'\n');
            response(200, "application/json", &[], &body)
        }
        Err(e) => error_response(&HttpError::new(500, format!("rendering JSON: {e}"))),
    }
}

/// The HTTP status of a daemon's answer, for the bincode encoding.
pub fn status_of(resp: &ControlResponse) -> u16 {
    match resp {
        ControlResponse::Error {
            kind: ControlErrorKind::PermissionDenied,
            ..
        } => 403,
        ControlResponse::Error {
            kind: ControlErrorKind::Failed,
            ..
        } => 422,
        _ => 200,
    }
}

#[cfg(test)]
mod tests {
    use palisade_ipc::messages::TlsRuleKind;

    use super::*;

    fn parsed(raw: &str) -> Request {
        match parse(raw.as_bytes()) {
            Ok(Parse::Complete(r)) => r,
            other => panic!("{raw:?}: {other:?}"),
        }
    }

    #[test]
    fn every_cli_request_has_its_route() {
        let spec = TlsRuleSpec {
            kind: TlsRuleKind::SniRegex,
            value: "^a/b c%d\\.example$".into(),
            block: false,
            comment: None,
        };
        let requests = [
            ControlRequest::Status,
            ControlRequest::Version,
            ControlRequest::Restart(RestartTarget::All),
            ControlRequest::Restart(RestartTarget::One(WorkerKind::Tls)),
            ControlRequest::Reload,
            ControlRequest::DnsTest("ex ample.com".into()),
            ControlRequest::DnsBlockedHits,
            ControlRequest::ReopenLogs,
            ControlRequest::FlowsTop {
                by: FlowOrder::Packets,
                limit: 7,
            },
            ControlRequest::FlowsShow {
                host: "2001:db8::1".into(),
                limit: 3,
            },
            ControlRequest::BlockAdd(BlockAddRequest {
                cidr: "192.0.2.0/24".into(),
                ttl_secs: Some(60),
                comment: Some("a \"quoted\" comment".into()),
            }),
            ControlRequest::BlockRemove("2001:db8::/32".into()),
            ControlRequest::BlockList { limit: 5 },
            ControlRequest::TlsRuleAdd(TlsRuleSpec {
                block: true,
                comment: Some("c".into()),
                ..spec.clone()
            }),
            ControlRequest::TlsRuleRemove(spec),
            ControlRequest::TlsRuleList { limit: 9 },
            ControlRequest::Devices { offset: 4096 },
            ControlRequest::Check,
            ControlRequest::Guard { limit: 11 },
            ControlRequest::LogLevel(LogLevelChange {
                level: "info,palisade::control=debug".into(),
                worker: None,
            }),
            ControlRequest::LogLevel(LogLevelChange {
                level: "warn".into(),
                worker: Some(WorkerKind::Dhcp),
            }),
            ControlRequest::Features,
            ControlRequest::FeatureSet {
                name: "ip-blocking".into(),
                enabled: false,
            },
            ControlRequest::FeatureSet {
                name: "dns-blocking".into(),
                enabled: true,
            },
            ControlRequest::TraceStart(TraceFilter {
                host: Some("2001:db8::1".into()),
                proto: Some("udp".into()),
                port: Some(53),
                duration_s: 90,
            }),
            ControlRequest::TraceStart(TraceFilter {
                host: None,
                proto: None,
                port: None,
                duration_s: palisade_ipc::messages::TRACE_DURATION_DEFAULT_S,
            }),
            ControlRequest::TracePoll { after: 17 },
            ControlRequest::TraceStop,
        ];
        for req in requests {
            let (method, target, body) = target(&req);
            let raw = format!(
                "{method} {target} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let mut bytes = raw.into_bytes();
            bytes.extend_from_slice(&body);
            let Ok(Parse::Complete(parsed)) = parse(&bytes) else {
                panic!("{req:?}: {target} does not parse");
            };
            assert_eq!(
                route(&parsed),
                Ok(Routed::Control(req.clone())),
                "{method} {target}"
            );
            // Every route is in the table the OpenAPI description is checked against.
            let first = parsed.path.get(1).cloned().unwrap_or_default();
            assert!(
                ROUTES
                    .iter()
                    .any(|(p, m)| p.starts_with(&format!("/v1/{first}")) && m.contains(method)),
                "{method} {target} missing from ROUTES"
            );
        }
    }

    #[test]
    fn requests_are_parsed_strictly() {
        let r = parsed("GET /v1/flows/top?by=packets&limit=3 HTTP/1.1\r\nAccept: */*\r\n\r\n");
        assert_eq!(r.path, ["v1", "flows", "top"]);
        assert_eq!(r.accept.as_deref(), Some("*/*"));
        assert_eq!(
            parse(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n"),
            Ok(Parse::Incomplete)
        );
        assert_eq!(
            parse(b"POST /v1/block HTTP/1.1\r\nContent-Length: 10\r\n\r\n{}"),
            Ok(Parse::Incomplete)
        );
        let status = |raw: &[u8]| parse(raw).err().map(|e| e.status);
        assert_eq!(status(b"GET /v1/status HTTP/2\r\n\r\n"), Some(505));
        assert_eq!(status(b"get /v1/status HTTP/1.1\r\n\r\n"), Some(400));
        assert_eq!(status(b"GET  /v1/status HTTP/1.1\r\n\r\n"), Some(400));
        assert_eq!(status(b"GET /v1/status HTTP/1.1\r\nX\r\n\r\n"), Some(400));
        assert_eq!(
            status(b"GET /v1/status HTTP/1.1\r\nA: b\r\n c\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            status(b"POST /v1/block HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            Some(413)
        );
        assert_eq!(
            status(b"POST /v1/block HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx"),
            Some(400)
        );
        assert_eq!(
            status(b"POST /v1/block HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Some(501)
        );
        assert_eq!(
            status(b"GET /v1/status HTTP/1.1\r\n\r\nGET /v1/status HTTP/1.1\r\n\r\n"),
            Some(400)
        );
        assert_eq!(status(b"GET /v1/%zz HTTP/1.1\r\n\r\n"), Some(400));
        assert_eq!(status(&vec![b'a'; MAX_HEAD + 1]), Some(413));
        let mut long = b"GET /v1/status HTTP/1.1\r\nX: ".to_vec();
        long.extend(vec![b'a'; MAX_HEAD]);
        long.extend(b"\r\n\r\n");
        assert_eq!(status(&long), Some(413));
    }

    #[test]
    fn routes_refuse_what_they_do_not_take() {
        let status = |raw: &str| {
            route(&parsed(raw))
                .err()
                .map(|e| (e.status, e.allow.is_some()))
        };
        assert_eq!(
            status("GET /v1/nothing HTTP/1.1\r\n\r\n"),
            Some((404, false))
        );
        assert_eq!(
            status("GET /v1/status/x HTTP/1.1\r\n\r\n"),
            Some((404, false))
        );
        assert_eq!(
            status("DELETE /v1/status HTTP/1.1\r\n\r\n"),
            Some((405, true))
        );
        assert_eq!(status("GET /v1/reload HTTP/1.1\r\n\r\n"), Some((405, true)));
        assert_eq!(
            status("POST /v1/restart/ftp HTTP/1.1\r\n\r\n"),
            Some((404, false))
        );
        assert_eq!(
            status("GET /v1/status?x=1 HTTP/1.1\r\n\r\n"),
            Some((400, false))
        );
        assert_eq!(
            status("GET /v1/flows/top?limit=0 HTTP/1.1\r\n\r\n"),
            Some((400, false))
        );
        assert_eq!(
            status("GET /v1/flows/top?limit=1&limit=2 HTTP/1.1\r\n\r\n"),
            Some((400, false))
        );
        assert_eq!(
            status("GET /v1/flows?host=example.com HTTP/1.1\r\n\r\n"),
            Some((400, false))
        );
        assert_eq!(
            status("POST /v1/block HTTP/1.1\r\n\r\n"),
            Some((400, false))
        );
        assert_eq!(
            status(
                "POST /v1/block HTTP/1.1\r\nContent-Length: 27\r\n\r\n{\"cidr\":\"1.2.3.4\",\"x\":true}"
            ),
            Some((400, false))
        );
        // A CIDR's slash may come as a separator or percent-encoded.
        for raw in [
            "DELETE /v1/block/10.0.0.0/8 HTTP/1.1\r\n\r\n",
            "DELETE /v1/block/10.0.0.0%2f8 HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(
                route(&parsed(raw)),
                Ok(Routed::Control(ControlRequest::BlockRemove(
                    "10.0.0.0/8".into()
                )))
            );
        }
        assert_eq!(
            route(&parsed("GET /metrics HTTP/1.1\r\n\r\n")),
            Ok(Routed::Metrics)
        );
    }

    #[test]
    fn the_cli_and_the_daemon_agree_on_the_version() {
        assert_eq!(encoding(None), Ok(Encoding::Json));
        assert_eq!(encoding(Some("*/*")), Ok(Encoding::Json));
        assert_eq!(encoding(Some(&bincode_media_type())), Ok(Encoding::Bincode));
        let other = format!("{BINCODE_MEDIA_TYPE}{}+bincode", PROTOCOL_VERSION + 1);
        assert_eq!(encoding(Some(&other)).map_err(|e| e.status), Err(406));
    }
}

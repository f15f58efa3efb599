//! Reading a Prometheus `/metrics` endpoint: where it is ([`Endpoint`], from `HOST:PORT` or
//! an `http://` URL), a plain HTTP/1.0 GET and a parser for the text exposition format,
//! enough for `sluice top` to read a broker's counters without an HTTP or Prometheus
//! dependency.
//!
//! The parser reads `name{label="value",...} value [timestamp]` lines; comments (`# HELP`,
//! `# TYPE`) and blank lines are skipped, and so is any line it cannot read (it never fails
//! the whole text). Label values may hold escaped `\\`, `\"` and `\n`, and commas or braces
//! inside quotes. Values may be `NaN`, `+Inf` and `-Inf`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response read from a metrics endpoint.
pub const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The path asked for when an endpoint names none.
pub const DEFAULT_PATH: &str = "/metrics";

/// A metrics endpoint: the `HOST:PORT` to connect to and the path to GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub address: String,
    /// Starts with `/`.
    pub path: String,
}

impl Endpoint {
    /// `HOST:PORT`, `http://HOST:PORT` (both GET [`DEFAULT_PATH`]) or `http://HOST:PORT/PATH`
    /// (GET that path). An IPv6 host is written in brackets, `[::1]:9644`. Anything else
    /// (another scheme, no port, a port that is not 1..=65535, a user name) is an error
    /// saying what is wrong.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let text = text.trim();
        let rest = match text.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => return Err(format!("only http:// is supported, not {scheme}://")),
            None => text,
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, DEFAULT_PATH),
        };
        let form = "expected HOST:PORT, http://HOST:PORT or http://HOST:PORT/PATH";
        if authority.contains('@') {
            return Err(format!("a user name is not supported ({form})"));
        }
        let Some((host, port)) = authority.rsplit_once(':') else {
            return Err(format!("no port ({form})"));
        };
        let bare_ipv6 = host.contains(':') && !(host.starts_with('[') && host.ends_with(']'));
        if host.is_empty() || bare_ipv6 || host.contains(char::is_whitespace) {
            return Err(format!("no valid host ({form})"));
        }
        match port.parse::<u16>() {
            Ok(port) if port > 0 => {}
            _ => return Err(format!("'{port}' is not a port (1-65535)")),
        }
        Ok(Endpoint {
            address: authority.to_string(),
            path: path.to_string(),
        })
    }
}

impl std::fmt::Display for Endpoint {
    /// As a URL: `http://HOST:PORT/PATH`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.address, self.path)
    }
}

impl std::str::FromStr for Endpoint {
    type Err = String;

    fn from_str(text: &str) -> Result<Endpoint, String> {
        Endpoint::parse(text)
    }
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl MetricSample {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// GET `path` from `address` (HOST:PORT) over HTTP/1.0 and return the body of a 200
/// response; anything else, or no complete answer within `timeout`, is an error saying what
/// happened.
pub async fn get(address: &str, path: &str, timeout: Duration) -> Result<String, String> {
    let exchange = async {
        let mut stream = TcpStream::connect(address)
            .await
            .map_err(|e| format!("connecting to {address}: {e}"))?;
        let request =
            format!("GET {path} HTTP/1.0\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("writing to {address}: {e}"))?;
        let mut response = Vec::new();
        let limit = u64::try_from(RESPONSE_BYTES_MAX).unwrap_or(u64::MAX);
        (&mut stream)
            .take(limit)
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("reading from {address}: {e}"))?;
        Ok::<Vec<u8>, String>(response)
    };
    let response = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("{address} did not answer within {} ms", timeout.as_millis()))??;
    body(&response).map_err(|e| format!("{address}{path}: {e}"))
}

/// The body of a whole HTTP/1.x response if its status is 200 (a chunked body is decoded).
pub fn body(response: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(response);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| "the response has no header end".to_string())?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    if code != "200" {
        return Err(format!("HTTP status '{status}'"));
    }
    let chunked = lines.any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding")
                && value.trim().eq_ignore_ascii_case("chunked")
        })
    });
    if chunked {
        dechunk(rest)
    } else {
        Ok(rest.to_string())
    }
}

/// Join the chunks of a chunked body.
fn dechunk(mut rest: &str) -> Result<String, String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest
            .split_once("\r\n")
            .ok_or_else(|| "a chunk has no size line".to_string())?;
        let size = size.split(';').next().unwrap_or_default().trim();
        let size =
            usize::from_str_radix(size, 16).map_err(|_| format!("bad chunk size '{size}'"))?;
        if size == 0 {
            return Ok(body);
        }
        let chunk = after
            .get(..size)
            .ok_or_else(|| "the body ends inside a chunk".to_string())?;
        body.push_str(chunk);
        rest = after[size..].strip_prefix("\r\n").unwrap_or(&after[size..]);
    }
}

/// Every sample line of a text exposition, in order.
pub fn parse(text: &str) -> Vec<MetricSample> {
    text.lines().filter_map(parse_line).collect()
}

/// One sample line, or None for a comment, a blank or an unreadable line.
pub fn parse_line(line: &str) -> Option<MetricSample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(after_brace)?;
        labels = parsed;
        rest = after;
    }
    let value = rest.split_whitespace().next()?;
    Some(MetricSample {
        name: name.to_string(),
        labels,
        value: parse_value(value)?,
    })
}

/// `label="value",...}` -> the labels and what follows the closing brace.
fn parse_labels(mut text: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start();
        if let Some(after) = text.strip_prefix('}') {
            return Some((labels, after));
        }
        let (key, after_key) = text.split_once('=')?;
        let mut chars = after_key.trim_start().char_indices();
        let start = after_key.len() - after_key.trim_start().len();
        if chars.next()?.1 != '"' {
            return None;
        }
        let mut value = String::new();
        let mut end = None;
        let mut escaped = false;
        for (at, c) in chars {
            if escaped {
                value.push(match c {
                    'n' => '\n',
                    other => other,
                });
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                end = Some(start + at + 1);
                break;
            } else {
                value.push(c);
            }
        }
        labels.push((key.trim().to_string(), value));
        text = after_key[end?..].trim_start();
        text = text.strip_prefix(',').unwrap_or(text);
    }
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        other => other.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_labels_and_values() {
        let text = "# HELP sluice_topic_bytes_in_total Bytes in.\n\
            # TYPE sluice_topic_bytes_in_total counter\n\
            sluice_topic_bytes_in_total{topic=\"orders\"} 1024\n\
            \n\
            sluice_bytes_in_total 5.5e3\n\
            sluice_request_total_time_seconds_bucket{api=\"Produce\",version=\"9\",le=\"+Inf\"} 3 1700000000000\n\
            odd{a=\"x,y}\",b = \"say \\\"hi\\\"\\\\n\\n\"} +Inf\n\
            nan_value NaN\n\
            broken{a=\"unterminated} 1\n\
            no_value\n";
        let samples = parse(text);
        let summary: Vec<(&str, Vec<(&str, &str)>)> = samples
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    s.labels
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("sluice_topic_bytes_in_total", vec![("topic", "orders")]),
                ("sluice_bytes_in_total", vec![]),
                (
                    "sluice_request_total_time_seconds_bucket",
                    vec![("api", "Produce"), ("version", "9"), ("le", "+Inf")]
                ),
                ("odd", vec![("a", "x,y}"), ("b", "say \"hi\"\\n\n")]),
                ("nan_value", vec![]),
            ]
        );
        assert_eq!(samples[0].value, 1024.0);
        assert_eq!(samples[0].label("topic"), Some("orders"));
        assert_eq!(samples[0].label("partition"), None);
        assert_eq!(samples[1].value, 5500.0);
        assert_eq!(samples[2].value, 3.0, "the timestamp is not the value");
        assert_eq!(samples[3].value, f64::INFINITY);
        assert!(samples[4].value.is_nan());
    }

    #[test]
    fn http_bodies_need_status_200_and_may_be_chunked() {
        assert_eq!(
            body(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\na 1\nb 2\n").unwrap(),
            "a 1\nb 2\n"
        );
        assert_eq!(
            body(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\na 1\n\r\n4;x=y\r\nb 2\n\r\n0\r\n\r\n")
                .unwrap(),
            "a 1\nb 2\n"
        );
        let error = body(b"HTTP/1.1 404 Not Found\r\n\r\nnope").unwrap_err();
        assert!(error.contains("404"), "{error}");
        assert!(body(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(body(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err());
    }

    #[test]
    fn endpoints_are_host_port_or_http_urls() {
        let endpoint = |text: &str| {
            Endpoint::parse(text)
                .map(|e| (e.address, e.path))
                .unwrap_or_else(|e| panic!("{text}: {e}"))
        };
        let at = |address: &str, path: &str| (address.to_string(), path.to_string());
        assert_eq!(
            endpoint("127.0.0.1:29644"),
            at("127.0.0.1:29644", "/metrics")
        );
        assert_eq!(
            endpoint("http://127.0.0.1:29644"),
            at("127.0.0.1:29644", "/metrics")
        );
        assert_eq!(
            endpoint("http://127.0.0.1:29644/metrics"),
            at("127.0.0.1:29644", "/metrics")
        );
        assert_eq!(
            endpoint("HTTP://broker-1:9644/prometheus/metrics?x=1"),
            at("broker-1:9644", "/prometheus/metrics?x=1")
        );
        assert_eq!(endpoint("http://[::1]:9644/"), at("[::1]:9644", "/"));
        assert_eq!(
            Endpoint::parse("localhost:9644").unwrap().to_string(),
            "http://localhost:9644/metrics"
        );
        for (bad, says) in [
            ("https://127.0.0.1:9644/metrics", "only http://"),
            ("127.0.0.1", "no port"),
            ("http://127.0.0.1/metrics", "no port"),
            ("127.0.0.1:http", "not a port"),
            ("127.0.0.1:0", "not a port"),
            ("127.0.0.1:70000", "not a port"),
            (":9644", "no valid host"),
            ("::1:9644", "no valid host"),
            ("http://user@127.0.0.1:9644", "user name"),
            ("", "no port"),
        ] {
            let error = Endpoint::parse(bad).expect_err(bad);
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[tokio::test]
    async fn get_reads_a_body_and_reports_an_unreachable_endpoint() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 1024];
            let n = stream.read(&mut request).await.unwrap();
            let request = String::from_utf8_lossy(&request[..n]).to_string();
            stream
                .write_all(b"HTTP/1.0 200 OK\r\n\r\nsluice_up 1\n")
                .await
                .unwrap();
            request
        });
        let text = get(&address, "/metrics", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(parse(&text)[0].name, "sluice_up");
        let request = server.await.unwrap();
        assert!(
            request.starts_with("GET /metrics HTTP/1.0\r\n"),
            "{request}"
        );

        // Nothing listens on the port any more.
        let error = get(&address, "/metrics", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(error.contains(&address), "{error}");
    }
}

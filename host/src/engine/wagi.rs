//! WAGI: a WASI command (`wasi:cli/run`, such as a C `main` built for wasm32-wasip1) run once
//! per request the way a web server runs a CGI script, as Spin's `executor = { type = "wagi" }`
//! does. The request's metadata arrives in environment variables (CGI/1.1 plus Spin's `X_*`),
//! its body on stdin and its query in the arguments; the command prints CGI headers, a blank
//! line and the body.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use percent_encoding::percent_decode_str;
use wasmtime::component::InstancePre;
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi_http::WasiBody;

use super::guest::GuestState;
use super::pool::{InvokeError, Stores};
use crate::data::replica::bookmark::Bookmark;
use crate::manifest::Wagi;

/// The most a command may print for one response; writing more fails the request.
const MAX_OUTPUT: usize = 64 << 20;

/// Runs one component's command per request.
pub(super) struct WagiHandler {
    pre: CommandPre<GuestState>,
    wagi: Wagi,
    stores: Stores,
}

impl WagiHandler {
    /// Checks that the linked component is a command, to be started as `wagi` says.
    pub(super) fn new(
        pre: InstancePre<GuestState>,
        wagi: Wagi,
        stores: Stores,
    ) -> anyhow::Result<Self> {
        let pre = CommandPre::new(pre).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        Ok(Self { pre, wagi, stores })
    }

    /// Runs the command for `request` and reads its response from the output.
    pub(super) async fn handle(
        &self,
        request: http::Request<WasiBody>,
        bookmark: Arc<Bookmark>,
    ) -> Result<http::Response<WasiBody>, InvokeError> {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| InvokeError::Failed(format!("cannot read the request body: {e}")))?
            .to_bytes();
        let environment = cgi_environment(&parts, body.len());
        let args = arguments(&self.wagi.argv, &parts);
        let stdout = MemoryOutputPipe::new(MAX_OUTPUT);
        let mut store = self
            .stores
            .new_store(|wasi| {
                wasi.envs(&environment);
                wasi.args(&args);
                wasi.stdin(MemoryInputPipe::new(body));
                wasi.stdout(stdout.clone());
            })
            .map_err(|e| InvokeError::Unavailable(format!("{e:#}")))?;
        store.data().consistency.enter(&bookmark);
        let command = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| InvokeError::Unavailable(format!("{e:#}")))?;
        let outcome = command.wasi_cli_run().call_run(&mut store).await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(())) => {
                return Err(InvokeError::Failed(
                    "the command exited with an error".into(),
                ));
            }
            Err(error) => match error.downcast_ref::<I32Exit>() {
                Some(I32Exit(0)) => {}
                Some(I32Exit(code)) => {
                    return Err(InvokeError::Failed(format!(
                        "the command exited with code {code}"
                    )));
                }
                None => return Err(InvokeError::Failed(format!("{error:?}"))),
            },
        }
        drop(store);
        let response = parse_cgi_output(stdout.contents()).map_err(InvokeError::Failed)?;
        Ok(response.map(|body| {
            Full::new(body)
                .map_err(|never| match never {})
                .boxed_unsync()
        }))
    }
}

/// The CGI/1.1 variables, Spin's `X_*` ones and an `HTTP_*` one per request header.
fn cgi_environment(parts: &http::request::Parts, content_length: usize) -> Vec<(String, String)> {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let host = header("host");
    let (server_name, server_port) = match host.rsplit_once(':') {
        Some((name, port)) if port.parse::<u16>().is_ok() => (name.to_owned(), port.to_owned()),
        _ => (host.clone(), "80".to_owned()),
    };
    let client = header("spin-client-addr");
    let remote_addr = client
        .parse::<std::net::SocketAddr>()
        .map(|addr| addr.ip().to_string())
        .unwrap_or(client);
    let path_info = header("spin-path-info");
    let mut environment = vec![
        ("GATEWAY_INTERFACE".into(), "CGI/1.1".into()),
        (
            "SERVER_SOFTWARE".into(),
            concat!("ledge/", env!("CARGO_PKG_VERSION")).into(),
        ),
        ("SERVER_PROTOCOL".into(), format!("{:?}", parts.version)),
        ("SERVER_NAME".into(), server_name),
        ("SERVER_PORT".into(), server_port),
        ("REQUEST_METHOD".into(), parts.method.to_string()),
        (
            "QUERY_STRING".into(),
            parts.uri.query().unwrap_or_default().into(),
        ),
        ("SCRIPT_NAME".into(), header("spin-component-route")),
        ("PATH_INFO".into(), path_info.clone()),
        ("PATH_TRANSLATED".into(), path_info.clone()),
        ("REMOTE_ADDR".into(), remote_addr.clone()),
        ("REMOTE_HOST".into(), remote_addr),
        ("CONTENT_LENGTH".into(), content_length.to_string()),
        ("CONTENT_TYPE".into(), header("content-type")),
        ("AUTH_TYPE".into(), String::new()),
        ("REMOTE_USER".into(), String::new()),
        ("X_MATCHED_ROUTE".into(), header("spin-matched-route")),
        ("X_FULL_URL".into(), header("spin-full-url")),
        ("X_RAW_PATH_INFO".into(), path_info),
        ("X_COMPONENT_ROUTE".into(), header("spin-component-route")),
        (
            "X_RAW_COMPONENT_ROUTE".into(),
            header("spin-raw-component-route"),
        ),
        ("X_BASE_PATH".into(), header("spin-base-path")),
    ];
    for (name, value) in &parts.headers {
        if let Ok(value) = value.to_str() {
            let name = name.as_str().to_ascii_uppercase().replace('-', "_");
            environment.push((format!("HTTP_{name}"), value.to_owned()));
        }
    }
    environment
}

/// The command line from `argv`: `${SCRIPT_NAME}` is the component route, `${ARGS}` the
/// query's `&`-separated parts, percent-decoded.
fn arguments(argv: &str, parts: &http::request::Parts) -> Vec<String> {
    let script_name = parts
        .headers
        .get("spin-component-route")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("/");
    let query_args = || {
        parts
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|arg| !arg.is_empty())
            .map(|arg| {
                percent_decode_str(&arg.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            })
    };
    let mut args = Vec::new();
    for word in argv.split_whitespace() {
        match word {
            "${ARGS}" => args.extend(query_args()),
            _ => args.push(word.replace("${SCRIPT_NAME}", script_name)),
        }
    }
    args
}

/// Splits a CGI response into its header block and body: `Status: 404 Not Found` sets the
/// status, a `Location` without one redirects with 302, every other line is a header.
fn parse_cgi_output(output: Bytes) -> Result<http::Response<Bytes>, String> {
    let (head_end, body_start) = ["\r\n\r\n", "\n\n"]
        .iter()
        .filter_map(|separator| {
            output
                .windows(separator.len())
                .position(|window| window == separator.as_bytes())
                .map(|at| (at, at + separator.len()))
        })
        .min()
        .ok_or("the command printed no CGI header block (headers such as `Content-Type: text/plain`, then a blank line, then the body)")?;
    let head = std::str::from_utf8(&output[..head_end])
        .map_err(|_| "the command's CGI headers are not UTF-8".to_owned())?;
    let mut response = http::Response::builder();
    let mut status = None;
    let mut location = false;
    for line in head.lines() {
        let (name, value) = line.split_once(':').ok_or_else(|| {
            format!(
                "the command printed `{line}` among its CGI headers, which is not `Name: value`"
            )
        })?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or_default();
            status =
                Some(http::StatusCode::from_bytes(code.as_bytes()).map_err(|_| {
                    format!("the command's `Status: {value}` is not an HTTP status")
                })?);
        } else {
            location |= name.eq_ignore_ascii_case("location");
            response = response.header(name.trim(), value);
        }
    }
    let status = status.unwrap_or(if location {
        http::StatusCode::FOUND
    } else {
        http::StatusCode::OK
    });
    response
        .status(status)
        .body(output.slice(body_start..))
        .map_err(|e| format!("the command's CGI headers are not valid HTTP: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_output_gives_status_headers_and_body() {
        let response = parse_cgi_output(Bytes::from_static(
            b"Content-Type: text/plain\nStatus: 404 Not Found\n\nno such thing\n\nat all",
        ))
        .unwrap();
        assert_eq!(response.status(), 404);
        assert_eq!(response.headers()["content-type"], "text/plain");
        assert_eq!(response.body(), "no such thing\n\nat all");
        let redirect = parse_cgi_output(Bytes::from_static(b"Location: /there\r\n\r\n")).unwrap();
        assert_eq!(redirect.status(), 302);
        let error = parse_cgi_output(Bytes::from_static(b"hello")).unwrap_err();
        assert!(error.contains("no CGI header block"), "{error}");
    }

    #[test]
    fn arguments_expand_the_script_name_and_the_query() {
        let (parts, ()) = http::Request::builder()
            .uri("/c/run?name=J%C3%BCrgen&two+words")
            .header("spin-component-route", "/c")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(
            arguments("${SCRIPT_NAME} --verbose ${ARGS}", &parts),
            ["/c", "--verbose", "name=Jürgen", "two words"]
        );
    }
}

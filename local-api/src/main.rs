//! The local API: the service's routes on `127.0.0.1:$PORT`, each call going through the
//! same handlers and the same REQUEST authorizer as the deployed Lambda functions, with a
//! local stand-in for API Gateway in between (see `gateway.rs`).
//!
//! Started by `make dev` through `scripts/local_api.py`, which reads the wiring from
//! template.yaml (`LOCAL_API_WIRING`, `ROUTE_ROLES`) and provides the DynamoDB endpoint and
//! the signing secret. It reads the same variables as the functions (`shared::config`).
//! Besides the template's routes it serves the API's documentation (`docs.rs`) and, with
//! mail configured, the local mailbox (`mail.rs`), which exist only here.

mod docs;
mod gateway;
mod mail;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use shared::authorizer::AccessRules;
use tokio::net::TcpListener;

use crate::docs::Docs;
use crate::gateway::{Answer, Call, Gateway, MAX_PAYLOAD_BYTES, Wiring};
use crate::mail::LocalMail;

const WIRING_ENV: &str = "LOCAL_API_WIRING";

#[tokio::main]
async fn main() -> ExitCode {
    shared::bootstrap::init_logging();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("local-api: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let wiring = std::env::var(WIRING_ENV)
        .map_err(|_| format!("{WIRING_ENV} is not set; start the local API with `make dev`"))?;
    let wiring: Wiring = serde_json::from_str(&wiring).map_err(|e| format!("{WIRING_ENV} is not valid: {e}"))?;
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p.parse().map_err(|_| format!("PORT must be a port number, got {p:?}"))?,
        Err(_) => 3000,
    };
    // Cold start, once, as in each function: one configuration and one SDK setup, for the
    // use cases and the local mailbox's deliverer alike.
    let config = shared::config::Config::from_env().map_err(|e| e.to_string())?;
    let sdk = shared::aws::load_sdk_config().await?;
    let auth = shared::bootstrap::auth_from_config(&config, &sdk, shared::bootstrap::Keys::SignAndVerify, true)
        .await
        .map_err(|e| e.to_string())?;
    let mail = Arc::new(config.mail.as_ref().map(|mail| {
        let outbox = shared::store::DynamoStore::for_outbox(shared::aws::dynamodb_client(&sdk), &mail.outbox_table);
        LocalMail::start(mail, outbox)
    }));
    let rules = AccessRules::from_env().map_err(|e| e.to_string())?;
    let browser = shared::http::Browser::new(shared::config::BrowserConfig::from_env()).map_err(|e| e.to_string())?;
    let docs = Docs::from_env(wiring.routes.iter().map(|r| r.path.as_str()))?;
    let gateway = Arc::new(Gateway::new(wiring, auth, browser, rules)?);
    let docs = Arc::new(docs);

    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}; set PORT to use another port"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    announce(addr, gateway.stage(), docs.is_some(), mail.is_some());

    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let (gateway, docs, mail) = (gateway.clone(), docs.clone(), mail.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let (gateway, docs, mail) = (gateway.clone(), docs.clone(), mail.clone());
                        async move {
                            let local = Local { docs: docs.as_ref().as_ref(), mail: mail.as_ref().as_ref() };
                            Ok::<_, Infallible>(serve(&gateway, local, req, peer).await)
                        }
                    });
                    // A client that goes away mid-request is not an error worth reporting.
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        }
    }
}

/// What the local API serves besides the template's routes.
#[derive(Clone, Copy)]
struct Local<'a> {
    docs: Option<&'a Docs>,
    mail: Option<&'a LocalMail>,
}

fn announce(addr: SocketAddr, stage: &str, docs: bool, mail: bool) {
    println!("Local API (stage {stage}) listening on http://{addr}  (Ctrl-C stops it)");
    if docs {
        println!("API docs: http://{addr}/docs  (the OpenAPI document: http://{addr}/openapi.yaml)");
    }
    if mail {
        println!("Mail the service sends: http://{addr}{}", mail::MAIL_PATH);
    }
    println!("Try:");
    println!(
        "  curl -s -X POST http://{addr}/auth/register -H 'Content-Type: application/json' \\\n    \
         -d '{{\"username\": \"alice\", \"password\": \"correct horse battery\"}}'"
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

async fn serve(
    gateway: &Gateway,
    local: Local<'_>,
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_PAYLOAD_BYTES).collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        // Over API Gateway's limit (or the client went away): the gateway's 413.
        Err(_) => return to_http(gateway.gateway_response("REQUEST_TOO_LARGE", 413)),
    };
    let call = Call {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body,
        source_ip: peer.ip().to_string(),
    };
    let (method, path) = (call.method.clone(), call.path.clone());
    let started = std::time::Instant::now();
    let documentation = match local.docs {
        Some(docs) => docs.answer(&method, &path).await,
        None => None,
    };
    let documentation = documentation.or_else(|| local.mail.and_then(|mail| mail.answer(&method, &path)));
    let answer = match documentation {
        Some(answer) => answer,
        None => gateway.handle(call).await,
    };
    // Method, path, status, time: never headers, query or body (they carry credentials).
    tracing::info!(%method, %path, status = answer.status, ms = started.elapsed().as_millis() as u64, "request");
    to_http(answer)
}

fn to_http(answer: Answer) -> hyper::Response<Full<Bytes>> {
    let mut res = hyper::Response::new(Full::new(Bytes::from(answer.body)));
    *res.status_mut() = hyper::StatusCode::from_u16(answer.status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in answer.headers {
        if let (Ok(k), Ok(v)) = (hyper::header::HeaderName::try_from(k), hyper::header::HeaderValue::try_from(v)) {
            res.headers_mut().append(k, v);
        }
    }
    res
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

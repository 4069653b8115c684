//! The API's documentation, served by the local API only (the deployed API has no such
//! routes): `GET /openapi.yaml`, the document at the repository root, and `GET /docs`,
//! Swagger UI reading it.
//!
//! `scripts/local_api.py` passes where the files are: `OPENAPI_FILE` (the document, read
//! on each request, so an edit shows at the next reload) and `DOCS_ASSETS_DIR` (Swagger UI's
//! files, vendored from the npm registry by `scripts/docs_assets.py`, never fetched from a
//! CDN by the page). Only the fixed names below are served: a path that is not one of
//! them, `..` included, is the gateway's 404.

use std::path::PathBuf;

use crate::gateway::Answer;

pub const OPENAPI_FILE_ENV: &str = "OPENAPI_FILE";
pub const DOCS_ASSETS_DIR_ENV: &str = "DOCS_ASSETS_DIR";

const OPENAPI_PATH: &str = "/openapi.yaml";
const DOCS_PATH: &str = "/docs";

/// Swagger UI's files in `DOCS_ASSETS_DIR`, under `/docs/<name>`, and their media types.
const ASSETS: &[(&str, &str)] = &[
    ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    ("swagger-ui.css", "text/css; charset=utf-8"),
    ("favicon-32x32.png", "image/png"),
    ("favicon-16x16.png", "image/png"),
];

/// The page: Swagger UI from this server only. Its script is a file of its own (below)
/// so that the page's policy can forbid inline scripts.
const INDEX_HTML: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>jwt-auth API (local)</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
  <link rel="icon" type="image/png" href="/docs/favicon-16x16.png" sizes="16x16">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/swagger-initializer.js"></script>
</body>
</html>
"#;

/// `validatorUrl: null`: Swagger UI would otherwise send the document to
/// validator.swagger.io to draw a badge.
const INITIALIZER_JS: &str = r##"window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.yaml",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
};
"##;

/// Same-origin only: scripts and styles from here (Swagger UI sets inline styles, and its
/// icons are `data:` images), and "Try it out" calls this API.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub struct Docs {
    openapi: PathBuf,
    assets: PathBuf,
}

impl Docs {
    /// `None` when `OPENAPI_FILE` is unset (the routes are then not served at all).
    /// `route_paths`: the template's routes, which the docs routes must not shadow.
    pub fn from_env<'a>(route_paths: impl IntoIterator<Item = &'a str>) -> Result<Option<Self>, String> {
        let Some(openapi) = std::env::var_os(OPENAPI_FILE_ENV).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let assets = std::env::var_os(DOCS_ASSETS_DIR_ENV)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{OPENAPI_FILE_ENV} is set but {DOCS_ASSETS_DIR_ENV} is not"))?;
        for path in route_paths {
            if path == OPENAPI_PATH || path == DOCS_PATH || path.starts_with("/docs/") {
                return Err(format!("the template's route {path:?} clashes with the local API's documentation"));
            }
        }
        Ok(Some(Docs { openapi: openapi.into(), assets: assets.into() }))
    }

    /// The answer for a documentation route, or `None` for anything else.
    pub async fn answer(&self, method: &str, path: &str) -> Option<Answer> {
        if method != "GET" {
            return None;
        }
        let answer = match path {
            OPENAPI_PATH => match read(self.openapi.clone()).await {
                Ok(body) => ok("application/yaml; charset=utf-8", body),
                Err(e) => missing(&format!("cannot read {}: {e}", self.openapi.display())),
            },
            "/docs" | "/docs/" => {
                let mut answer = ok("text/html; charset=utf-8", INDEX_HTML.as_bytes().to_vec());
                answer.headers.push(("content-security-policy".into(), CONTENT_SECURITY_POLICY.into()));
                answer
            }
            "/docs/swagger-initializer.js" => ok("text/javascript; charset=utf-8", INITIALIZER_JS.as_bytes().to_vec()),
            _ => {
                let name = path.strip_prefix("/docs/")?;
                let (name, media_type) = ASSETS.iter().find(|(known, _)| *known == name)?;
                match read(self.assets.join(name)).await {
                    Ok(body) => ok(media_type, body),
                    Err(_) => missing(&format!(
                        "{name} is not in {}: run `make docs-assets` (scripts/docs_assets.py)",
                        self.assets.display()
                    )),
                }
            }
        };
        Some(answer)
    }
}

async fn read(path: PathBuf) -> std::io::Result<Vec<u8>> {
    tokio::task::spawn_blocking(move || std::fs::read(path)).await.unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

fn ok(media_type: &str, body: Vec<u8>) -> Answer {
    Answer {
        status: 200,
        headers: vec![
            ("content-type".into(), media_type.into()),
            // Served from the working tree: always the current files.
            ("cache-control".into(), "no-cache".into()),
            ("x-content-type-options".into(), "nosniff".into()),
        ],
        body,
    }
}

fn missing(message: &str) -> Answer {
    Answer {
        status: 404,
        headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
        body: format!("{message}\n").into_bytes(),
    }
}

//! What browsers need (CONTRACT.md Part 2, "CORS" and "Cookie mode"): CORS headers for the
//! configured origins, the preflight answer, the refresh-token cookie, and the CSRF check
//! for requests that authenticate with that cookie.
//!
//! Read from the environment once per cold start: `ALLOWED_ORIGINS` (comma-separated
//! `scheme://host[:port]`; empty: no CORS headers at all), `COOKIE_SAME_SITE` (`Strict`,
//! the default, or `None` for an API on another site than the page).
//!
//! The cookies carry the `__Host-` prefix: the browser keeps them only if they are
//! `Secure`, `Path=/` and name no `Domain`, so a sibling subdomain cannot plant one that
//! shadows ours (cookie tossing).

use lambda_http::http::{HeaderMap, HeaderValue, header};
use lambda_http::{Body, Request, Response};

use crate::config::{BrowserConfig, ConfigError};
use crate::error::AuthError;

pub use crate::config::per_function::{ENV_ALLOWED_ORIGINS, ENV_COOKIE_SAME_SITE};
pub const REFRESH_COOKIE: &str = "__Host-refresh_token";
/// The known-device credential (login's `device_token`), always `SameSite=Strict`.
pub const DEVICE_COOKIE: &str = "__Host-device";
/// The header a cookie-authenticated request must carry: a cross-site form cannot set it,
/// and a cross-origin script can only after a preflight the origin list allows.
pub const CSRF_HEADER: &str = "x-requested-with";
/// Browsers may cache a preflight answer this long (seconds).
pub const PREFLIGHT_MAX_AGE: u32 = 600;
const ALLOW_METHODS: &str = "GET, POST, DELETE, OPTIONS";
const ALLOW_HEADERS: &str = "Authorization, Content-Type, X-Requested-With";
/// Headers a page may read besides the CORS-safelisted ones.
const EXPOSE_HEADERS: &str = "Retry-After, WWW-Authenticate";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Strict,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Browser {
    allowed_origins: Vec<String>,
    same_site: SameSite,
}

impl Default for Browser {
    /// No CORS; a `Strict` refresh cookie.
    fn default() -> Self {
        Browser { allowed_origins: Vec::new(), same_site: SameSite::Strict }
    }
}

fn bad(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError { variable, problem: problem.into() }
}

/// `scheme://host[:port]` exactly as a browser sends it in `Origin` (lower case): no
/// path, no wildcard (credentials cannot be shared with `*`), nothing after the authority.
/// `https` only, but for loopback: a plain-HTTP origin elsewhere is one a network attacker
/// can speak for, and would get credentialed CORS. The template's `AllowedOrigins` pattern
/// admits the same (tests/test_template.py holds it to these cases).
fn valid_origin(origin: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else { return false };
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((inner, port)) => (&authority[..inner.len() + 2], port),
            None => return false,
        },
        None => authority.split_once(':').map_or((authority, ""), |(h, p)| (h, &authority[h.len()..][..p.len() + 1])),
    };
    let port_ok = port.is_empty()
        || port.strip_prefix(':').is_some_and(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(ipv6) => !ipv6.is_empty() && ipv6.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'a'..=b'f' | b':')),
        None => {
            !host.is_empty()
                && host.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-'))
        }
    };
    let scheme_ok = match scheme {
        "https" => true,
        "http" => matches!(host, "127.0.0.1" | "localhost" | "[::1]"),
        _ => false,
    };
    scheme_ok && host_ok && port_ok
}

impl Browser {
    /// Checks `config`; an error names the variable at fault.
    pub fn new(config: BrowserConfig) -> Result<Self, ConfigError> {
        Self::from_values(config.allowed_origins, config.cookie_same_site)
    }

    pub fn from_values(origins: Option<String>, same_site: Option<String>) -> Result<Self, ConfigError> {
        let mut allowed_origins = Vec::new();
        for origin in origins.unwrap_or_default().split(',').map(str::trim).filter(|o| !o.is_empty()) {
            if !valid_origin(origin) {
                return Err(bad(
                    ENV_ALLOWED_ORIGINS,
                    format!(
                        "{origin:?} is not an allowed origin; want https://host[:port] in lower case (http:// on \
                         loopback only), no path, no wildcard"
                    ),
                ));
            }
            allowed_origins.push(origin.to_string());
        }
        let same_site = match same_site.as_deref().map(str::trim) {
            None | Some("") | Some("Strict") => SameSite::Strict,
            Some("None") => SameSite::None,
            Some(other) => return Err(bad(ENV_COOKIE_SAME_SITE, format!("must be Strict or None, got {other:?}"))),
        };
        Ok(Browser { allowed_origins, same_site })
    }

    fn origin_of<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
    }

    /// The request's `Origin` if it is one of the allowed ones (compared exactly).
    pub fn allowed_origin<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        self.origin_of(headers).filter(|o| self.allowed_origins.iter().any(|a| a == o))
    }

    /// Adds the CORS headers an answer to `request_headers` gets: for an allowed origin,
    /// that origin (never `*`), credentials, and the headers a page may read; `Vary:
    /// Origin` whenever CORS is configured, so caches keep answers per origin.
    pub fn with_cors(&self, request_headers: &HeaderMap, mut res: Response<Body>) -> Response<Body> {
        if self.allowed_origins.is_empty() {
            return res;
        }
        let origin = self.allowed_origin(request_headers).and_then(|o| HeaderValue::from_str(o).ok());
        let h = res.headers_mut();
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(origin) = origin {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
            h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE_HEADERS));
        }
        res
    }

    /// The answer to an `OPTIONS` preflight: 204, and for an allowed origin what it may
    /// send and for how long the browser may remember it. Another origin gets no CORS
    /// header, so its browser refuses to send the real request.
    pub fn preflight(&self, request_headers: &HeaderMap) -> Response<Body> {
        let mut res = super::no_content();
        if self.allowed_origin(request_headers).is_some() {
            let h = res.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOW_METHODS));
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOW_HEADERS));
            h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(PREFLIGHT_MAX_AGE));
        }
        self.with_cors(request_headers, res)
    }

    /// `Set-Cookie` for `name` (one of ours, `__Host-`: Secure, Path=/, no Domain).
    fn cookie(name: &'static str, value: &str, max_age: u64, same_site: SameSite) -> HeaderValue {
        let same_site = match same_site {
            SameSite::Strict => "Strict",
            SameSite::None => "None",
        };
        let text = format!("{name}={value}; HttpOnly; Secure; Path=/; Max-Age={max_age}; SameSite={same_site}");
        // A JWT is always valid header text; anything else is not sent.
        HeaderValue::from_str(&text).unwrap_or_else(|_| {
            HeaderValue::from_str(&format!("{name}=; HttpOnly; Secure; Path=/; Max-Age=0"))
                .unwrap_or_else(|_| HeaderValue::from_static(""))
        })
    }

    /// `Set-Cookie` carrying a refresh token for `max_age` seconds.
    pub fn refresh_cookie(&self, token: &str, max_age: u64) -> HeaderValue {
        Self::cookie(REFRESH_COOKIE, token, max_age, self.same_site)
    }

    /// `Set-Cookie` that deletes the refresh cookie (same name, path and attributes).
    pub fn clearing_cookie(&self) -> HeaderValue {
        Self::cookie(REFRESH_COOKIE, "", 0, self.same_site)
    }

    /// `Set-Cookie` carrying a known-device credential for `max_age` seconds: `Strict`
    /// whatever the refresh cookie's setting, since only a login made from the API's own
    /// site (or a JSON client's `device_token`) needs it.
    pub fn device_cookie(&self, token: &str, max_age: u64) -> HeaderValue {
        Self::cookie(DEVICE_COOKIE, token, max_age, SameSite::Strict)
    }

    /// The public sign-in routes (register, login, refresh) refuse a request whose `Origin`
    /// is present and not an allowed one, before any other work: otherwise any page could
    /// make its visitors' browsers post credentials (a form post needs no CORS), and so
    /// fill a chosen user's failed-login counters from many addresses.
    pub fn check_origin(&self, request_headers: &HeaderMap) -> Result<(), AuthError> {
        if self.foreign_origin(request_headers) { Err(AuthError::OriginRefused) } else { Ok(()) }
    }

    /// The request has an `Origin`, and it is not an allowed one.
    fn foreign_origin(&self, request_headers: &HeaderMap) -> bool {
        self.origin_of(request_headers).is_some() && self.allowed_origin(request_headers).is_none()
    }

    /// A request that authenticates with the cookie must carry `X-Requested-With` and, if
    /// it has an `Origin`, an allowed one: a cross-site form can do neither. Checked
    /// before anything else, so a refused request changes nothing.
    pub fn check_csrf(&self, request_headers: &HeaderMap) -> Result<(), AuthError> {
        if !request_headers.contains_key(CSRF_HEADER) || self.foreign_origin(request_headers) {
            return Err(AuthError::CsrfRejected);
        }
        Ok(())
    }
}

/// A cookie that came more than once: one was planted beside ours (a cookie of another
/// path or domain), and which one the browser sent first says nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepeatedCookie;

/// The value of cookie `name` in the request's `Cookie` header(s): `None` if absent (or
/// empty), refused if it appears more than once.
pub fn cookie_of(req: &Request, name: &str) -> Result<Option<String>, RepeatedCookie> {
    let mut values = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(n, _)| *n == name)
        .map(|(_, value)| value.trim());
    let first = values.next();
    if values.next().is_some() {
        return Err(RepeatedCookie);
    }
    Ok(first.filter(|v| !v.is_empty()).map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn browser(origins: &str) -> Browser {
        Browser::from_values(Some(origins.into()), None).unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_listed_origins_get_cors_headers_and_never_a_wildcard() {
        let b = browser("https://app.example.com, http://127.0.0.1:3001");
        let ok = b.with_cors(&headers(&[("origin", "https://app.example.com")]), super::super::no_content());
        assert_eq!(ok.headers()["access-control-allow-origin"], "https://app.example.com");
        assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
        assert_eq!(ok.headers()["vary"], "Origin");
        for other in ["https://evil.example", "https://app.example.com.evil.example", "null", "HTTPS://APP.EXAMPLE.COM"]
        {
            let res = b.with_cors(&headers(&[("origin", other)]), super::super::no_content());
            assert!(!res.headers().contains_key("access-control-allow-origin"), "{other}");
            assert!(!res.headers().contains_key("access-control-allow-credentials"), "{other}");
        }
        let none =
            Browser::default().with_cors(&headers(&[("origin", "https://x.example")]), super::super::no_content());
        assert!(none.headers().keys().all(|k| !k.as_str().starts_with("access-control") && k != "vary"));
    }

    /// The cases tests/test_template.py holds the template's `AllowedOrigins` pattern to.
    pub(crate) const ORIGIN_CASES: [(&str, bool); 18] = [
        ("https://app.example.com", true),
        ("https://app.example.com:8443", true),
        ("https://[2001:db8::1]", true),
        ("http://127.0.0.1:3001", true),
        ("http://localhost:8080", true),
        ("http://[::1]:3001", true),
        ("http://localhost", true),
        ("http://app.example.com", false),
        ("http://127.0.0.2:3001", false),
        ("HTTPS://APP.EXAMPLE.COM", false),
        ("https://App.example.com", false),
        ("*", false),
        ("https://*.example.com", false),
        ("https://app.example.com/", false),
        ("https://a.example.com/path", false),
        ("app.example.com", false),
        ("ftp://x", false),
        ("https://app.example.com:123456", false),
    ];

    #[test]
    fn origins_are_https_or_loopback_http_in_lower_case() {
        for (origin, ok) in ORIGIN_CASES {
            assert_eq!(valid_origin(origin), ok, "{origin}");
        }
    }

    #[test]
    fn origins_are_validated_at_start() {
        for bad in ["*", "https://app.example.com/", "app.example.com", "https://a.example.com/path", "ftp://x"] {
            let e = Browser::from_values(Some(bad.into()), None).unwrap_err();
            assert_eq!(e.variable, ENV_ALLOWED_ORIGINS, "{bad}");
        }
        let e = Browser::from_values(Some("http://app.example.com".into()), None).unwrap_err();
        assert!(e.problem.contains("https"), "{}", e.problem);
        assert!(Browser::from_values(Some("http://[::1]:3001,https://a.example".into()), None).is_ok());
        assert_eq!(Browser::from_values(None, Some("Lax".into())).unwrap_err().variable, ENV_COOKIE_SAME_SITE);
    }

    #[test]
    fn preflight_tells_allowed_origins_what_they_may_send() {
        let b = browser("https://app.example.com");
        let res = b.preflight(&headers(&[("origin", "https://app.example.com")]));
        assert_eq!(res.status(), 204);
        let h = res.headers();
        for needed in ["Authorization", "Content-Type", "X-Requested-With"] {
            assert!(h["access-control-allow-headers"].to_str().unwrap().contains(needed));
        }
        assert!(h["access-control-allow-methods"].to_str().unwrap().contains("POST"));
        assert_eq!(h["access-control-max-age"], "600");
        let other = b.preflight(&headers(&[("origin", "https://evil.example")]));
        assert_eq!(other.status(), 204);
        assert!(other.headers().keys().all(|k| !k.as_str().starts_with("access-control")));
    }

    #[test]
    fn the_cookies_are_out_of_scripts_reach_and_host_only() {
        let b = Browser::from_values(None, Some("None".into())).unwrap();
        assert_eq!(
            b.refresh_cookie("abc.def.ghi", 3600),
            "__Host-refresh_token=abc.def.ghi; HttpOnly; Secure; Path=/; Max-Age=3600; SameSite=None"
        );
        assert_eq!(
            Browser::default().clearing_cookie(),
            "__Host-refresh_token=; HttpOnly; Secure; Path=/; Max-Age=0; SameSite=Strict"
        );
        // The device cookie is Strict even where the refresh cookie is not.
        assert_eq!(
            b.device_cookie("d.e.v", 86_400),
            "__Host-device=d.e.v; HttpOnly; Secure; Path=/; Max-Age=86400; SameSite=Strict"
        );
    }

    #[test]
    fn cookie_authenticated_requests_need_the_header_and_an_allowed_origin_if_any() {
        let b = browser("https://app.example.com");
        assert!(
            b.check_csrf(&headers(&[("x-requested-with", "fetch"), ("origin", "https://app.example.com")])).is_ok()
        );
        assert!(b.check_csrf(&headers(&[("x-requested-with", "fetch")])).is_ok(), "same-origin or non-browser");
        for refused in [
            headers(&[]),
            headers(&[("origin", "https://app.example.com")]),
            headers(&[("x-requested-with", "fetch"), ("origin", "https://evil.example")]),
        ] {
            assert_eq!(b.check_csrf(&refused).unwrap_err().status_and_code(), (403, "invalid_request"));
        }
    }

    #[test]
    fn the_refresh_cookie_is_found_among_others() {
        let req = |cookie: &str| {
            lambda_http::http::Request::builder().header("cookie", cookie).body(Body::Empty).map(Request::from).unwrap()
        };
        let of = |cookie: &str| cookie_of(&req(cookie), REFRESH_COOKIE);
        assert_eq!(of("a=1; __Host-refresh_token=tok; b=2"), Ok(Some("tok".into())));
        assert_eq!(of("__Host-refresh_token="), Ok(None));
        assert_eq!(of("x__Host-refresh_token=tok; refresh_token=old"), Ok(None), "other names are not ours");
        // Two of them (one planted with another Path or Domain): neither is trusted.
        assert_eq!(of("__Host-refresh_token=mine; __Host-refresh_token=planted"), Err(RepeatedCookie));
        assert_eq!(of("__Host-refresh_token=mine; __Host-refresh_token="), Err(RepeatedCookie));
    }
}

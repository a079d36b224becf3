//! Optional authentication of the admin API (`[admin] token_file`, `user`
//! and `password_file`): a bearer token for scripts, Prometheus and
//! `sipedge ctl`, HTTP basic authentication for a browser, either or both.
//!
//! `/health` is always open (a BGP speaker or load balancer asks it, and
//! it tells little), and so is the dashboard's page when only a token is
//! set (it holds no data: the page asks for the token when the API
//! answers 401). With basic authentication the page is closed too, so
//! that the browser asks for the password before anything.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// What the API accepts.
#[derive(Debug)]
pub struct Auth {
    /// The bearer token.
    token: Option<Vec<u8>>,
    /// `user:password`, as a basic `Authorization` carries it decoded.
    basic: Option<Vec<u8>>,
}

impl Auth {
    /// The credentials `admin` names, read from their files (the first
    /// line, trimmed); `None` when it names none. An unreadable or empty
    /// file is an error: the node would otherwise run open or locked.
    pub fn load(admin: &edge::config::Admin) -> Result<Option<Arc<Auth>>, String> {
        let token = match &admin.token_file {
            Some(p) => Some(read("token_file", p)?),
            None => None,
        };
        let basic = match &admin.basic {
            Some((user, p)) => {
                let password = read("password_file", p)?;
                let mut pair = format!("{user}:").into_bytes();
                pair.extend_from_slice(&password);
                Some(pair)
            }
            None => None,
        };
        Ok((token.is_some() || basic.is_some()).then(|| Arc::new(Auth { token, basic })))
    }

    /// Whether `headers` carry a credential this API accepts.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let (scheme, value) = given.split_once(' ').unwrap_or((given, ""));
        let value = value.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return self
                .token
                .as_ref()
                .is_some_and(|t| bool::from(t.as_slice().ct_eq(value.as_bytes())));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let Ok(pair) = base64::engine::general_purpose::STANDARD.decode(value) else {
                return false;
            };
            return self
                .basic
                .as_ref()
                .is_some_and(|b| bool::from(b.as_slice().ct_eq(&pair)));
        }
        false
    }

    /// Whether `path` is served without a credential.
    fn open(&self, path: &str) -> bool {
        path == "/health" || (self.basic.is_none() && super::dashboard::is_page(path))
    }

    /// The 401 answer: a basic challenge when basic authentication is on
    /// (a browser then asks for the password), else a bearer one.
    fn refuse(&self) -> Response {
        let challenge = if self.basic.is_some() {
            "Basic realm=\"sipedge\", charset=\"UTF-8\""
        } else {
            "Bearer realm=\"sipedge\""
        };
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, challenge)],
            axum::Json(super::json::ErrorBody {
                error: "this admin API asks for credentials ([admin] token_file, user)".into(),
            }),
        )
            .into_response()
    }
}

/// The first line of a credential's file, trimmed; an unreadable or empty
/// file is an error naming `key`.
fn read(key: &str, path: &std::path::Path) -> Result<Vec<u8>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("[admin] {key} {}: cannot read it: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return Err(format!(
            "[admin] {key} {}: the file is empty",
            path.display()
        ));
    }
    Ok(line.as_bytes().to_vec())
}

/// The `Authorization` value a client (`sipedge ctl`) sends to the API
/// `admin` describes: its bearer token, else its basic pair; `None` when
/// it asks for none.
pub fn authorization(admin: &edge::config::Admin) -> Result<Option<String>, String> {
    if let Some(p) = &admin.token_file {
        return Ok(Some(format!(
            "Bearer {}",
            String::from_utf8_lossy(&read("token_file", p)?)
        )));
    }
    if let Some((user, p)) = &admin.basic {
        let mut pair = format!("{user}:").into_bytes();
        pair.extend_from_slice(&read("password_file", p)?);
        let b64 = base64::engine::general_purpose::STANDARD.encode(pair);
        return Ok(Some(format!("Basic {b64}")));
    }
    Ok(None)
}

/// The middleware: passes what is open or carries a credential, answers
/// 401 otherwise.
pub async fn guard(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    if auth.open(request.uri().path()) || auth.allows(request.headers()) {
        next.run(request).await
    } else {
        auth.refuse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(token: Option<&str>, basic: Option<&str>) -> Auth {
        Auth {
            token: token.map(|t| t.as_bytes().to_vec()),
            basic: basic.map(|b| b.as_bytes().to_vec()),
        }
    }

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().expect("header value"));
        h
    }

    #[test]
    fn a_bearer_token_or_a_basic_pair_is_accepted_exactly() {
        let a = auth(Some("s3cret"), Some("noc:pw"));
        assert!(a.allows(&with("Bearer s3cret")));
        assert!(a.allows(&with("bearer  s3cret")));
        assert!(!a.allows(&with("Bearer s3cre")));
        assert!(!a.allows(&with("Bearer s3cret2")));
        assert!(a.allows(&with("Basic bm9jOnB3"))); // noc:pw
        assert!(!a.allows(&with("Basic bm9jOnB4"))); // noc:px
        assert!(!a.allows(&with("Basic !!!")));
        assert!(!a.allows(&with("Digest x")));
        assert!(!a.allows(&HeaderMap::new()));
        let token_only = auth(Some("t"), None);
        assert!(!token_only.allows(&with("Basic bm9jOnB3")));
    }

    #[test]
    fn health_is_open_and_the_page_only_without_basic() {
        let token_only = auth(Some("t"), None);
        assert!(token_only.open("/health"));
        assert!(token_only.open("/"));
        assert!(!token_only.open("/api/destinations"));
        assert!(!token_only.open("/metrics"));
        let basic = auth(None, Some("a:b"));
        assert!(basic.open("/health"));
        assert!(!basic.open("/"));
    }
}

//! Bearer-token authentication. Tokens are `sb_` + 43 characters of base64url
//! (256 random bits); the database keeps only their SHA-256.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use switchboard_core::new_id;
use switchboard_core::time::now_ms;
use switchboard_store::{ApiToken, Store, StoreError, TokenRole};
use utoipa::Modify;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::ApiState;
use crate::error::ApiError;

/// SHA-256 of a token, hex encoded.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Mint a token and store its hash. The token is returned once, to be shown once.
pub async fn create_token(
    store: &Store,
    name: &str,
    role: TokenRole,
) -> Result<SecretString, StoreError> {
    let token = mint();
    store
        .insert_token(&ApiToken {
            id: new_id(),
            name: name.to_owned(),
            token_hash: hash_token(&token),
            role,
            created_at: now_ms(),
        })
        .await?;
    Ok(SecretString::from(token))
}

/// Mint an agent token scoped to `connections` and store its hash. The
/// token is returned once, to be shown once.
pub async fn create_agent_token(
    store: &Store,
    name: &str,
    connections: &[String],
) -> Result<(SecretString, switchboard_store::Agent), StoreError> {
    let token = mint();
    let row = ApiToken {
        id: new_id(),
        name: name.to_owned(),
        token_hash: hash_token(&token),
        role: TokenRole::Agent,
        created_at: now_ms(),
    };
    store.insert_agent(&row, connections).await?;
    let agent = switchboard_store::Agent {
        id: row.id,
        name: row.name,
        connections: connections.to_vec(),
        created_at: row.created_at,
        revoked_at: None,
    };
    Ok((SecretString::from(token), agent))
}

fn mint() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source is unavailable");
    format!(
        "sb_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Create the admin token on first start. Returns it only when it was created.
pub async fn bootstrap_admin_token(store: &Store) -> Result<Option<SecretString>, StoreError> {
    if store.count_tokens().await? > 0 {
        return Ok(None);
    }
    create_token(store, "admin", TokenRole::Admin)
        .await
        .map(Some)
}

/// Marks a request the dashboard forwards for a signed-in owner, after its
/// own session and CSRF checks. It is a request extension, which only code
/// in this process can set: no client can send one.
#[derive(Debug, Clone, Copy)]
pub struct DashboardOwner(());

#[allow(clippy::new_without_default)] // constructed on purpose, not by default
impl DashboardOwner {
    /// Only the dashboard's proxy should call this, after checking the session.
    pub fn new() -> DashboardOwner {
        DashboardOwner(())
    }
}

pub(crate) async fn require_token(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if request.extensions().get::<DashboardOwner>().is_some() {
        return Ok(next.run(request).await);
    }
    match find_bearer(&state, request.headers()).await? {
        token if token.role == TokenRole::Admin => Ok(next.run(request).await),
        _ => Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            "this is an agent token: it works only at /mcp (the MCP server); the REST API needs the admin token",
        )),
    }
}

/// `/mcp`: the admin token sees every connection, an agent token its own.
/// Checked on every request, so a revoked token is refused at once.
pub(crate) async fn require_mcp_token(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = find_bearer(&state, request.headers()).await?;
    let scope = match token.role {
        TokenRole::Admin => switchboard_mcp::Scope::Owner,
        TokenRole::Agent => switchboard_mcp::Scope::Agent { token_id: token.id },
    };
    request.extensions_mut().insert(scope);
    Ok(next.run(request).await)
}

async fn find_bearer(
    state: &ApiState,
    headers: &axum::http::HeaderMap,
) -> Result<ApiToken, ApiError> {
    let header = headers.get(AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized(
            "send `Authorization: Bearer <token>`; the admin token was printed at first start",
        )
    })?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(|t| SecretString::from(t.trim().to_owned()))
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
        })?;
    let found = state
        .engine
        .store()
        .find_token(&hash_token(token.expose_secret()))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    found.ok_or_else(|| ApiError::unauthorized("the bearer token is unknown or revoked"))
}

pub(crate) struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(hash_token("sb_x"), hash_token("sb_y"));
    }
}

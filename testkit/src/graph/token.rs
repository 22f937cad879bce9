//! The OAuth token endpoint: client secrets and certificate assertions (RS256 JWTs
//! checked against the registered public key).

use std::collections::HashMap;
use std::time::Instant;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::*;

/// Checks a client assertion as Entra ID does; `Err((aadsts, description))`.
pub(super) fn verify_assertion(
    s: &mut St,
    jwt: &str,
    client_id: Option<&String>,
) -> Result<(), (&'static str, String)> {
    let Some((thumb, public_key)) = s.certificate.clone() else {
        return Err((
            "AADSTS700027",
            "No certificate is registered for the app.".into(),
        ));
    };
    let header = jsonwebtoken::decode_header(jwt)
        .map_err(|e| ("AADSTS50027", format!("Invalid JWT token: {e}")))?;
    if header.x5t_s256.as_deref() != Some(thumb.as_str()) {
        return Err((
            "AADSTS700027",
            "The certificate with identifier used to sign the client assertion is not registered on application.".into(),
        ));
    }
    if !matches!(
        header.alg,
        jsonwebtoken::Algorithm::RS256 | jsonwebtoken::Algorithm::PS256
    ) {
        return Err((
            "AADSTS5002723",
            format!("Invalid JWT header: alg {:?}", header.alg),
        ));
    }
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(&public_key).expect("registered public key");
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.leeway = 0;
    v.validate_nbf = true;
    v.set_audience(&[s.base_token_url()]);
    v.set_issuer(&[CLIENT_ID]);
    v.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
    let data = jsonwebtoken::decode::<Value>(jwt, &key, &v).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::ExpiredSignature
        | jsonwebtoken::errors::ErrorKind::ImmatureSignature => (
            "AADSTS700024",
            "Client assertion is not within its valid time range.".to_string(),
        ),
        jsonwebtoken::errors::ErrorKind::InvalidSignature => (
            "AADSTS700027",
            "Client assertion contains an invalid signature.".to_string(),
        ),
        k => ("AADSTS50027", format!("Invalid JWT token: {k:?}")),
    })?;
    let claims = data.claims;
    if claims["sub"] != CLIENT_ID || client_id.is_some_and(|c| c != CLIENT_ID) {
        return Err((
            "AADSTS700021",
            "Client assertion application identifier doesn't match 'client_id' parameter.".into(),
        ));
    }
    let jti = claims["jti"].as_str().unwrap_or("").to_string();
    if jti.is_empty() || !s.assertions.insert(jti) {
        return Err((
            "AADSTS700025",
            "The client assertion was used before (jti replay).".into(),
        ));
    }
    Ok(())
}

pub(super) fn token(s: &mut St, path: &str, h: &HeaderMap, body: &[u8]) -> Response {
    let echo = if s.echo_token_requests {
        format!(" (request: {})", String::from_utf8_lossy(body))
    } else {
        String::new()
    };
    let err = |status: StatusCode, code: &str, aad: &str, desc: &str| {
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"error": code, "error_description": format!("{aad}: {desc}{echo}"), "error_codes": [aad.trim_start_matches("AADSTS").parse::<u64>().unwrap_or(0)]}).to_string(),
        )
            .into_response()
    };
    if !path.starts_with(&format!("/{TENANT}/")) {
        return err(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS90002",
            "Tenant not found.",
        );
    }
    let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return err(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "AADSTS70003",
            "The app requested an unsupported grant type.",
        );
    }
    if form.get("scope").map(String::as_str) != Some("https://graph.microsoft.com/.default") {
        return err(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "AADSTS70011",
            "The provided value for scope is not valid.",
        );
    }
    let basic = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .map(str::to_string);
    if form.get("client_assertion_type").map(String::as_str)
        == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        let jwt = form.get("client_assertion").cloned().unwrap_or_default();
        if let Err((aad, desc)) = verify_assertion(s, &jwt, form.get("client_id")) {
            return err(StatusCode::UNAUTHORIZED, "invalid_client", aad, &desc);
        }
        return issue(s);
    }
    let (id, secret) = match (form.get("client_id"), form.get("client_secret"), basic) {
        (Some(id), Some(sec), _) => (id.clone(), sec.clone()),
        (_, _, Some(_b)) => (CLIENT_ID.to_string(), String::new()),
        _ => {
            return err(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "AADSTS900144",
                "The request body must contain the client_secret or client_assertion parameter.",
            );
        }
    };
    if id != CLIENT_ID {
        return err(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "AADSTS700016",
            "Application not found in the directory.",
        );
    }
    if secret != CLIENT_SECRET {
        return err(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS7000215",
            "Invalid client secret provided.",
        );
    }
    issue(s)
}

pub(super) fn issue(s: &mut St) -> Response {
    s.issued += 1;
    let tok = format!("fake-token-{}-{}", s.issued, s.next_id);
    s.next_id += 1;
    s.tokens.insert(tok.clone(), Instant::now() + s.token_ttl);
    json_ok(
        json!({"token_type": "Bearer", "expires_in": s.token_ttl.as_secs(), "ext_expires_in": s.token_ttl.as_secs(), "access_token": tok}),
    )
}

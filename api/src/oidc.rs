//! OpenID Connect bearer tokens: JWT access tokens of an identity provider (Entra ID,
//! Keycloak, any OpenID provider), beside the static tokens.
//!
//! The provider's discovery document (`<issuer>/.well-known/openid-configuration`) names
//! its key set; both are fetched on the first token and cached. A token signed with a
//! key id the cache does not know makes one refetch (key rotation), at most one every
//! [`REFETCH_EVERY`], so unknown key ids cannot make the daemon hammer the provider.
//!
//! A token is accepted when: its header says RS256 or ES256 (never `none`, never an
//! HMAC that a public key could forge) and names a published key of that type; the
//! signature verifies; `iss` is the configured issuer and `aud` one of the audiences;
//! `exp` (required) and `nbf` hold with [`LEEWAY_SECS`] of leeway; and, when configured,
//! the client (`azp`, `client_id` or `appid`) is allowed. The roles claim (a string or an
//! array, found by a dotted path) maps to roles through `role_map` (or names them); the
//! highest one counts. The principal is `oidc:` + `preferred_username`, else `sub`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tokio::sync::Mutex;
use tributary_config::{OidcConfig, Role};

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;
/// Key sets are fetched again at most this often (on an unknown key id).
pub const REFETCH_EVERY: Duration = Duration::from_secs(10);

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OidcError {
    /// Not a valid token for this API (401, counted as a failed authentication).
    Invalid(String),
    /// A valid token that grants no role here (403).
    NoRole(String),
    /// The provider's keys cannot be had (503; not the caller's fault).
    Unavailable(String),
}

/// Who a verified token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub principal: String,
    pub role: Role,
}

struct Keys {
    by_kid: HashMap<String, Jwk>,
    fetched: Option<Instant>,
}

/// The provider's endpoints, from its discovery document.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub authorization: String,
    pub token: String,
    jwks: String,
}

/// The discovery document is read again after this long.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

/// What the token endpoint answered to an authorization code.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub id_token: String,
}

/// A verifier for one provider configuration.
pub struct Oidc {
    cfg: OidcConfig,
    http: reqwest::Client,
    keys: Mutex<Keys>,
    endpoints: Mutex<Option<(Endpoints, Instant)>>,
}

impl Oidc {
    pub fn new(cfg: OidcConfig) -> Oidc {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Oidc {
            cfg,
            http,
            keys: Mutex::new(Keys {
                by_kid: HashMap::new(),
                fetched: None,
            }),
            endpoints: Mutex::new(None),
        }
    }

    pub fn config(&self) -> &OidcConfig {
        &self.cfg
    }

    async fn get_json(&self, url: &str) -> Result<Value, OidcError> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| OidcError::Unavailable(format!("GET {url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(OidcError::Unavailable(format!(
                "GET {url}: HTTP {}",
                resp.status()
            )));
        }
        resp.json()
            .await
            .map_err(|e| OidcError::Unavailable(format!("GET {url}: not JSON: {e}")))
    }

    /// The provider's endpoints (its discovery document, cached for [`DISCOVERY_TTL`]).
    /// Each must be https or on the issuer's own origin.
    pub async fn endpoints(&self) -> Result<Endpoints, OidcError> {
        let mut cached = self.endpoints.lock().await;
        if let Some((e, at)) = cached.as_ref()
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(e.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", self.cfg.issuer);
        let doc = self.get_json(&url).await?;
        let issuer = doc["issuer"].as_str().unwrap_or_default();
        if issuer.trim_end_matches('/') != self.cfg.issuer {
            return Err(OidcError::Unavailable(format!(
                "the discovery document names issuer `{issuer}`, not `{}`",
                self.cfg.issuer
            )));
        }
        let endpoint = |name: &str| -> Result<String, OidcError> {
            let url = doc[name].as_str().unwrap_or_default();
            if url.starts_with("https://") || same_origin(url, &self.cfg.issuer) {
                Ok(url.to_string())
            } else {
                Err(OidcError::Unavailable(format!(
                    "the discovery document's {name} `{url}` is neither https nor on the issuer's own origin"
                )))
            }
        };
        let e = Endpoints {
            jwks: endpoint("jwks_uri")?,
            // only sign-in needs these two; their absence fails sign-in, not tokens
            authorization: endpoint("authorization_endpoint").unwrap_or_default(),
            token: endpoint("token_endpoint").unwrap_or_default(),
        };
        *cached = Some((e.clone(), Instant::now()));
        Ok(e)
    }

    /// The key set the discovery document names.
    async fn fetch_keys(&self) -> Result<HashMap<String, Jwk>, OidcError> {
        let jwks = self.endpoints().await?.jwks;
        let set = self.get_json(&jwks).await?;
        Ok(parse_key_set(&set))
    }

    /// The published key `kid`, fetching the set again when it is not known (at most
    /// once every [`REFETCH_EVERY`]).
    async fn key(&self, kid: &str) -> Result<Option<Jwk>, OidcError> {
        let mut keys = self.keys.lock().await;
        if let Some(k) = keys.by_kid.get(kid) {
            return Ok(Some(k.clone()));
        }
        if keys.fetched.is_some_and(|t| t.elapsed() < REFETCH_EVERY) {
            return Ok(None);
        }
        keys.fetched = Some(Instant::now());
        keys.by_kid = self.fetch_keys().await?;
        Ok(keys.by_kid.get(kid).cloned())
    }

    /// Verifies `token` and says who it names and with which role.
    pub async fn verify(&self, token: &str) -> Result<Identity, OidcError> {
        let claims = self.decode(token, &self.cfg.audiences).await?;
        identity(&self.cfg, &claims)
    }

    /// [`Oidc::verify`], and when the token expires (its `exp`, Unix seconds).
    pub async fn verify_until(&self, token: &str) -> Result<(Identity, i64), OidcError> {
        let claims = self.decode(token, &self.cfg.audiences).await?;
        let exp = claims["exp"].as_i64().unwrap_or_default();
        Ok((identity(&self.cfg, &claims)?, exp))
    }

    /// Verifies an ID token of a sign-in: signed by the provider, issued to `client_id`,
    /// for this sign-in's `nonce`, not expired. Returns its claims.
    pub async fn verify_id_token(
        &self,
        token: &str,
        client_id: &str,
        nonce: &str,
    ) -> Result<Value, OidcError> {
        let claims = self
            .decode(token, std::slice::from_ref(&client_id.to_string()))
            .await
            .map_err(|e| match e {
                OidcError::Invalid(why) => OidcError::Invalid(format!("the ID token: {why}")),
                other => other,
            })?;
        id_token_binds(&claims, client_id, nonce)?;
        Ok(claims)
    }

    /// Trades a sign-in's authorization code for tokens at the token endpoint (with
    /// the PKCE verifier; a confidential client authenticates with HTTP Basic).
    pub async fn exchange(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<Tokens, OidcError> {
        let Some(si) = &self.cfg.sign_in else {
            return Err(OidcError::Unavailable(
                "api.oidc.sign_in is not configured".into(),
            ));
        };
        let token_url = self.endpoints().await?.token;
        if token_url.is_empty() {
            return Err(OidcError::Unavailable(
                "the provider's discovery document names no token_endpoint".into(),
            ));
        }
        // (the serializer is not Send: the body is made before any await)
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "authorization_code")
                .append_pair("code", code)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("code_verifier", verifier);
            if let Some(r) = &si.resource {
                form.append_pair("resource", r);
            }
            // a public client names itself; a confidential one authenticates (Basic)
            if si.client_secret.is_none() {
                form.append_pair("client_id", &si.client_id);
            }
            form.finish()
        };
        let mut req = self
            .http
            .post(&token_url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(secret) = &si.client_secret {
            // RFC 6749 2.3.1: both halves form-encoded before Basic
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            req = req.basic_auth(enc(&si.client_id), Some(enc(secret.expose())));
        }
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| OidcError::Unavailable(format!("POST {token_url}: {e}")))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let why = token_error(&body);
            return Err(if status.is_server_error() {
                OidcError::Unavailable(format!("the token endpoint answered HTTP {status}"))
            } else {
                OidcError::Invalid(format!("the provider refused the sign-in: {why}"))
            });
        }
        serde_json::from_value::<Tokens>(body).map_err(|_| {
            OidcError::Invalid(
                "the provider's token answer has no access_token and id_token (is `openid` among the scopes?)".into(),
            )
        })
    }

    /// Verifies `token`'s signature, issuer, one of `audiences`, `exp` and `nbf`.
    async fn decode(&self, token: &str, audiences: &[String]) -> Result<Value, OidcError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| {
            OidcError::Invalid(match header_alg(token) {
                Some(alg) => {
                    format!("signature algorithm `{alg}` is not accepted (RS256 or ES256)")
                }
                None => format!("not a JWT: {e}"),
            })
        })?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(OidcError::Invalid(format!(
                "signature algorithm {:?} is not accepted (RS256 or ES256)",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| OidcError::Invalid("the token names no key (`kid`)".into()))?;
        let jwk = self.key(&kid).await?.ok_or_else(|| {
            OidcError::Invalid(format!("key `{kid}` is not one the issuer publishes"))
        })?;
        let fits = matches!(
            (&jwk.algorithm, header.alg),
            (AlgorithmParameters::RSA(_), Algorithm::RS256)
                | (AlgorithmParameters::EllipticCurve(_), Algorithm::ES256)
        );
        if !fits {
            return Err(OidcError::Invalid(format!(
                "key `{kid}` is not a key for {:?}",
                header.alg
            )));
        }
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|e| OidcError::Invalid(format!("key `{kid}`: {e}")))?;
        let mut v = Validation::new(header.alg);
        v.leeway = LEEWAY_SECS;
        v.validate_nbf = true;
        v.set_issuer(&[self.cfg.issuer.clone(), format!("{}/", self.cfg.issuer)]);
        v.set_audience(audiences);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        Ok(jsonwebtoken::decode::<Value>(token, &key, &v)
            .map_err(|e| OidcError::Invalid(describe(&e)))?
            .claims)
    }
}

/// An ID token belongs to this sign-in: its `nonce` is the one sent, and when it
/// names several audiences its `azp` is this client (OpenID Connect Core 3.1.3.7).
pub fn id_token_binds(claims: &Value, client_id: &str, nonce: &str) -> Result<(), OidcError> {
    if !claims["nonce"]
        .as_str()
        .is_some_and(|n| crate::session::same(n, nonce))
    {
        return Err(OidcError::Invalid(
            "the ID token is not for this sign-in (nonce)".into(),
        ));
    }
    let several = claims["aud"].as_array().is_some_and(|a| a.len() > 1);
    if several && claims["azp"].as_str() != Some(client_id) {
        return Err(OidcError::Invalid(
            "the ID token was issued to another client (azp)".into(),
        ));
    }
    Ok(())
}

/// The provider's reason in a token endpoint's error answer (RFC 6749 5.2), cut short
/// and with any configured secret masked.
pub fn token_error(body: &Value) -> String {
    let error = body["error"].as_str().unwrap_or("an error");
    let text = match body["error_description"].as_str() {
        Some(d) => format!("{error}: {d}"),
        None => error.to_string(),
    };
    let text: String = text.chars().filter(|c| !c.is_control()).take(300).collect();
    tributary_config::redact::redact(&text).into_owned()
}

/// The `alg` a token's header names, read without trusting anything else in it (for
/// the message when the header names an algorithm the decoder does not even know).
fn header_alg(token: &str) -> Option<String> {
    use base64::Engine;
    let first = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(first.trim_end_matches('='))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let alg: String = v["alg"].as_str()?.chars().take(20).collect();
    Some(alg)
}

fn same_origin(url: &str, issuer: &str) -> bool {
    let origin = |u: &str| {
        let (scheme, rest) = u.split_once("://")?;
        Some(format!("{scheme}://{}", rest.split('/').next()?))
    };
    origin(url).is_some() && origin(url) == origin(issuer)
}

fn describe(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind::*;
    match e.kind() {
        ExpiredSignature => "the token has expired".into(),
        ImmatureSignature => "the token is not valid yet (nbf)".into(),
        InvalidAudience => "the token is for another audience".into(),
        InvalidIssuer => "the token is from another issuer".into(),
        InvalidSignature => "the signature does not verify".into(),
        MissingRequiredClaim(c) => format!("the token has no `{c}` claim"),
        other => format!("invalid token: {other:?}"),
    }
}

/// The keys of a JWKS document by key id; keys without an id, or of a kind this
/// verifier does not use, are left out (one odd key does not hide the others).
pub fn parse_key_set(set: &Value) -> HashMap<String, Jwk> {
    set["keys"]
        .as_array()
        .map(|keys| {
            keys.iter()
                .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
                .filter_map(|k| Some((k.common.key_id.clone()?, k)))
                .collect()
        })
        .unwrap_or_default()
}

/// The identity verified claims give under `cfg` (pure: unit-tested).
pub fn identity(cfg: &OidcConfig, claims: &Value) -> Result<Identity, OidcError> {
    let principal = claims["preferred_username"]
        .as_str()
        .or_else(|| claims["sub"].as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| OidcError::Invalid("the token names no subject (`sub`)".into()))?;
    if !cfg.allowed_clients.is_empty() {
        let client = ["azp", "client_id", "appid"]
            .iter()
            .find_map(|c| claims[*c].as_str());
        if !client.is_some_and(|c| cfg.allowed_clients.iter().any(|a| a == c)) {
            return Err(OidcError::Invalid(format!(
                "client `{}` is not in api.oidc.allowed_clients",
                client.unwrap_or("(none)")
            )));
        }
    }
    let mut at = claims;
    for part in cfg.roles_claim.split('.') {
        at = &at[part];
    }
    let values: Vec<&str> = match at {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let role_of = |v: &str| -> Option<Role> {
        if cfg.role_map.is_empty() {
            match v {
                "viewer" => Some(Role::Viewer),
                "operator" => Some(Role::Operator),
                "admin" => Some(Role::Admin),
                _ => None,
            }
        } else {
            cfg.role_map.get(v).copied()
        }
    };
    let role = values
        .iter()
        .filter_map(|v| role_of(v))
        .max()
        .ok_or_else(|| {
            OidcError::NoRole(format!(
                "the token's `{}` claim grants no role here",
                cfg.roles_claim
            ))
        })?;
    Ok(Identity {
        principal: format!("oidc:{principal}"),
        role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(map: &[(&str, Role)], clients: &[&str], claim: &str) -> OidcConfig {
        OidcConfig {
            issuer: "https://idp.example".into(),
            audiences: vec!["api://tributary".into()],
            roles_claim: claim.into(),
            role_map: map.iter().map(|(k, r)| (k.to_string(), *r)).collect(),
            allowed_clients: clients.iter().map(|c| c.to_string()).collect(),
            sign_in: None,
        }
    }

    #[test]
    fn roles_come_from_the_claim_as_named_or_mapped_and_the_highest_counts() {
        let plain = cfg(&[], &[], "roles");
        let id = |c: &OidcConfig, claims: Value| identity(c, &claims);
        assert_eq!(
            id(&plain, json!({"sub": "ci", "roles": "operator"})),
            Ok(Identity {
                principal: "oidc:ci".into(),
                role: Role::Operator
            })
        );
        assert_eq!(
            id(&plain, json!({"sub": "ci", "preferred_username": "ann@x", "roles": ["viewer", "admin", "other"]}))
                .unwrap(),
            Identity {
                principal: "oidc:ann@x".into(),
                role: Role::Admin
            }
        );
        assert!(matches!(
            id(&plain, json!({"sub": "ci", "roles": ["Tributary.Admin"]})),
            Err(OidcError::NoRole(_))
        ));
        assert!(matches!(
            id(&plain, json!({"sub": "ci"})),
            Err(OidcError::NoRole(_))
        ));
        let mapped = cfg(
            &[
                ("Tributary.Admin", Role::Admin),
                ("Tributary.Read", Role::Viewer),
            ],
            &[],
            "realm_access.roles",
        );
        assert_eq!(
            id(
                &mapped,
                json!({"sub": "k", "realm_access": {"roles": ["Tributary.Read"]}})
            )
            .unwrap()
            .role,
            Role::Viewer
        );
        // with a map, the plain names are no longer roles
        assert!(matches!(
            id(
                &mapped,
                json!({"sub": "k", "realm_access": {"roles": ["admin"]}})
            ),
            Err(OidcError::NoRole(_))
        ));
        assert!(matches!(
            id(&plain, json!({"roles": "admin"})),
            Err(OidcError::Invalid(_))
        ));
    }

    #[test]
    fn only_allowed_clients_when_a_list_is_given() {
        let c = cfg(&[], &["app-1", "app-2"], "roles");
        for claim in ["azp", "client_id", "appid"] {
            let ok = json!({"sub": "s", "roles": "viewer", claim: "app-2"});
            assert!(identity(&c, &ok).is_ok(), "{claim}");
        }
        let other = json!({"sub": "s", "roles": "viewer", "azp": "app-3"});
        assert!(matches!(identity(&c, &other), Err(OidcError::Invalid(m)) if m.contains("app-3")));
        let none = json!({"sub": "s", "roles": "viewer"});
        assert!(matches!(identity(&c, &none), Err(OidcError::Invalid(_))));
    }

    #[test]
    fn a_key_set_keeps_the_keys_it_can_use() {
        let set = json!({"keys": [
            {"kty": "RSA", "kid": "r1", "n": "sXch", "e": "AQAB", "use": "sig"},
            {"kty": "EC", "kid": "e1", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "RSA", "n": "sXch", "e": "AQAB"},
            {"kty": "weird", "kid": "w"},
        ]});
        let keys = parse_key_set(&set);
        let mut kids: Vec<&String> = keys.keys().collect();
        kids.sort();
        assert_eq!(kids, ["e1", "r1"]);
        assert!(parse_key_set(&json!({"nope": 1})).is_empty());
    }

    #[test]
    fn an_unknown_algorithm_is_named() {
        // {"alg":"none","typ":"JWT"}
        assert_eq!(
            header_alg("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.e30.").as_deref(),
            Some("none")
        );
        assert_eq!(header_alg("garbage"), None);
    }

    #[test]
    fn the_key_set_must_be_https_or_the_issuers_own_origin() {
        assert!(same_origin("http://127.0.0.1:9/jwks", "http://127.0.0.1:9"));
        assert!(!same_origin(
            "http://127.0.0.1:10/jwks",
            "http://127.0.0.1:9"
        ));
        assert!(!same_origin("nonsense", "http://127.0.0.1:9"));
    }
}

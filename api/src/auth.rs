//! Bearer-token authentication (RS256/ES256 JWTs from configured issuers) and the original's
//! authorisation rules. The embedded default trusts a local ES256 key generated on first start.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use dss_config::{AuthConfig, IssuerConfig};
use dss_runtime::deployment::read_or_create_key;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::Value;
use tokio::sync::RwLock;

use crate::error::{ApiError, ApiResult};
use crate::jwks_refresh::RefreshGate;

/// Issuer name of locally minted tokens.
pub const LOCAL_ISSUER: &str = "dss-local";
/// Audience of locally minted tokens.
pub const LOCAL_AUDIENCE: &str = "dss";
/// Claim marking a locally minted operator (admin) token.
pub const LOCAL_ADMIN_CLAIM: &str = "dss_admin";

fn unauthorized(title: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", title)
}

fn forbidden(title: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "Forbidden", title)
}

/// Who is calling, from a verified token.
#[derive(Debug, Clone)]
pub struct Caller {
    /// E-mail (configured claim, falling back to `email`).
    pub email: Option<String>,
    /// Group claim.
    pub group: Option<String>,
    /// Operator token minted with the local key and the admin claim.
    pub local_admin: bool,
}

#[derive(Clone)]
struct VerifyKey {
    kid: Option<String>,
    key: DecodingKey,
    alg: Algorithm,
}

struct Issuer {
    audiences: Vec<String>,
    keys: RwLock<Vec<VerifyKey>>,
    jwks_url: Option<String>,
    refresh: RefreshGate,
}

/// The local signing key: mints tokens that this deployment trusts.
#[derive(Clone)]
pub struct LocalIssuer {
    encoding: EncodingKey,
    public_point: Vec<u8>,
}

impl LocalIssuer {
    /// Loads the key from `dir/local-issuer.pk8`, generating it on first use.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("local-issuer.pk8");
        let der = read_or_create_key(&path, || {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map(|doc| doc.as_ref().to_vec())
                .map_err(|_| std::io::Error::other("could not generate a signing key"))
        })?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
            .map_err(|_| anyhow::anyhow!("{} is not a P-256 PKCS#8 key", path.display()))?;
        Ok(Self {
            encoding: EncodingKey::from_ec_der(&der),
            public_point: pair.public_key().as_ref().to_vec(),
        })
    }

    /// Mints a token for `email` in `group`, valid for `ttl_secs`; `admin` marks an operator.
    pub fn mint(
        &self,
        email: &str,
        group: &str,
        admin: bool,
        ttl_secs: i64,
        cfg: &AuthConfig,
    ) -> anyhow::Result<String> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut claims = serde_json::Map::new();
        claims.insert("iss".into(), LOCAL_ISSUER.into());
        claims.insert("sub".into(), email.into());
        claims.insert("aud".into(), LOCAL_AUDIENCE.into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + ttl_secs).into());
        claims.insert("email".into(), email.into());
        claims.insert(cfg.email_claim.clone(), email.into());
        claims.insert(cfg.group_claim.clone(), group.into());
        if admin {
            claims.insert(LOCAL_ADMIN_CLAIM.into(), true.into());
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("local".into());
        Ok(jsonwebtoken::encode(
            &header,
            &Value::Object(claims),
            &self.encoding,
        )?)
    }

    fn verify_key(&self) -> VerifyKey {
        VerifyKey {
            kid: Some("local".into()),
            key: DecodingKey::from_ec_der(&self.public_point),
            alg: Algorithm::ES256,
        }
    }
}

/// Verifies tokens and applies the authorisation rules.
pub struct Auth {
    cfg: AuthConfig,
    issuers: HashMap<String, Arc<Issuer>>,
    http: reqwest::Client,
}

fn keys_from_jwks(set: &JwkSet) -> Vec<VerifyKey> {
    set.keys
        .iter()
        .filter_map(|jwk| {
            let key = DecodingKey::from_jwk(jwk).ok()?;
            let alg = match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                _ => return None,
            };
            Some(VerifyKey {
                kid: jwk.common.key_id.clone(),
                key,
                alg,
            })
        })
        .collect()
}

fn load_static_keys(i: &IssuerConfig) -> anyhow::Result<Vec<VerifyKey>> {
    if let Some(f) = &i.jwks_file {
        let set: JwkSet = serde_json::from_slice(&std::fs::read(f)?)?;
        return Ok(keys_from_jwks(&set));
    }
    if let Some(f) = &i.pem_file {
        let pem = std::fs::read(f)?;
        if let Ok(k) = DecodingKey::from_rsa_pem(&pem) {
            return Ok(vec![VerifyKey {
                kid: None,
                key: k,
                alg: Algorithm::RS256,
            }]);
        }
        let k = DecodingKey::from_ec_pem(&pem)
            .map_err(|e| anyhow::anyhow!("{}: not an RSA or EC public key: {e}", f.display()))?;
        return Ok(vec![VerifyKey {
            kid: None,
            key: k,
            alg: Algorithm::ES256,
        }]);
    }
    Ok(Vec::new())
}

impl Auth {
    /// Builds the verifier from config; `local` is the local issuer when enabled.
    pub fn new(cfg: &AuthConfig, local: Option<&LocalIssuer>) -> anyhow::Result<Self> {
        let mut issuers = HashMap::new();
        if let Some(l) = local {
            issuers.insert(
                LOCAL_ISSUER.to_string(),
                Arc::new(Issuer {
                    audiences: vec![LOCAL_AUDIENCE.into()],
                    keys: RwLock::new(vec![l.verify_key()]),
                    jwks_url: None,
                    refresh: RefreshGate::default(),
                }),
            );
        }
        for (n, i) in cfg.issuers.iter().enumerate() {
            let keys =
                load_static_keys(i).map_err(|e| anyhow::anyhow!("auth.issuers[{n}]: {e}"))?;
            issuers.insert(
                i.issuer.clone(),
                Arc::new(Issuer {
                    audiences: i.audiences.clone(),
                    keys: RwLock::new(keys),
                    jwks_url: i.jwks_url.clone(),
                    refresh: RefreshGate::default(),
                }),
            );
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()?;
        Ok(Self {
            cfg: cfg.clone(),
            issuers,
            http,
        })
    }

    /// Fetches the issuer's keys again (a token named a key id it does not know), unless
    /// another request is fetching them (then waits for it) or they were fetched less than
    /// [`crate::jwks_refresh::MIN_INTERVAL`] ago.
    async fn refresh_jwks(&self, issuer: &Issuer) -> ApiResult<()> {
        let Some(url) = &issuer.jwks_url else {
            return Ok(());
        };
        let Some(_permit) = issuer.refresh.begin().await else {
            return Ok(());
        };
        let fetched = async {
            self.http
                .get(url)
                .send()
                .await?
                .error_for_status()?
                .json::<JwkSet>()
                .await
        }
        .await;
        match fetched {
            Ok(set) => {
                *issuer.keys.write().await = keys_from_jwks(&set);
                Ok(())
            }
            Err(e) => {
                tracing::error!(url, error = %e, "could not fetch JWKS");
                Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                    "could not fetch the issuer's keys",
                ))
            }
        }
    }

    /// Verifies the bearer token of a request.
    pub async fn authenticate(&self, headers: &HeaderMap) -> ApiResult<Caller> {
        let raw = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim();
        if raw.is_empty() {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "OAuthProblem",
                "No authorization token provided",
            ));
        }
        let parts: Vec<&str> = raw.split_whitespace().collect();
        let [scheme, token] = parts[..] else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "OAuthProblem",
                "Invalid authorization header",
            ));
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "OAuthProblem",
                "Invalid authorization header",
            ));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| unauthorized("Failed to decode token."))?;
        let unverified = token
            .split('.')
            .nth(1)
            .and_then(|p| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p.trim_end_matches('='))
                    .ok()
            })
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .ok_or_else(|| unauthorized("Failed to decode token."))?;
        let iss = unverified.get("iss").and_then(Value::as_str).unwrap_or("");
        let issuer = self
            .issuers
            .get(iss)
            .cloned()
            .ok_or_else(|| forbidden("User is not authorized to access this resource"))?;
        let pick = |keys: &[VerifyKey]| {
            keys.iter()
                .find(|k| {
                    k.alg == header.alg
                        && (header.kid.is_none() || k.kid.is_none() || k.kid == header.kid)
                })
                .cloned()
        };
        let mut key = pick(&issuer.keys.read().await);
        if key.is_none() && issuer.jwks_url.is_some() {
            self.refresh_jwks(&issuer).await?;
            key = pick(&issuer.keys.read().await);
        }
        let key = key.ok_or_else(|| unauthorized("Authorization token is invalid"))?;
        let mut v = Validation::new(key.alg);
        v.leeway = 0;
        v.set_issuer(&[iss]);
        v.set_audience(&issuer.audiences);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v.validate_nbf = true;
        let data = jsonwebtoken::decode::<Value>(token, &key.key, &v).map_err(|e| {
            tracing::info!(error = %e, "token rejected");
            unauthorized("Authorization token is invalid")
        })?;
        let claims = data.claims;
        let email = claims
            .get(&self.cfg.email_claim)
            .or_else(|| claims.get("email"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let group = claims
            .get(&self.cfg.group_claim)
            .and_then(Value::as_str)
            .map(str::to_string);
        let local_admin = iss == LOCAL_ISSUER
            && claims.get(LOCAL_ADMIN_CLAIM).and_then(Value::as_bool) == Some(true);
        Ok(Caller {
            email,
            group,
            local_admin,
        })
    }

    /// Whether the caller is an administrator (an operator token, or `auth.admin_emails`).
    pub fn is_admin(&self, c: &Caller) -> bool {
        c.local_admin
            || c.email
                .as_ref()
                .is_some_and(|e| self.cfg.admin_emails.iter().any(|a| a.trim() == e))
    }

    /// The caller's e-mail, required.
    pub fn email<'a>(&self, c: &'a Caller) -> ApiResult<&'a str> {
        c.email
            .as_deref()
            .ok_or_else(|| unauthorized("Authorization token is missing email claims."))
    }

    /// Requires membership of an allowed group (admins pass).
    pub fn require_group(&self, c: &Caller) -> ApiResult<()> {
        self.email(c)?;
        if self.is_admin(c)
            || c.group
                .as_ref()
                .is_some_and(|g| self.cfg.allowed_groups.contains(g))
        {
            Ok(())
        } else {
            Err(forbidden("User is not authorized to access this resource"))
        }
    }

    /// Requires an administrator (bundle deletion).
    pub fn require_admin(&self, c: &Caller) -> ApiResult<()> {
        self.email(c)?;
        if self.is_admin(c) {
            Ok(())
        } else {
            Err(forbidden(
                "You can't delete bundles with these credentials!",
            ))
        }
    }
}

//! Entra ID access tokens by the client-credentials grant: with a federated credential
//! (workload identity: the projected service-account token as `client_assertion`) or a
//! client secret. Tokens are cached per scope until shortly before they expire; the federated
//! token file is re-read for every exchange, since the kubelet rotates it.
//!
//! Must not import `policy`, `verify`, `decision` or `registry`: Azure is an adapter they call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{AzureConfig, AzureError, Credential, host_port, read_body, transport};
use crate::metrics::Metrics;

/// A token is renewed this long before it expires, or at half its lifetime if that is sooner.
const EXPIRY_MARGIN: Duration = Duration::from_secs(300);
/// The largest federated token file read.
const MAX_TOKEN_FILE: u64 = 64 << 10;
/// `client_assertion_type` of a federated credential.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Gets and caches Entra ID access tokens for one application identity.
pub struct Entra {
    http: reqwest::Client,
    token_url: reqwest::Url,
    client_id: String,
    credential: Credential,
    metrics: Arc<Metrics>,
    cache: Mutex<HashMap<String, (String, Instant)>>,
    /// One exchange at a time: concurrent callers after the first find the cached token.
    exchange: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Entra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entra")
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Entra {
    pub fn new(config: &AzureConfig, metrics: Arc<Metrics>) -> Result<Self, AzureError> {
        let token_url = token_url(&config.authority_host, &config.tenant_id)?;
        if config.client_id.is_empty() {
            return Err(AzureError::Config(
                "the Azure client ID is empty (AZURE_CLIENT_ID or spec.azure.clientID)".into(),
            ));
        }
        Ok(Entra {
            http: super::http_client(&config.ca_pem, config.request_timeout)?,
            token_url,
            client_id: config.client_id.clone(),
            credential: config.credential.clone(),
            metrics,
            cache: Mutex::new(HashMap::new()),
            exchange: tokio::sync::Mutex::new(()),
        })
    }

    /// An access token for `scope` (e.g. [`super::VAULT_SCOPE`]), from the cache while it has
    /// more than a few minutes left.
    pub async fn token(&self, scope: &str) -> Result<String, AzureError> {
        if let Some(t) = self.cached(scope) {
            return Ok(t);
        }
        let _one = self.exchange.lock().await;
        if let Some(t) = self.cached(scope) {
            return Ok(t);
        }
        let result = self.fetch(scope).await;
        self.metrics
            .azure_requests
            .with_label_values(&[
                "token",
                result.as_ref().map_or_else(|e| e.label(), |_| "ok"),
            ])
            .inc();
        let (token, lifetime) = result?;
        let margin = EXPIRY_MARGIN.min(lifetime / 2);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(
            scope.to_string(),
            (token.clone(), Instant::now() + lifetime - margin),
        );
        Ok(token)
    }

    /// Forgets the cached token for `scope` (after the resource refused it).
    pub fn forget(&self, scope: &str) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.remove(scope);
    }

    fn cached(&self, scope: &str) -> Option<String> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(scope)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(t, _)| t.clone())
    }

    async fn fetch(&self, scope: &str) -> Result<(String, Duration), AzureError> {
        let host = host_port(&self.token_url);
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", "client_credentials".into()),
            ("client_id", self.client_id.clone()),
            ("scope", scope.to_string()),
        ];
        match &self.credential {
            Credential::FederatedTokenFile(path) => {
                let assertion = read_token_file(path).await?;
                form.push(("client_assertion_type", JWT_BEARER.into()));
                form.push(("client_assertion", assertion));
            }
            Credential::ClientSecret(secret) => form.push(("client_secret", secret.clone())),
        }
        let resp = self
            .http
            .post(self.token_url.clone())
            .form(&form)
            .send()
            .await
            .map_err(|e| transport(&host, &e))?;
        let status = resp.status();
        let body = read_body(resp, &host).await?;
        #[derive(serde::Deserialize)]
        struct Answer {
            access_token: Option<String>,
            expires_in: Option<serde_json::Value>,
            error: Option<String>,
            error_description: Option<String>,
        }
        let answer: Option<Answer> = serde_json::from_slice(&body).ok();
        if !status.is_success() {
            if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                return Err(AzureError::Throttled {
                    host,
                    retry_after: None,
                });
            }
            if status.is_server_error() {
                return Err(AzureError::Unreachable {
                    host,
                    detail: format!("the token endpoint answered {status}"),
                });
            }
            let detail = answer
                .map(|a| {
                    let code = a.error.unwrap_or_default();
                    // Entra's descriptions start with the AADSTS code and a sentence; keep
                    // the first line, bounded.
                    let text: String = a
                        .error_description
                        .unwrap_or_default()
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .chars()
                        .filter(|c| !c.is_control())
                        .take(300)
                        .collect();
                    format!("{code}: {text}")
                })
                .unwrap_or_else(|| format!("HTTP {status}"));
            return Err(AzureError::TokenRefused {
                scope: scope.to_string(),
                detail,
            });
        }
        let malformed = |detail: &str| AzureError::Malformed {
            what: format!("the token response of {host}"),
            detail: detail.to_string(),
        };
        let answer = answer.ok_or_else(|| malformed("not JSON"))?;
        let token = answer
            .access_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| malformed("no access_token"))?;
        // Entra sends `expires_in` as a number; some older endpoints as a string.
        let secs = match answer.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        .unwrap_or(300)
        .clamp(60, 24 * 3600);
        Ok((token, Duration::from_secs(secs)))
    }
}

/// `{authority}/{tenant}/oauth2/v2.0/token`. The authority must be https without user
/// information, query or fragment; the tenant an ID or a domain name.
pub(crate) fn token_url(
    authority: &reqwest::Url,
    tenant: &str,
) -> Result<reqwest::Url, AzureError> {
    if authority.scheme() != "https" {
        return Err(AzureError::Config(format!(
            "the Azure authority host {authority} is not https"
        )));
    }
    if !authority.username().is_empty()
        || authority.password().is_some()
        || authority.query().is_some()
        || authority.fragment().is_some()
    {
        return Err(AzureError::Config(format!(
            "the Azure authority host {authority} must be a plain https://host[:port]/ URL"
        )));
    }
    if tenant.is_empty()
        || tenant.len() > 256
        || !tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(AzureError::Config(format!(
            "the Azure tenant ID {tenant:?} is not a GUID or domain name"
        )));
    }
    let base = authority.as_str().trim_end_matches('/');
    reqwest::Url::parse(&format!("{base}/{tenant}/oauth2/v2.0/token"))
        .map_err(|e| AzureError::Config(format!("the Azure token URL: {e}")))
}

async fn read_token_file(path: &std::path::Path) -> Result<String, AzureError> {
    use tokio::io::AsyncReadExt;
    let err = |detail: String| AzureError::TokenFile {
        path: path.display().to_string(),
        detail,
    };
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| err(e.to_string()))?;
    let mut text = String::new();
    file.take(MAX_TOKEN_FILE + 1)
        .read_to_string(&mut text)
        .await
        .map_err(|e| err(e.to_string()))?;
    if text.len() as u64 > MAX_TOKEN_FILE {
        return Err(err(format!("larger than {MAX_TOKEN_FILE} bytes")));
    }
    let text = text.trim();
    if text.is_empty() {
        return Err(err("empty".into()));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_urls() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert_eq!(
            token_url(&u("https://login.microsoftonline.com/"), "tid")
                .unwrap()
                .as_str(),
            "https://login.microsoftonline.com/tid/oauth2/v2.0/token"
        );
        assert_eq!(
            token_url(&u("https://127.0.0.1:8443"), "contoso.onmicrosoft.com")
                .unwrap()
                .as_str(),
            "https://127.0.0.1:8443/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert!(token_url(&u("http://login.microsoftonline.com/"), "t").is_err());
        assert!(token_url(&u("https://a@login.microsoftonline.com/"), "t").is_err());
        assert!(token_url(&u("https://login.microsoftonline.com/"), "../x").is_err());
        assert!(token_url(&u("https://login.microsoftonline.com/"), "").is_err());
    }
}

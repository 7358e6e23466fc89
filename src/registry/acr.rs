//! Azure Container Registry with workload identity: for a registry the operator marked as ACR
//! (`--acr-registry`, `*.azurecr.io` by default) and for which no static credentials exist,
//! the Entra token of scope `https://containerregistry.azure.net/.default` is exchanged at the
//! registry's `/oauth2/exchange` for an ACR refresh token, which then answers the registry's
//! normal Bearer flow as the password of the null-GUID user (as `az acr login` does).
//!
//! The exchange URL is the Bearer realm's sibling (`…/oauth2/token` → `…/oauth2/exchange`),
//! and only a realm that may receive the registry's credentials
//! (`auth::realm_may_receive_credentials`: the registry's own host name) is used, so
//! the Entra token goes nowhere but the ACR host. The exchange is a POST through the token
//! client (no redirects) and the same connect-time deny-list as every registry request: the
//! host is named by a pod spec. Refresh tokens are cached per registry host.
//!
//! Like `registry`: must not import `policy`, `verify` or `decision`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::RegistryError;
use super::auth::{Bearer, Credentials};
use super::client::HttpRegistry;
use super::transport::read_capped;
use crate::azure::{ACR_SCOPE, Entra, host_matches};
use crate::reason::Reason;

/// The user name an ACR refresh token is presented with.
pub const NULL_USER: &str = "00000000-0000-0000-0000-000000000000";
/// How long a refresh token is used when it does not say (ACR issues them for hours).
const DEFAULT_REFRESH_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// The longest a refresh token is used.
const MAX_REFRESH_LIFETIME: Duration = Duration::from_secs(60 * 60);
const MAX_EXCHANGE_BYTES: u64 = 64 << 10;

/// The ACR side of the Azure identity.
pub struct Acr {
    entra: Arc<Entra>,
    tenant: String,
    hosts: Vec<String>,
    refresh: Mutex<HashMap<String, (String, Instant)>>,
}

impl std::fmt::Debug for Acr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acr")
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

impl Acr {
    /// `hosts`: patterns (`*.azurecr.io`) or exact `host[:port]` of the registries that are ACR.
    pub fn new(entra: Arc<Entra>, tenant: String, hosts: Vec<String>) -> Self {
        Acr {
            entra,
            tenant,
            hosts,
            refresh: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `host` is marked as an Azure Container Registry.
    pub fn covers(&self, host: &str) -> bool {
        self.hosts.iter().any(|p| host_matches(p, host))
    }

    fn cached(&self, host: &str) -> Option<String> {
        let map = self.refresh.lock().unwrap_or_else(|p| p.into_inner());
        map.get(host)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(t, _)| t.clone())
    }

    /// Forgets the refresh token of `host` (the registry refused it).
    pub(super) fn forget(&self, host: &str) {
        let mut map = self.refresh.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(host);
    }
}

/// `…/oauth2/token` → `…/oauth2/exchange`: the realm's last path segment must be `token`.
pub(crate) fn exchange_url(realm: &reqwest::Url) -> Option<reqwest::Url> {
    let mut url = realm.clone();
    url.set_query(None);
    let path = url.path().to_string();
    let base = path.strip_suffix("/token")?;
    url.set_path(&format!("{base}/exchange"));
    Some(url)
}

/// The `exp` claim of a JWT, unverified: only used to stop using a token early.
fn jwt_expiry(token: &str) -> Option<i64> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()?
        .get("exp")?
        .as_i64()
}

impl HttpRegistry {
    /// The ACR refresh token of `host` as credentials, exchanged now if none is cached.
    pub(super) async fn acr_credentials(
        &self,
        acr: &Acr,
        host: &str,
        bearer: &Bearer,
    ) -> Result<Credentials, RegistryError> {
        if let Some(t) = acr.cached(host) {
            return Ok(Credentials {
                username: NULL_USER.into(),
                password: t,
            });
        }
        let unauthorized = |detail: String| RegistryError::new(Reason::Unauthorized, detail);
        let url = exchange_url(&bearer.realm).ok_or_else(|| {
            unauthorized(format!(
                "{host} is marked as an Azure Container Registry but its token realm does not \
                 end in /token, so there is no /oauth2/exchange to use"
            ))
        })?;
        let aad = acr.entra.token(ACR_SCOPE).await.map_err(|e| {
            RegistryError::new(e.reason(), format!("no Entra token for {host}: {e}"))
        })?;
        let service = bearer.service.clone().unwrap_or_else(|| host.to_string());
        let form = [
            ("grant_type", "access_token"),
            ("service", service.as_str()),
            ("tenant", acr.tenant.as_str()),
            ("access_token", aad.as_str()),
        ];
        let req = self.token_client(host).post(url).form(&form);
        let result = self.execute("token", host, req).await.map_err(|(e, _)| e);
        let label = match &result {
            Ok(r) if r.status().is_success() => "ok",
            Ok(_) => "denied",
            Err(_) => "unreachable",
        };
        self.metrics()
            .azure_requests
            .with_label_values(&["acr_exchange", label])
            .inc();
        let resp = result?;
        if !resp.status().is_success() {
            return Err(unauthorized(format!(
                "{host} refused the Entra token in its /oauth2/exchange ({})",
                resp.status()
            )));
        }
        let body = read_capped(resp, MAX_EXCHANGE_BYTES, host).await?;
        #[derive(serde::Deserialize)]
        struct Answer {
            refresh_token: Option<String>,
        }
        let token = serde_json::from_slice::<Answer>(&body)
            .ok()
            .and_then(|a| a.refresh_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                unauthorized(format!("{host}'s /oauth2/exchange sent no refresh_token"))
            })?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let lifetime = jwt_expiry(&token)
            .map(|exp| Duration::from_secs(u64::try_from(exp - now - 60).unwrap_or(0)))
            .unwrap_or(DEFAULT_REFRESH_LIFETIME)
            .min(MAX_REFRESH_LIFETIME);
        if !lifetime.is_zero() {
            let mut map = acr.refresh.lock().unwrap_or_else(|p| p.into_inner());
            map.insert(host.to_string(), (token.clone(), Instant::now() + lifetime));
        }
        Ok(Credentials {
            username: NULL_USER.into(),
            password: token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exchange_is_the_realms_sibling() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert_eq!(
            exchange_url(&u("https://r.azurecr.io/oauth2/token?x=1"))
                .unwrap()
                .as_str(),
            "https://r.azurecr.io/oauth2/exchange"
        );
        assert_eq!(
            exchange_url(&u("http://127.0.0.1:5001/token"))
                .unwrap()
                .as_str(),
            "http://127.0.0.1:5001/exchange"
        );
        assert!(exchange_url(&u("https://r.azurecr.io/oauth2/auth")).is_none());
    }

    #[test]
    fn jwt_expiry_is_read_without_trusting_it() {
        use base64::Engine;
        let p = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"exp":1700000000}"#);
        assert_eq!(jwt_expiry(&format!("h.{p}.s")), Some(1_700_000_000));
        assert_eq!(jwt_expiry("opaque"), None);
    }
}

//! `StoredTokens`: the token secret's value. The minter writes it, the broker in central mode
//! reads it: access tokens per scope set, ID tokens per audience, the account's email and
//! project, each token's expiry and lifetime. Never key material; tokens never in `Debug`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::broker::token_cache::CachePolicy;
use crate::google::scopes::{Audience, ScopeKey};
use crate::google::token::Token;
use crate::google::Credential;

/// The format this build writes and reads.
pub const FORMAT: u32 = 1;

/// What the token secret holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredTokens {
    /// [`FORMAT`].
    pub format: u32,
    /// When the minter wrote this version.
    pub written_at: DateTime<Utc>,
    /// The served account's email; `None` for a federated principal.
    pub email: Option<String>,
    /// The served account's project, when known.
    pub project: Option<String>,
    /// Access tokens, one per scope set.
    #[serde(default)]
    pub access_tokens: Vec<StoredToken<ScopeKey>>,
    /// ID tokens, one per audience.
    #[serde(default)]
    pub id_tokens: Vec<StoredToken<Audience>>,
}

/// One stored token and what it is for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredToken<K> {
    /// The scope set or audience.
    #[serde(rename = "for")]
    pub slot: K,
    /// The bearer token.
    pub token: Credential,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// How long it lived when minted, in seconds: sets when it is renewed.
    pub lifetime_s: u64,
}

impl<K> StoredToken<K> {
    /// `token`, minted now for `slot`.
    pub fn minted(slot: K, token: Token) -> Self {
        let lifetime_s = (token.expires_at - Utc::now()).num_seconds().max(1) as u64;
        Self { slot, token: token.bearer, expires_at: token.expires_at, lifetime_s }
    }

    /// As the broker serves it.
    pub fn token(&self) -> Token {
        Token { bearer: self.token.clone(), expires_at: self.expires_at }
    }

    /// Seconds of life left at `now` (negative once expired).
    pub fn life_left(&self, now: DateTime<Utc>) -> i64 {
        (self.expires_at - now).num_seconds()
    }

    /// The minter renews a token with less than half of its lifetime left.
    pub fn wants_renewal(&self, now: DateTime<Utc>) -> bool {
        self.life_left(now) < (self.lifetime_s / 2) as i64
    }

    /// When the broker looks for a newer version: the refresh point its cache uses for a token of
    /// this lifetime (10 minutes before expiry for an hour's, in proportion for shorter ones).
    pub fn refresh_at(&self) -> DateTime<Utc> {
        let ahead = CachePolicy::default().for_lifetime(Duration::from_secs(self.lifetime_s)).refresh_ahead;
        self.expires_at - chrono::Duration::from_std(ahead).unwrap_or_default()
    }
}

impl StoredTokens {
    /// Nothing stored yet.
    pub fn empty() -> Self {
        Self {
            format: FORMAT,
            written_at: Utc::now(),
            email: None,
            project: None,
            access_tokens: Vec::new(),
            id_tokens: Vec::new(),
        }
    }

    /// A secret value, checked: the format this build reads.
    pub fn parse(value: &str) -> Result<Self, String> {
        let stored: Self = serde_json::from_str(value)
            .map_err(|e| format!("the token secret does not hold the minter's tokens ({e})"))?;
        if stored.format != FORMAT {
            return Err(format!("the token secret is format {}; this build reads format {FORMAT}", stored.format));
        }
        Ok(stored)
    }

    /// As the secret's value.
    pub fn to_value(&self) -> String {
        serde_json::to_string(self).expect("stored tokens serialize")
    }

    /// The access token for `scopes`, if one was minted.
    pub fn access(&self, scopes: &ScopeKey) -> Option<&StoredToken<ScopeKey>> {
        self.access_tokens.iter().find(|t| &t.slot == scopes)
    }

    /// The ID token for `audience`, if one was minted.
    pub fn id(&self, audience: &Audience) -> Option<&StoredToken<Audience>> {
        self.id_tokens.iter().find(|t| &t.slot == audience)
    }

    /// The earliest refresh point of what is stored: past it, the broker looks for a newer
    /// version. `None` when nothing is stored.
    pub fn refresh_at(&self) -> Option<DateTime<Utc>> {
        let access = self.access_tokens.iter().map(StoredToken::refresh_at);
        access.chain(self.id_tokens.iter().map(StoredToken::refresh_at)).min()
    }

    /// The least life left on any stored token, in seconds (the minter's metric).
    pub fn least_life_left(&self, now: DateTime<Utc>) -> Option<i64> {
        let access = self.access_tokens.iter().map(|t| t.life_left(now));
        access.chain(self.id_tokens.iter().map(|t| t.life_left(now))).min()
    }

    /// How long ago the newest stored token was minted, in seconds.
    pub fn age(&self, now: DateTime<Utc>) -> i64 {
        (now - self.written_at).num_seconds()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(lifetime: i64, left: i64) -> StoredToken<ScopeKey> {
        StoredToken {
            slot: ScopeKey::cloud_platform(),
            token: Credential::new("ya29.t".into()),
            expires_at: Utc::now() + chrono::Duration::seconds(left),
            lifetime_s: lifetime as u64,
        }
    }

    #[test]
    fn renewed_past_half_life_and_looked_for_at_the_caches_refresh_point() {
        assert!(!stored(3600, 1900).wants_renewal(Utc::now()));
        assert!(stored(3600, 1700).wants_renewal(Utc::now()));
        let hour = stored(3600, 3600);
        assert_eq!((hour.expires_at - hour.refresh_at()).num_seconds(), 600);
        let short = stored(45, 45);
        assert_eq!((short.expires_at - short.refresh_at()).num_milliseconds(), 7500, "600 s scaled to 45 s");
    }

    #[test]
    fn round_trips_without_showing_a_token() {
        let mut all = StoredTokens::empty();
        all.access_tokens.push(stored(3600, 3600));
        all.id_tokens.push(StoredToken::minted(Audience::parse("https://x.run.app").unwrap(), stored(1, 60).token()));
        let value = all.to_value();
        let back = StoredTokens::parse(&value).unwrap();
        assert_eq!(back.access(&ScopeKey::cloud_platform()).unwrap().token.expose(), "ya29.t");
        assert!(back.id(&Audience::parse("https://x.run.app").unwrap()).is_some());
        assert!(!format!("{back:?}").contains("ya29.t"));
        assert!(StoredTokens::parse(r#"{"format": 2, "written_at": "2026-01-01T00:00:00Z"}"#)
            .unwrap_err()
            .contains("format 2"));
        assert!(StoredTokens::parse("{\"type\": \"service_account\"}").is_err(), "a key is not stored tokens");
    }
}

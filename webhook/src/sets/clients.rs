//! One GitHub [`Client`] per set, kept between reconciles so its ETag
//! cache, rate-limit gate and App installation token survive; replaced when
//! the set's source or credentials change, dropped when the set is gone.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use ephemeral_core::set::api::GitHubSource;

use crate::clock::Clock;
use crate::github::{self, Client, ClientSettings, Credentials};

/// A set, by namespace and name.
pub type SetKey = (String, String);

/// The clients of every set this replica reconciles.
#[derive(Debug, Default)]
pub struct Clients {
    by_set: Mutex<HashMap<SetKey, (ring::digest::Digest, Client)>>,
}

/// What the client depends on: the source (URL, repository, credential
/// references) and the credentials' bytes, hashed (never kept in clear).
fn fingerprint(source: &GitHubSource, credentials: &Credentials) -> ring::digest::Digest {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(&serde_json::to_vec(source).unwrap_or_default());
    match credentials {
        Credentials::Token(token) => {
            ctx.update(b"token\0");
            ctx.update(token.expose());
        }
        Credentials::App(app) => {
            ctx.update(format!("app\0{}\0{}\0", app.app_id, app.installation_id).as_bytes());
            ctx.update(app.private_key_pem.expose());
        }
    }
    ctx.finish()
}

impl Clients {
    /// The client of `set` for `source` with `credentials`: the one kept
    /// when neither changed, else a new one (fails on a bad `apiURL` or key).
    pub fn get(
        &self,
        set: &SetKey,
        source: &GitHubSource,
        credentials: Credentials,
        timeout: Duration,
        clock: Clock,
    ) -> Result<Client, github::Error> {
        let print = fingerprint(source, &credentials);
        let mut by_set = self.lock();
        if let Some((kept, client)) = by_set.get(set)
            && kept.as_ref() == print.as_ref()
        {
            return Ok(client.clone());
        }
        by_set.remove(set);
        let settings = ClientSettings {
            timeout,
            clock,
            ..ClientSettings::for_source(source, credentials)
        };
        let client = Client::new(settings)?;
        by_set.insert(set.clone(), (print, client.clone()));
        Ok(client)
    }

    /// Drops the client of `set` (gone, or without usable credentials).
    pub fn forget(&self, set: &SetKey) {
        self.lock().remove(set);
    }

    /// How many clients are kept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no client is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SetKey, (ring::digest::Digest, Client)>> {
        self.by_set.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github::Secret;

    fn source(repo: &str) -> GitHubSource {
        GitHubSource {
            owner: "acme".into(),
            repo: repo.into(),
            api_url: Some("http://127.0.0.1:1".into()),
            ..GitHubSource::default()
        }
    }

    fn token(t: &str) -> Credentials {
        Credentials::Token(Secret::from(t))
    }

    #[test]
    fn a_client_is_kept_until_its_source_or_token_changes() {
        let clients = Clients::default();
        let key: SetKey = ("previews".into(), "shop-prs".into());
        let get = |s: &GitHubSource, t: &str| {
            clients
                .get(&key, s, token(t), Duration::from_secs(1), Clock::System)
                .unwrap()
        };
        let first = get(&source("shop"), "t1");
        let again = get(&source("shop"), "t1");
        assert!(
            first.shares_state_with(&again),
            "unchanged: the same client"
        );
        let other_repo = get(&source("cart"), "t1");
        assert!(
            !other_repo.shares_state_with(&again),
            "another repository: a new client"
        );
        let rotated = get(&source("cart"), "t2");
        assert!(
            !rotated.shares_state_with(&other_repo),
            "a rotated token: a new client"
        );
        assert_eq!(clients.len(), 1);
        clients.forget(&key);
        assert!(clients.is_empty());
    }
}

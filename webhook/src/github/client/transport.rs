//! The HTTP machinery under every operation: one request sent with the
//! credentials' authorization, conditional on a remembered ETag (a `304`
//! answers from the cache), the rate-limit gate checked before and updated
//! after, GitHub's errors turned into [`Error`]s.

use super::*;

impl Client {
    /// The `Authorization` header for API requests.
    pub(super) async fn authorization(&self) -> Result<HeaderValue, Error> {
        match &self.inner.auth {
            Auth::Token(value) => Ok(value.clone()),
            Auth::App { signer, token } => {
                let mut cached = token.lock().await;
                let now = self.inner.clock.now();
                if let Some(t) = cached.as_ref().filter(|t| t.fresh_at(now)) {
                    return bearer(t.token.expose());
                }
                let fresh = self.exchange(signer, now).await?;
                let value = bearer(fresh.token.expose())?;
                *cached = Some(fresh);
                Ok(value)
            }
        }
    }

    /// `POST /app/installations/{id}/access_tokens` with a fresh JWT.
    pub(super) async fn exchange(
        &self,
        signer: &AppSigner,
        now: Timestamp,
    ) -> Result<InstallationToken, Error> {
        #[derive(Deserialize)]
        struct Answer {
            token: String,
            expires_at: String,
        }
        let url = format!(
            "{}/app/installations/{}/access_tokens",
            self.inner.base_str, signer.installation_id
        );
        let jwt = bearer(signer.jwt(now)?.as_bytes())?;
        let answer = self.send_raw(Method::POST, &url, None, jwt).await?;
        let parsed: Answer = decode(&Method::POST, &url, &answer.body)?;
        let expires_at = parsed
            .expires_at
            .parse::<Timestamp>()
            .map_err(|e| Error::Decode {
                method: "POST".into(),
                url: url.clone(),
                path: "expires_at".into(),
                message: format!("not an RFC 3339 time: {e}"),
            })?;
        Ok(InstallationToken {
            token: Secret::new(parsed.token),
            expires_at,
        })
    }

    /// An API request with the client's credentials.
    pub(super) async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, Error> {
        self.check_gate()?;
        let authorization = self.authorization().await?;
        self.send_raw(method, url, body, authorization).await
    }

    /// One request: the rate-limit gate, the conditional GET, the timeout,
    /// and the reading of the answer's status and headers.
    pub(super) async fn send_raw(
        &self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
        authorization: HeaderValue,
    ) -> Result<Answer, Error> {
        self.check_gate()?;
        let cached = if method == Method::GET {
            let mut state = self.state();
            state.uses += 1;
            let uses = state.uses;
            state.cache.get_mut(url).map(|c| {
                c.last_used = uses;
                c.clone()
            })
        } else {
            None
        };
        let mut request = self
            .inner
            .http
            .request(method.clone(), url)
            .header(header::AUTHORIZATION, authorization);
        if let Some(c) = &cached {
            request = request.header(header::IF_NONE_MATCH, c.etag.clone());
        }
        if let Some(body) = body {
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                Error::Timeout {
                    method: method.to_string(),
                    url: url.to_string(),
                    after: self.inner.timeout,
                }
            } else {
                Error::Transport {
                    method: method.to_string(),
                    url: url.to_string(),
                    message: chain(&e),
                }
            }
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(transport)?;
        let now = self.inner.clock.now();
        let remaining = header_u64(&headers, "x-ratelimit-remaining");
        let reset = header_u64(&headers, "x-ratelimit-reset")
            .and_then(|s| Timestamp::from_second(i64::try_from(s).ok()?).ok());
        let link = headers
            .get(header::LINK)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        tracing::debug!(%method, url, status = status.as_u16(), remaining, "GitHub request");
        let mut state = self.state();
        if let Some(remaining) = remaining {
            state.rate_limit = Some(RateLimit { remaining, reset });
        }
        if status == StatusCode::NOT_MODIFIED
            && let Some(c) = cached
        {
            return Ok(Answer {
                body: c.body,
                link: c.link,
            });
        }
        if status.is_success() {
            if remaining == Some(0)
                && let Some(reset) = reset.filter(|r| *r > now)
            {
                state.blocked = Some((RateLimitKind::Primary, reset));
            }
            if method == Method::GET
                && let Some(etag) = headers.get(header::ETAG)
            {
                state.uses += 1;
                let last_used = state.uses;
                state.cache.insert(
                    url.to_string(),
                    Cached {
                        etag: etag.clone(),
                        body: bytes.clone(),
                        link: link.clone(),
                        last_used,
                    },
                );
                evict(&mut state.cache);
            }
            return Ok(Answer { body: bytes, link });
        }
        let message = github_message(&bytes);
        if matches!(
            status,
            StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
        ) {
            let retry_after = header_u64(&headers, header::RETRY_AFTER.as_str());
            let limited = if let Some(secs) = retry_after {
                Some((
                    RateLimitKind::Secondary,
                    now + SignedDuration::from_secs(
                        i64::try_from(secs).unwrap_or(i64::MAX / 2).min(86_400),
                    ),
                ))
            } else if remaining == Some(0) {
                Some((
                    RateLimitKind::Primary,
                    reset
                        .filter(|r| *r > now)
                        .unwrap_or(now + SECONDARY_LIMIT_DEFAULT_WAIT),
                ))
            } else if status == StatusCode::TOO_MANY_REQUESTS
                || message.to_ascii_lowercase().contains("rate limit")
            {
                Some((RateLimitKind::Secondary, now + SECONDARY_LIMIT_DEFAULT_WAIT))
            } else {
                None
            };
            if let Some((kind, until)) = limited {
                state.blocked = Some((kind, until));
                return Err(Error::RateLimited { kind, until });
            }
        }
        Err(Error::Status {
            method: method.to_string(),
            url: url.to_string(),
            status: status.as_u16(),
            message,
        })
    }

    pub(super) fn check_gate(&self) -> Result<(), Error> {
        let now = self.inner.clock.now();
        match self.state().blocked {
            Some((kind, until)) if until > now => Err(Error::RateLimited { kind, until }),
            _ => Ok(()),
        }
    }
}

/// Drops the least recently used entries over [`ETAG_CACHE_ENTRIES`].
pub(super) fn evict(cache: &mut HashMap<String, Cached>) {
    while cache.len() > ETAG_CACHE_ENTRIES {
        let Some(oldest) = cache
            .iter()
            .min_by_key(|(_, c)| c.last_used)
            .map(|(k, _)| k.clone())
        else {
            return;
        };
        cache.remove(&oldest);
    }
}

pub(super) fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// GitHub's `message` from an error body, else the start of the body.
pub(super) fn github_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<ErrorBody>(body) {
        return e.message;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(no message)".to_string();
    }
    text.chars().take(200).collect()
}

pub(super) fn decode<T: DeserializeOwned>(
    method: &Method,
    url: &str,
    body: &[u8],
) -> Result<T, Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| Error::Decode {
        method: method.to_string(),
        url: url.to_string(),
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

pub(super) fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::Config(format!("cannot encode the request: {e}")))
}

/// An error and its causes, on one line.
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `Authorization: Bearer …`, marked sensitive (never printed by `Debug`).
pub(super) fn bearer(token: &[u8]) -> Result<HeaderValue, Error> {
    let token = std::str::from_utf8(token)
        .map(str::trim)
        .map_err(|_| Error::Config("the GitHub token is not UTF-8 text".into()))?;
    if token.is_empty() {
        return Err(Error::Config(
            "tokenSecretRef: the GitHub token is empty; put the token in the Secret's key".into(),
        ));
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        Error::Config(
            "tokenSecretRef: the GitHub token has characters a header cannot carry".into(),
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn githubs_error_message_is_kept() {
        assert_eq!(
            github_message(br#"{"message":"Bad credentials","documentation_url":"x"}"#),
            "Bad credentials"
        );
        assert_eq!(github_message(b"<html>oops</html>"), "<html>oops</html>");
        assert_eq!(github_message(b""), "(no message)");
    }
}

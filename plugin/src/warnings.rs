//! The API server's warnings, shown to the person as kubectl shows them.
//!
//! The API server passes on what admission webhooks (ours: a branch sanitised
//! into a prefix, a lease that has ended, a `secretRef` that must exist in the
//! namespace) and the server itself (deprecations) have to say in `Warning`
//! response headers (RFC 7234 section 5.5: `299 - "text"`, several per header
//! separated by commas). kubectl prints each on stderr as `Warning: text`, each
//! distinct text once per command; so does every cluster command here, through
//! the [`layer`] on the client's HTTP stack.
//!
//! Unlike client-go, which silently drops a header it cannot parse, a value that
//! does not parse is shown as it came: a warning nobody can read is worse than
//! one that looks odd. Control characters are escaped so that a server cannot
//! drive the terminal. RFC 2047 encoded words (obsolete; the API server never
//! sends them) are shown undecoded.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use http::header::{HeaderMap, WARNING};
use tower::util::MapResponseLayer;

/// One well-formed warning from a `Warning` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The three-digit warn-code (the API server sends 299, "miscellaneous persistent warning").
    pub code: u16,
    /// Who added it (`-` from the API server).
    pub agent: String,
    /// The text, unquoted and unescaped.
    pub text: String,
}

/// The warnings in one `Warning` header value, in order. Where the value stops
/// parsing, the rest of it is one `Err`, holding that rest as it came (trimmed).
pub fn parse(value: &str) -> Vec<Result<Warning, String>> {
    let mut found = Vec::new();
    let mut rest = skip_separators(value);
    while !rest.is_empty() {
        match one(rest) {
            Some((warning, after)) => {
                found.push(Ok(warning));
                rest = after;
            }
            None => {
                found.push(Err(rest.trim_end().to_owned()));
                break;
            }
        }
    }
    found
}

/// Leading whitespace and empty list elements (`1#` allows `, ,`).
fn skip_separators(s: &str) -> &str {
    s.trim_start_matches([' ', '\t', ','])
}

/// `warn-code SP warn-agent SP warn-text [SP warn-date]`, then the end or a
/// comma; the warning and what follows the comma.
fn one(s: &str) -> Option<(Warning, &str)> {
    let code = s
        .get(..3)
        .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))?;
    let s = s[3..].strip_prefix([' ', '\t'])?.trim_start();
    let agent_end = s.find([' ', '\t']).unwrap_or(s.len());
    let agent = &s[..agent_end];
    if agent.is_empty() || agent.contains(['"', ',']) {
        return None;
    }
    let (text, s) = quoted(s[agent_end..].trim_start())?;
    let mut s = s.trim_start();
    if let Some(date) = s.strip_prefix('"') {
        // warn-date: an HTTP-date in quotes, no escapes.
        s = date[date.find('"')? + 1..].trim_start();
    }
    let rest = match s.strip_prefix(',') {
        Some(rest) => skip_separators(rest),
        None if s.is_empty() => s,
        None => return None,
    };
    let warning = Warning {
        code: code.parse().ok()?,
        agent: agent.to_owned(),
        text,
    };
    Some((warning, rest))
}

/// A quoted-string (RFC 7230 section 3.2.6): its content with `\x` taken as
/// `x`, and what follows the closing quote.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut chars = s.strip_prefix('"')?.char_indices();
    let mut text = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => text.push(chars.next()?.1),
            '"' => return Some((text, &s[1 + i + 1..])),
            c => text.push(c),
        }
    }
    None
}

/// What to print for one header value: each warning's text (empty ones, which
/// kubectl skips, left out), or the unparsed rest; control characters escaped.
pub fn texts(value: &[u8]) -> Vec<String> {
    parse(&String::from_utf8_lossy(value))
        .into_iter()
        .map(|w| w.map_or_else(|raw| raw, |w| w.text))
        .filter(|text| !text.trim().is_empty())
        .map(|text| printable(&text))
        .collect()
}

fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Where warnings go: each distinct text once, as `Warning: text`, the first
/// word yellow when colour is on (as kubectl). Clones share what was shown.
#[derive(Clone)]
pub struct Warnings(Arc<Mutex<Shown>>);

struct Shown {
    seen: HashSet<String>,
    out: Box<dyn Write + Send>,
    colour: bool,
}

impl Warnings {
    /// Writes to `out`.
    pub fn new(out: impl Write + Send + 'static, colour: bool) -> Self {
        Self(Arc::new(Mutex::new(Shown {
            seen: HashSet::new(),
            out: Box::new(out),
            colour,
        })))
    }

    /// Writes to stderr, in colour on a terminal without `NO_COLOR`.
    pub fn stderr() -> Self {
        let colour = crate::table::colour_allowed(std::io::stderr().is_terminal());
        Self::new(std::io::stderr(), colour)
    }

    /// Shows the warnings of an answer's headers not shown before.
    pub fn show(&self, headers: &HeaderMap) {
        let mut values = headers.get_all(WARNING).iter().peekable();
        if values.peek().is_none() {
            return;
        }
        // A poisoned lock only means another thread panicked mid-write.
        let mut shown = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Shown { seen, out, colour } = &mut *shown;
        for text in values.flat_map(|v| texts(v.as_bytes())) {
            if !seen.insert(text.clone()) {
                continue;
            }
            let label = if *colour {
                "\x1b[33;1mWarning:\x1b[0m"
            } else {
                "Warning:"
            };
            // Nobody reading stderr any more is nobody to warn.
            let _ = writeln!(out, "{label} {text}").and_then(|()| out.flush());
        }
    }
}

/// A tower layer that shows the warnings of every answer (whatever its status)
/// as it arrives, for [`kube::client::ClientBuilder::with_layer`].
pub fn layer<B>(
    warnings: Warnings,
) -> MapResponseLayer<impl Fn(http::Response<B>) -> http::Response<B> + Clone> {
    MapResponseLayer::new(move |response: http::Response<B>| {
        warnings.show(response.headers());
        response
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(code: u16, agent: &str, text: &str) -> Result<Warning, String> {
        Ok(Warning {
            code,
            agent: agent.to_owned(),
            text: text.to_owned(),
        })
    }

    #[test]
    fn the_api_servers_form() {
        assert_eq!(
            parse(
                r#"299 - "spec.apps[0].branch: imageTagPrefix sanitised from 'feature/x' to 'feature-x'""#
            ),
            [ok(
                299,
                "-",
                "spec.apps[0].branch: imageTagPrefix sanitised from 'feature/x' to 'feature-x'"
            )]
        );
    }

    #[test]
    fn escaped_quotes_and_backslashes_are_unescaped() {
        assert_eq!(
            parse(r#"299 - "secretRef \"git-creds\" must exist; a \\ stays""#),
            [ok(
                299,
                "-",
                r#"secretRef "git-creds" must exist; a \ stays"#
            )]
        );
        // A comma inside the text does not split it.
        assert_eq!(
            parse(r#"299 - "a, \"b\", c""#),
            [ok(299, "-", r#"a, "b", c"#)]
        );
    }

    #[test]
    fn several_warnings_in_one_header_with_dates_and_agents() {
        assert_eq!(
            parse(
                r#"299 - "first", 199 proxy.example:8080 "second" "Sat, 21 Nov 2026 12:00:00 GMT" ,, 299 - "third""#
            ),
            [
                ok(299, "-", "first"),
                ok(199, "proxy.example:8080", "second"),
                ok(299, "-", "third"),
            ]
        );
    }

    #[test]
    fn what_does_not_parse_is_kept_as_it_came() {
        assert_eq!(parse("just some text"), [Err("just some text".into())]);
        assert_eq!(
            parse(r#"299 - "unterminated"#),
            [Err(r#"299 - "unterminated"#.into())]
        );
        assert_eq!(
            parse(r#"299 - unquoted text"#),
            [Err("299 - unquoted text".into())]
        );
        assert_eq!(
            parse(r#"299 "no agent""#),
            [Err(r#"299 "no agent""#.into())]
        );
        // Trailing junk makes the warning malformed, kept trimmed as a whole.
        assert_eq!(
            parse(r#" 299 - "fine" garbage "#),
            [Err(r#"299 - "fine" garbage"#.into())]
        );
        // The good ones before the bad part are kept.
        assert_eq!(
            parse(r#"299 - "fine", 12 - "short code""#),
            [ok(299, "-", "fine"), Err(r#"12 - "short code""#.into())]
        );
        assert_eq!(parse(" , "), []);
    }

    #[test]
    fn texts_are_printable() {
        assert_eq!(
            texts(br#"299 - "a", 299 - "", garbage"#),
            ["a", "garbage"],
            "empty texts are skipped, malformed rests kept"
        );
        assert_eq!(
            texts(b"299 - \"red \x1b[31m alert\""),
            ["red \\u{1b}[31m alert"]
        );
        assert_eq!(
            texts("299 - \"caf\u{e9} \u{2192} ok\"".as_bytes()),
            ["caf\u{e9} \u{2192} ok"]
        );
        assert_eq!(texts(b"299 - \"bad \xff byte\""), ["bad \u{fffd} byte"]);
    }

    /// A writer whose text the test can read back.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(WARNING, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn each_text_once_across_headers_and_answers() {
        let buffer = Buffer::default();
        let warnings = Warnings::new(buffer.clone(), false);
        warnings.show(&headers(&[r#"299 - "one", 299 - "two""#, r#"299 - "one""#]));
        warnings
            .clone()
            .show(&headers(&[r#"299 - "two", 299 - "three""#]));
        warnings.show(&HeaderMap::new());
        assert_eq!(
            buffer.text(),
            "Warning: one\nWarning: two\nWarning: three\n"
        );
    }

    #[test]
    fn colour_marks_the_label_only() {
        let buffer = Buffer::default();
        Warnings::new(buffer.clone(), true).show(&headers(&[r#"299 - "careful""#]));
        assert_eq!(buffer.text(), "\x1b[33;1mWarning:\x1b[0m careful\n");
    }
}

//! The `rel="next"` target of a `Link` header (RFC 8288), as GitHub sends it
//! for pagination: `<https://api.github.com/…&page=2>; rel="next",
//! <…&page=5>; rel="last"`. Written by hand: it is a few lines, and no crate
//! in the tree parses `Link`.

/// The URL of the link whose `rel` includes `next`, if any.
pub(crate) fn next(header: &str) -> Option<&str> {
    // URLs are between `<` and `>` and never contain them (RFC 3986), so a
    // link ends at the first `,` after its `>`.
    let mut rest = header;
    while let Some(open) = rest.find('<') {
        let after_open = &rest[open + 1..];
        let close = after_open.find('>')?;
        let url = &after_open[..close];
        let params_and_more = &after_open[close + 1..];
        let params_end = params_and_more.find('<').unwrap_or(params_and_more.len());
        let params = &params_and_more[..params_end];
        let is_next = params.split(';').any(|param| {
            let Some((name, value)) = param.split_once('=') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_end_matches(',')
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|rel| rel.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(url);
        }
        rest = &params_and_more[params_end..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::next;

    #[test]
    fn finds_next_among_githubs_links() {
        let h = r#"<https://api.github.com/repositories/1/pulls?state=open&per_page=100&page=1>; rel="prev", <https://api.github.com/repositories/1/pulls?state=open&per_page=100&page=3>; rel="next", <https://api.github.com/repositories/1/pulls?state=open&per_page=100&page=3>; rel="last", <https://api.github.com/repositories/1/pulls?state=open&per_page=100&page=1>; rel="first""#;
        assert_eq!(
            next(h),
            Some("https://api.github.com/repositories/1/pulls?state=open&per_page=100&page=3")
        );
    }

    #[test]
    fn the_last_page_has_no_next() {
        let h = r#"<https://x/p?page=1>; rel="first", <https://x/p?page=2>; rel="prev""#;
        assert_eq!(next(h), None);
        assert_eq!(next(""), None);
        assert_eq!(next("garbage"), None);
        assert_eq!(next("<unterminated; rel=next"), None);
    }

    #[test]
    fn accepts_unquoted_and_multi_valued_rel() {
        assert_eq!(next("<https://x/a>; rel=next"), Some("https://x/a"));
        assert_eq!(
            next(r#"<https://x/b>; rel="last next""#),
            Some("https://x/b")
        );
        assert_eq!(next(r#"<https://x/c>; title="nextish"; rel="prev""#), None);
    }
}

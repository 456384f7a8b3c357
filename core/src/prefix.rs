//! Image tag prefixes: how branches become prefixes, which prefixes are valid,
//! the ImagePolicy pattern that selects a prefix's builds, and the grammar of
//! a build tag ([`BuildTag`]).
//!
//! CI tags each build `<prefix>-<git sha>-<unix seconds>`. Docker limits a tag
//! to 128 characters from `[A-Za-z0-9_.-]`, starting with `[A-Za-z0-9_]`.

/// Docker's limit on the length of a tag.
pub const MAX_TAG: usize = 128;
/// Room a build needs after the prefix: `-` + 40 hex digits + `-` + 10 digits.
pub const BUILD_SUFFIX: usize = 1 + 40 + 1 + 10;
/// Longest prefix whose builds still fit the tag limit.
pub const MAX_PREFIX: usize = MAX_TAG - BUILD_SUFFIX;

fn is_tag_char(c: char) -> bool {
    u8::try_from(c).is_ok_and(is_tag_byte)
}

/// [`is_tag_char`] of a byte: every byte of a multi-byte character is not.
fn is_tag_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// Turns a git branch into a tag prefix the way CI tools tag images: each run
/// of characters outside `[A-Za-z0-9._-]` becomes one `-`, and leading `.`
/// and `-` are trimmed. The result may be empty or too long; see [`prefix_problem`].
pub fn sanitise_branch(branch: &str) -> String {
    // Byte by byte: tag characters are ASCII, and every byte of a multi-byte
    // character is outside them, so a run of bytes is a run of characters.
    let mut out = Vec::with_capacity(branch.len());
    let mut in_run = false;
    for b in branch.bytes() {
        if is_tag_byte(b) {
            // Leading `.` and `-` are trimmed as they come.
            if !(out.is_empty() && matches!(b, b'.' | b'-')) {
                out.push(b);
            }
            in_run = false;
        } else if !in_run {
            if !out.is_empty() {
                out.push(b'-');
            }
            in_run = true;
        }
    }
    String::from_utf8(out).expect("only ASCII bytes are written")
}

/// What is wrong with a tag prefix, if anything.
pub fn prefix_problem(prefix: &str) -> Option<String> {
    let Some(first) = prefix.chars().next() else {
        return Some("is empty".to_owned());
    };
    if !(first.is_ascii_alphanumeric() || first == '_') {
        return Some(format!(
            "starts with '{first}' (a tag starts with a letter, digit or '_')"
        ));
    }
    if let Some(bad) = prefix.chars().find(|c| !is_tag_char(*c)) {
        return Some(format!(
            "contains '{bad}' (a tag holds only letters, digits, '.', '_' and '-')"
        ));
    }
    if prefix.len() > MAX_PREFIX {
        return Some(format!(
            "is {} characters long; with '-<40 hex sha>-<10 digit timestamp>' it exceeds Docker's {MAX_TAG}-character tag limit (at most {MAX_PREFIX})",
            prefix.len()
        ));
    }
    None
}

/// Escapes the characters that are special in Go's RE2 syntax (what Flux's
/// image-reflector-controller compiles), like Go's `regexp.QuoteMeta`.
pub fn quote_meta(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The ImagePolicy `filterTags.pattern` selecting the builds of `prefix`:
/// `^<escaped prefix>-[a-fA-F0-9]+-(?P<ts>[0-9]+)$`.
pub fn policy_pattern(prefix: &str) -> String {
    format!("^{}-[a-fA-F0-9]+-(?P<ts>[0-9]+)$", quote_meta(prefix))
}

/// The ImagePolicy `filterTags.extract` matching [`policy_pattern`].
pub const POLICY_EXTRACT: &str = "$ts";

/// The parts of a build tag `<prefix>-<git sha>-<unix seconds>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildTag<'a> {
    /// Everything before the last two `-`: the tag prefix (not checked
    /// against [`prefix_problem`]).
    pub prefix: &'a str,
    /// The hex digits of the git sha (any length, at least one).
    pub sha: &'a str,
    /// The digits of the build time (at least one).
    pub timestamp: &'a str,
}

impl<'a> BuildTag<'a> {
    /// Splits `tag` at its last two `-`; None unless the last part is
    /// digits and the one before it hex digits (both non-empty), which is
    /// what [`policy_pattern`] matches after the prefix.
    pub fn parse(tag: &'a str) -> Option<BuildTag<'a>> {
        let mut parts = tag.rsplitn(3, '-');
        let (timestamp, sha, prefix) = (parts.next()?, parts.next()?, parts.next()?);
        let digits = !timestamp.is_empty() && timestamp.bytes().all(|b| b.is_ascii_digit());
        let hex = !sha.is_empty() && sha.bytes().all(|b| b.is_ascii_hexdigit());
        (digits && hex).then_some(BuildTag {
            prefix,
            sha,
            timestamp,
        })
    }

    /// Whether this is a build of the prefix whose ImagePolicy pattern is
    /// `pattern` (as [`policy_pattern`] writes it).
    pub fn fits(&self, pattern: &str) -> bool {
        policy_pattern(self.prefix) == pattern
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule as first written, character by character.
    fn sanitise_reference(branch: &str) -> String {
        let mut out = String::new();
        let mut in_run = false;
        for c in branch.chars() {
            if is_tag_char(c) {
                out.push(c);
                in_run = false;
            } else if !in_run {
                out.push('-');
                in_run = true;
            }
        }
        out.trim_start_matches(['.', '-']).to_owned()
    }

    #[test]
    fn sanitising_byte_by_byte_is_the_rule_character_by_character() {
        let alphabet = ['a', 'Z', '0', '.', '_', '-', '/', ' ', 'ü', '😀'];
        let mut branches = vec![String::new()];
        for _ in 0..5 {
            branches = branches
                .iter()
                .flat_map(|b| alphabet.iter().map(move |c| format!("{b}{c}")))
                .collect();
            for branch in &branches {
                assert_eq!(
                    sanitise_branch(branch),
                    sanitise_reference(branch),
                    "{branch:?}"
                );
            }
        }
    }

    #[test]
    fn sanitises_like_ci() {
        assert_eq!(sanitise_branch("feature/new-basket"), "feature-new-basket");
        assert_eq!(sanitise_branch("feat//x  y"), "feat-x-y");
        assert_eq!(sanitise_branch("/.-weird"), "weird");
        assert_eq!(sanitise_branch("release/1.2"), "release-1.2");
        assert_eq!(sanitise_branch("ümlaut"), "mlaut");
        assert_eq!(sanitise_branch("///"), "");
        assert_eq!(sanitise_branch("fix/"), "fix-");
        assert_eq!(sanitise_branch("ü-x"), "x");
    }

    #[test]
    fn validates_prefixes() {
        assert!(prefix_problem("main").is_none());
        assert!(prefix_problem("_x.y-z").is_none());
        assert!(prefix_problem("").unwrap().contains("empty"));
        assert!(
            prefix_problem(".hidden")
                .unwrap()
                .contains("starts with '.'")
        );
        assert!(prefix_problem("a/b").unwrap().contains("contains '/'"));
        assert!(prefix_problem(&"a".repeat(MAX_PREFIX)).is_none());
        assert!(
            prefix_problem(&"a".repeat(MAX_PREFIX + 1))
                .unwrap()
                .contains("128")
        );
    }

    #[test]
    fn build_tags_split_at_the_last_two_dashes() {
        let tag = BuildTag::parse("feature-x-0a1b-1763712000").unwrap();
        assert_eq!(
            tag,
            BuildTag {
                prefix: "feature-x",
                sha: "0a1b",
                timestamp: "1763712000"
            }
        );
        assert!(tag.fits(&policy_pattern("feature-x")));
        assert!(!tag.fits(&policy_pattern("feature")));
        for bad in [
            "main-xyz-1",
            "main-abc-",
            "main-abc",
            "main",
            "main--1",
            "main-abc-1x",
        ] {
            assert_eq!(BuildTag::parse(bad), None, "{bad}");
        }
        // What policy_pattern matches, BuildTag parses, and the other way round.
        let re = regex::Regex::new(&policy_pattern("release-1.2")).unwrap();
        for tag in [
            "release-1.2-cafe-17",
            "release-1.2-CAFE-1",
            "release-1.2-x-1",
        ] {
            let parsed =
                BuildTag::parse(tag).is_some_and(|b| b.fits(&policy_pattern("release-1.2")));
            assert_eq!(parsed, re.is_match(tag), "{tag}");
        }
    }

    #[test]
    fn pattern_escapes_metacharacters() {
        let pattern = policy_pattern("release-1.2");
        assert_eq!(pattern, r"^release-1\.2-[a-fA-F0-9]+-(?P<ts>[0-9]+)$");
        let re = regex::Regex::new(&pattern).unwrap();
        assert!(re.is_match("release-1.2-cafe0123-1700000000"));
        assert!(!re.is_match("release-1x2-cafe0123-1700000000"));
        let caps = re.captures("release-1.2-cafe0123-1700000000").unwrap();
        assert_eq!(&caps["ts"], "1700000000");
    }
}

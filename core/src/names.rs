//! Kubernetes name rules: DNS-1123 labels and subdomains, and the names this
//! project generates.

/// Longest DNS-1123 label.
pub const MAX_LABEL: usize = 63;

/// Length of the random suffix the API server appends to `generateName`.
pub const GENERATE_NAME_SUFFIX: usize = 5;

/// Why a string is not a DNS-1123 label.
pub fn dns1123_label_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("must not be empty");
    }
    if name.len() > MAX_LABEL {
        return Some("must be at most 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Some("must consist of lower-case letters, digits and '-'");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some("must start and end with a letter or digit");
    }
    None
}

/// Whether `name` is a valid DNS-1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63).
pub fn is_dns1123_label(name: &str) -> bool {
    dns1123_label_problem(name).is_none()
}

/// Longest DNS-1123 subdomain (most object names).
pub const MAX_SUBDOMAIN: usize = 253;

/// Why a string is not a DNS-1123 subdomain (an object name such as a
/// Secret's, or a DNS name): at most 253 characters, and every dot-separated
/// part a [DNS-1123 label](dns1123_label_problem).
pub fn dns1123_subdomain_problem(name: &str) -> Option<&'static str> {
    if name.len() > MAX_SUBDOMAIN {
        return Some("must be at most 253 characters");
    }
    name.split('.').find_map(dns1123_label_problem)
}

/// Whether `name` is a valid DNS-1123 subdomain; see [`dns1123_subdomain_problem`].
pub fn is_dns1123_subdomain(name: &str) -> bool {
    dns1123_subdomain_problem(name).is_none()
}

/// The name of a child object of an environment: `<env>-<part>`.
pub fn child_name(environment: &str, part: &str) -> String {
    format!("{environment}-{part}")
}

/// Whether `key` is a valid Flux `postBuild.substitute` variable name.
pub fn is_substitute_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert!(is_dns1123_label("alice-checkout"));
        assert!(is_dns1123_label("a"));
        assert!(is_dns1123_label(&"a".repeat(63)));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(!is_dns1123_label("Alice"));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label("a-"));
        assert!(!is_dns1123_label("a_b"));
        assert!(!is_dns1123_label(""));
    }

    #[test]
    fn subdomains() {
        assert!(is_dns1123_subdomain(
            "ephemeral-webhook.ephemeral-system.svc"
        ));
        assert!(is_dns1123_subdomain("a"));
        assert_eq!(
            dns1123_subdomain_problem(&"a.".repeat(127)),
            Some("must be at most 253 characters")
        );
        assert_eq!(dns1123_subdomain_problem("a..b"), Some("must not be empty"));
        assert_eq!(
            dns1123_subdomain_problem("Web.example"),
            Some("must consist of lower-case letters, digits and '-'")
        );
        assert!(!is_dns1123_subdomain(&format!("{}.a", "a".repeat(64))));
    }

    #[test]
    fn substitute_keys() {
        assert!(is_substitute_key("tier"));
        assert!(is_substitute_key("_x9"));
        assert!(!is_substitute_key("9x"));
        assert!(!is_substitute_key("a-b"));
        assert!(!is_substitute_key(""));
    }
}

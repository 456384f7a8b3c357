#!/usr/bin/env bash
# Fills in the krew plugin manifest for a release: the version, and for every
# platform in the template the download URI and sha256 of its archive.
#
# Usage: krew/package.sh [--base-url URL] [--template FILE] VERSION ARCHIVE_DIR [OUTPUT]
#
#   VERSION      release version, 1.2.3 or v1.2.3 (the manifest says v1.2.3)
#   ARCHIVE_DIR  folder with kubectl-ephemeral-<VERSION without v>-<os>-<arch>.tar.gz
#                (.zip for windows), one per platform of the template
#   OUTPUT       where to write the manifest (default: stdout)
#   --base-url   where the archives are downloaded from (default: $KREW_BASE_URL,
#                else https://example.invalid/kubectl-ephemeral/releases/download/v<VERSION>)
#   --template   manifest template (default: ephemeral.yaml beside this script)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
template="$here/ephemeral.yaml"
base_url="${KREW_BASE_URL:-}"

usage() {
    sed -n '5,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
}
die() {
    echo "package.sh: error: $*" >&2
    exit 1
}

args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
    --base-url) [[ $# -ge 2 ]] || usage; base_url="$2"; shift 2 ;;
    --base-url=*) base_url="${1#*=}"; shift ;;
    --template) [[ $# -ge 2 ]] || usage; template="$2"; shift 2 ;;
    --template=*) template="${1#*=}"; shift ;;
    -h | --help) usage ;;
    --) shift; args+=("$@"); break ;;
    -*) echo "package.sh: unknown option $1" >&2; usage ;;
    *) args+=("$1"); shift ;;
    esac
done
[[ ${#args[@]} -ge 2 && ${#args[@]} -le 3 ]] || usage
version="${args[0]#v}"
archive_dir="${args[1]}"
output="${args[2]:-}"

[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$ ]] ||
    die "version '${args[0]}' is not a semantic version such as 1.2.3 or v1.2.3"
[[ -d "$archive_dir" ]] || die "archive folder '$archive_dir' does not exist"
[[ -f "$template" ]] || die "template '$template' does not exist"
base_url="${base_url:-https://example.invalid/kubectl-ephemeral/releases/download/v$version}"
base_url="${base_url%/}"
[[ "$base_url" =~ ^https?://[^[:space:]\"]+$ ]] || die "base URL '$base_url' is not an http(s) URL without spaces or quotes"

sha256() {
    if command -v sha256sum >/dev/null; then
        sha256sum "$1" | cut -d' ' -f1
    else
        shasum -a 256 "$1" | cut -d' ' -f1
    fi
}
# Escapes a value for the replacement side of a sed s||| command.
sed_escape() {
    printf '%s' "$1" | sed -e 's/[\\&|]/\\&/g'
}

platforms="$(grep -o '@URI:[a-z0-9]*/[a-z0-9]*@' "$template" | sed 's/^@URI:\(.*\)@$/\1/' | sort -u)"
[[ -n "$platforms" ]] || die "template '$template' has no @URI:<os>/<arch>@ placeholders"

script="s|@VERSION@|$(sed_escape "$version")|g"$'\n'
missing=()
for platform in $platforms; do
    os="${platform%/*}"
    arch="${platform#*/}"
    ext="tar.gz"
    [[ "$os" == windows ]] && ext="zip"
    name="kubectl-ephemeral-$version-$os-$arch.$ext"
    if [[ ! -f "$archive_dir/$name" ]]; then
        missing+=("$archive_dir/$name")
        continue
    fi
    sum="$(sha256 "$archive_dir/$name")"
    script+="s|@URI:$platform@|$(sed_escape "$base_url/$name")|g"$'\n'
    script+="s|@SHA256:$platform@|$sum|g"$'\n'
done
if [[ ${#missing[@]} -gt 0 ]]; then
    for file in "${missing[@]}"; do
        echo "package.sh: error: missing archive $file" >&2
    done
    exit 1
fi

# Drop the template's leading comment, then fill in the placeholders.
manifest="$(awk 'head && /^#/ { next } { head = 0; print }' head=1 "$template" | sed -e "$script")"
if left="$(grep -o '@[A-Z0-9]*\(:[a-z0-9/]*\)\{0,1\}@' <<<"$manifest")"; then
    die "placeholders left unfilled: $(tr '\n' ' ' <<<"$left")"
fi

if [[ -z "$output" || "$output" == - ]]; then
    printf '%s\n' "$manifest"
else
    tmp="$(mktemp "$output.XXXXXX")"
    printf '%s\n' "$manifest" >"$tmp"
    mv "$tmp" "$output"
    echo "wrote $output" >&2
fi

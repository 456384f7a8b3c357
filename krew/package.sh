#!/usr/bin/env bash
# Release packaging of the kubectl plugin for krew: archives of
# kubectl-ephemeral (binary + LICENSE) and the krew manifest that points at them.
#
# Usage:
#   krew/package.sh [all] [--dist DIR] [--base-url URL]
#       Builds a release archive for every Rust target installed here that krew
#       knows (rustup target list --installed), then writes DIR/ephemeral.yaml
#       listing just those platforms (manifest --partial).
#   krew/package.sh archive [--target TRIPLE] [--binary FILE] [--version V] [--dist DIR]
#       One archive: cargo build --release --locked --target TRIPLE, unless
#       --binary gives an already built kubectl-ephemeral for that target.
#       TRIPLE defaults to the host. Prints the archive's path.
#   krew/package.sh manifest [--version V] [--base-url URL] [--template FILE] [--partial] DIR [OUTPUT]
#       Fills in the manifest template from the archives in DIR: version, and
#       per platform the download URI and sha256. Every platform of the
#       template needs its archive (a release), unless --partial, which leaves
#       out platforms without one (a local build). OUTPUT defaults to stdout.
#
#   --version   1.2.3 or v1.2.3 (the manifest says v1.2.3, archive names 1.2.3);
#               default: version of [workspace.package] in Cargo.toml
#   --dist      where archives (and, for `all`, the manifest) go; default dist/
#   --base-url  where the archives are downloaded from; default $KREW_BASE_URL,
#               else https://example.invalid/kubectl-ephemeral/releases/download/v<VERSION>
#
# Archives: kubectl-ephemeral-<VERSION>-<os>-<arch>.tar.gz (.zip for windows)
# with kubectl-ephemeral (kubectl-ephemeral.exe) and LICENSE at the top.
# With GNU tar the .tar.gz is byte-for-byte reproducible (files dated
# $SOURCE_DATE_EPOCH, default 1980-01-01).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
template="$here/ephemeral.yaml"
base_url="${KREW_BASE_URL:-}"
name=kubectl-ephemeral

usage() {
    sed -n '5,30s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
}
die() {
    echo "package.sh: error: $*" >&2
    exit 1
}
need_value() {
    [[ $# -ge 2 && -n "$2" ]] || { echo "package.sh: $1 needs a value" >&2; usage; }
}

# The version of [workspace.package] in the workspace's Cargo.toml.
workspace_version() {
    awk '
        /^\[/ { in_package = ($0 == "[workspace.package]") ; next }
        in_package && /^version *=/ { gsub(/^version *= *"|".*$/, ""); print; exit }
    ' "$root/Cargo.toml"
}

# Checks and normalises a version: prints it without the leading v.
check_version() {
    local version="${1#v}"
    [[ "$version" =~ ^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$ ]] ||
        die "version '$1' is not a semantic version such as 1.2.3 or v1.2.3"
    printf '%s\n' "$version"
}

# The krew platform (os/arch) of a Rust target triple.
platform_of() {
    case "$1" in
    x86_64-unknown-linux-gnu | x86_64-unknown-linux-musl) echo linux/amd64 ;;
    aarch64-unknown-linux-gnu | aarch64-unknown-linux-musl) echo linux/arm64 ;;
    x86_64-apple-darwin) echo darwin/amd64 ;;
    aarch64-apple-darwin) echo darwin/arm64 ;;
    x86_64-pc-windows-msvc | x86_64-pc-windows-gnu) echo windows/amd64 ;;
    *) return 1 ;;
    esac
}

host_target() {
    rustc -vV | sed -n 's/^host: //p'
}

sha256() {
    if command -v sha256sum >/dev/null; then
        sha256sum "$1" | cut -d' ' -f1
    else
        shasum -a 256 "$1" | cut -d' ' -f1
    fi
}

# Zips the files in the current directory ($2...) into $1.
make_zip() {
    local out="$1"
    shift
    if command -v zip >/dev/null; then
        zip -q -X "$out" "$@"
    elif command -v 7z >/dev/null; then
        7z a -tzip -bso0 "$out" "$@"
    elif command -v python3 >/dev/null; then
        python3 -m zipfile -c "$out" "$@"
    else
        die "making $out needs zip, 7z or python3"
    fi
}

cmd_archive() {
    local target="" binary="" version="" dist="$root/dist"
    while [[ $# -gt 0 ]]; do
        case "$1" in
        --target) need_value "$@"; target="$2"; shift 2 ;;
        --binary) need_value "$@"; binary="$2"; shift 2 ;;
        --version) need_value "$@"; version="$2"; shift 2 ;;
        --dist) need_value "$@"; dist="$2"; shift 2 ;;
        -h | --help) usage ;;
        *) echo "package.sh archive: unexpected argument $1" >&2; usage ;;
        esac
    done
    version="$(check_version "${version:-$(workspace_version)}")"
    target="${target:-$(host_target)}"
    local platform
    platform="$(platform_of "$target")" ||
        die "target $target is not one krew is packaged for (linux, darwin, windows on x86_64 or aarch64)"
    local os="${platform%/*}" arch="${platform#*/}"
    local exe=""
    [[ "$os" == windows ]] && exe=".exe"

    if [[ -z "$binary" ]]; then
        echo "package.sh: cargo build --release --locked -p $name --target $target" >&2
        (cd "$root" && cargo build --release --locked -p "$name" --target "$target") >&2
        binary="${CARGO_TARGET_DIR:-$root/target}/$target/release/$name$exe"
    fi
    [[ -f "$binary" ]] || die "binary '$binary' does not exist"
    [[ -f "$root/LICENSE" ]] || die "$root/LICENSE is missing"

    mkdir -p "$dist"
    dist="$(cd "$dist" && pwd)"
    local stage
    stage="$(mktemp -d)"
    # shellcheck disable=SC2064
    trap "rm -rf '$stage'" RETURN
    install -m 0755 "$binary" "$stage/$name$exe"
    install -m 0644 "$root/LICENSE" "$stage/LICENSE"
    # A fixed time in the archive (zip cannot store dates before 1980).
    touch -t 198001010000 "$stage/$name$exe" "$stage/LICENSE"

    local archive
    if [[ "$os" == windows ]]; then
        archive="$dist/$name-$version-$os-$arch.zip"
        rm -f "$archive"
        (cd "$stage" && make_zip "$archive" "$name$exe" LICENSE)
    else
        archive="$dist/$name-$version-$os-$arch.tar.gz"
        local tar_flags=()
        if tar --version 2>/dev/null | grep -q 'GNU tar'; then
            # Same input, same bytes: fixed order, owner and time.
            tar_flags=(--sort=name --owner=0 --group=0 --numeric-owner
                --mtime="@${SOURCE_DATE_EPOCH:-315532800}")
        fi
        tar -C "$stage" "${tar_flags[@]}" -cf - "$name" LICENSE | gzip -n -9 >"$archive.tmp"
        mv "$archive.tmp" "$archive"
    fi
    echo "$archive"
}

cmd_manifest() {
    local version="" partial=0 args=()
    while [[ $# -gt 0 ]]; do
        case "$1" in
        --version) need_value "$@"; version="$2"; shift 2 ;;
        --base-url) need_value "$@"; base_url="$2"; shift 2 ;;
        --template) need_value "$@"; template="$2"; shift 2 ;;
        --partial) partial=1; shift ;;
        -h | --help) usage ;;
        -*) echo "package.sh manifest: unknown option $1" >&2; usage ;;
        *) args+=("$1"); shift ;;
        esac
    done
    [[ ${#args[@]} -ge 1 && ${#args[@]} -le 2 ]] || usage
    local archive_dir="${args[0]}" output="${args[1]:-}"
    version="$(check_version "${version:-$(workspace_version)}")"
    [[ -d "$archive_dir" ]] || die "archive folder '$archive_dir' does not exist"
    [[ -f "$template" ]] || die "template '$template' does not exist"
    base_url="${base_url:-https://example.invalid/kubectl-ephemeral/releases/download/v$version}"
    base_url="${base_url%/}"
    [[ "$base_url" =~ ^https?://[^[:space:]\"]+$ ]] || die "base URL '$base_url' is not an http(s) URL without spaces or quotes"

    # Escapes a value for the replacement side of a sed s||| command.
    sed_escape() { printf '%s' "$1" | sed -e 's/[\\&|]/\\&/g'; }

    local platforms
    platforms="$(grep -o '@URI:[a-z0-9]*/[a-z0-9]*@' "$template" | sed 's/^@URI:\(.*\)@$/\1/' | sort -u)"
    [[ -n "$platforms" ]] || die "template '$template' has no @URI:<os>/<arch>@ placeholders"

    local script="s|@VERSION@|$(sed_escape "$version")|g"$'\n'
    local missing=() present=()
    for platform in $platforms; do
        local os="${platform%/*}" arch="${platform#*/}" ext="tar.gz"
        [[ "$os" == windows ]] && ext="zip"
        local file="$name-$version-$os-$arch.$ext"
        if [[ ! -f "$archive_dir/$file" ]]; then
            missing+=("$archive_dir/$file")
            continue
        fi
        present+=("$platform")
        script+="s|@URI:$platform@|$(sed_escape "$base_url/$file")|g"$'\n'
        script+="s|@SHA256:$platform@|$(sha256 "$archive_dir/$file")|g"$'\n'
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        if [[ $partial -eq 0 ]]; then
            for file in "${missing[@]}"; do
                echo "package.sh: error: missing archive $file" >&2
            done
            echo "package.sh: a release needs every platform of $template; --partial leaves the missing ones out" >&2
            exit 1
        fi
        for file in "${missing[@]}"; do
            echo "package.sh: leaving out the platform of missing $file" >&2
        done
    fi
    [[ ${#present[@]} -gt 0 ]] || die "no archive of any platform in '$archive_dir'"

    # Drop the template's leading comment and the items of spec.platforms
    # whose archive is missing, then fill in the placeholders.
    local manifest
    manifest="$(awk -v keep=" ${present[*]} " '
        function flush() {
            if (item != "" && (platform == "" || index(keep, " " platform " ") > 0)) printf "%s", item
            item = ""; platform = ""
        }
        head && /^#/ { next }
        { head = 0 }
        /^  platforms:/ { in_platforms = 1; print; next }
        in_platforms && /^  - / { flush() }
        in_platforms && /^[^ ]/ { flush(); in_platforms = 0 }
        in_platforms {
            item = item $0 "\n"
            if (match($0, /@URI:[a-z0-9]*\/[a-z0-9]*@/)) platform = substr($0, RSTART + 5, RLENGTH - 6)
            next
        }
        { print }
        END { flush() }
    ' head=1 "$template" | sed -e "$script")"
    local left
    if left="$(grep -o '@[A-Z0-9]*\(:[a-z0-9/]*\)\{0,1\}@' <<<"$manifest")"; then
        die "placeholders left unfilled: $(tr '\n' ' ' <<<"$left")"
    fi

    if [[ -z "$output" || "$output" == - ]]; then
        printf '%s\n' "$manifest"
    else
        local tmp
        tmp="$(mktemp "$output.XXXXXX")"
        printf '%s\n' "$manifest" >"$tmp"
        chmod 0644 "$tmp"
        mv "$tmp" "$output"
        echo "wrote $output" >&2
    fi
}

cmd_all() {
    local dist="$root/dist"
    while [[ $# -gt 0 ]]; do
        case "$1" in
        --dist) need_value "$@"; dist="$2"; shift 2 ;;
        --base-url) need_value "$@"; base_url="$2"; shift 2 ;;
        -h | --help) usage ;;
        *) echo "package.sh: unexpected argument $1" >&2; usage ;;
        esac
    done
    local targets=() target
    if command -v rustup >/dev/null; then
        while read -r target; do
            platform_of "$target" >/dev/null && targets+=("$target")
        done < <(rustup target list --installed)
    else
        targets=("$(host_target)")
    fi
    [[ ${#targets[@]} -gt 0 ]] || die "no installed Rust target is one krew is packaged for"
    for target in "${targets[@]}"; do
        cmd_archive --target "$target" --dist "$dist" >/dev/null
    done
    cmd_manifest --partial "$dist" "$dist/ephemeral.yaml"
}

case "${1:-all}" in
archive) shift; cmd_archive "$@" ;;
manifest) shift; cmd_manifest "$@" ;;
all) [[ $# -gt 0 ]] && shift; cmd_all "$@" ;;
-h | --help) usage ;;
-*) cmd_all "$@" ;;
*) echo "package.sh: unknown command $1" >&2; usage ;;
esac

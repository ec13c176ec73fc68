#!/usr/bin/env bash
# The documentation stays true to the repository:
#  1. no citation of design notes or a style guide outside the repository (the old names, or a
#     path into a shared folder next to it): docs/design.md is the one place;
#  2. every docs/... path cited in code, scripts, CMake and docs exists, every relative link in
#     the Markdown files resolves, every "docs/design.md §n" names a section that exists, and
#     every quoted title after a docs file (docs/operations.md "Rolling upgrade") is a heading there;
#  3. every key of the example config (deploy/mpfailover.conf.example) is in docs/configuration.md;
#  4. every command the CLI lists in --help has a "#### command" section in docs/cli.md, with
#     each of its options, and every mpfailoverd option is in docs/cli.md's mpfailoverd page.
# Usage: docs_test.sh SOURCE_DIR MPFAILOVER_BINARY MPFAILOVERD_BINARY
set -uo pipefail
src=$1
cli=$2
daemon=$3
failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

is_pending() { return 1; }  # every document cited exists (the list merged branches used is empty)

# The repository's text files (not build trees, not .git).
mapfile -t files < <(cd "$src" && find . -type d \( -name .git -o -name 'build*' -o -name node_modules \) -prune -o \
    -type f \( -name '*.cpp' -o -name '*.hpp' -o -name '*.c' -o -name '*.h' -o -name '*.sql' \
    -o -name '*.sh' -o -name '*.md' -o -name '*.txt' -o -name '*.yml' -o -name '*.json' \
    -o -name '*.py' -o -name '*.service' -o -name '*.nft' -o -name '*.example' -o -name run \
    -o -path './deploy/bash_completion/*' -o -path './deploy/hooks/*' -o -path './deploy/debian/*' \) \
    -print | sed 's|^\./||' | sort)
((${#files[@]} > 50)) || fail "found only ${#files[@]} files under $src"

# --- 1. citations of documents that are not in the repository ---------------------------------
# The patterns are assembled so that this file does not cite them itself.
old_notes='NOTES''\.md'
old_style='STYLE''\.md'
shared_dir='(^|[^A-Za-z0-9_.-])shared''/'
while IFS= read -r hit; do
    fail "citation of a document outside the repository: $hit"
done < <(cd "$src" && grep -nE "$old_notes|$old_style|$shared_dir" "${files[@]}")

# --- 2. docs/ paths, links, design sections, quoted headings ----------------------------------
while IFS=: read -r file line path; do
    [[ -e $src/$path ]] || is_pending "$path" || fail "$file:$line cites $path, which does not exist"
done < <(cd "$src" && grep -noE '(^|[^A-Za-z0-9_/.-])docs/[A-Za-z0-9_./-]*[A-Za-z0-9_]\.[a-z]+' "${files[@]}" |
    sed -E 's/:[^A-Za-z0-9_]?docs\//:docs\//')

# Relative Markdown links: [text](target), resolved from the linking file's folder.
for f in "${files[@]}"; do
    [[ $f == *.md ]] || continue
    while IFS=: read -r line target; do
        target=${target%%#*}
        [[ -z $target || $target == *://* || $target == mailto:* ]] && continue
        resolved=$(realpath -m --relative-to="$src" "$src/$(dirname "$f")/$target")
        [[ -e $src/$resolved ]] || is_pending "$resolved" ||
            fail "$f:$line links to $target ($resolved), which does not exist"
    done < <(grep -noE '\]\([^) ]+\)' "$src/$f" | sed -E 's/^([0-9]+):\]\((.*)\)$/\1:\2/')
done

design=$src/docs/design.md
while IFS=: read -r file line n; do
    grep -qE "^## $n\. " "$design" || fail "$file:$line cites docs/design.md §$n, which has no section $n"
done < <(cd "$src" && grep -noE 'docs/design\.md §[0-9]+(, §[0-9]+)*' "${files[@]}" |
    sed -E 's/docs\/design\.md //' | awk -F: '{n=split($3, s, /, /); for (i=1; i<=n; i++) { sub(/§/, "", s[i]); print $1 ":" $2 ":" s[i] }}')

while IFS=: read -r file line doc title; do
    [[ -e $src/$doc ]] || continue
    grep -E '^#+ ' "$src/$doc" | grep -qiF -- "$title" ||
        fail "$file:$line cites $doc \"$title\", a heading $doc does not have"
done < <(cd "$src" && grep -noE 'docs/[a-z-]+\.md,? "[^"]+"' "${files[@]}" |
    sed -E 's/^([^:]+):([0-9]+):(docs\/[a-z-]+\.md),? "([^"]+)"$/\1:\2:\3:\4/')

# --- 3. config keys ---------------------------------------------------------------------------
config_doc=$src/docs/configuration.md
example=$src/deploy/mpfailover.conf.example
keys=$(awk '
    /^#? ?\[[a-z_]+\]/ { sub(/^# ?/, ""); gsub(/[\[\]]/, ""); section = $0; next }
    /^#? ?[a-z_]+ = / { sub(/^# ?/, ""); print section "." $1 }' "$example" | sort -u)
(($(wc -l <<<"$keys") >= 20)) || fail "found only $(wc -l <<<"$keys") keys in $example"
for k in $keys; do
    grep -qF "\`$k\`" "$config_doc" || fail "config key $k (in $example) is not in docs/configuration.md"
done

# --- 4. commands and options ------------------------------------------------------------------
cli_doc=$src/docs/cli.md
commands=$("$cli" --help | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } /^$/ { on = 0 }')
(($(wc -l <<<"$commands") >= 10)) || fail "found only $(wc -l <<<"$commands") commands in mpfailover --help"
for c in $commands; do
    section=$(awk -v h="#### $c" '$0 == h { on = 1; next } on && /^#/ { exit } on' "$cli_doc")
    if [[ -z $section ]]; then
        fail "command '$c' (mpfailover --help) has no '#### $c' section in docs/cli.md"
        continue
    fi
    for o in $("$cli" "$c" --help | grep -oE '^ +--[a-z-]+' | tr -d ' ' | sort -u); do
        [[ $o == --help ]] && continue
        grep -qF -- "$o" <<<"$section" || fail "option $o of '$c' is not in its docs/cli.md section"
    done
done
daemon_page=$(awk '$0 == "## mpfailoverd" { on = 1; next } on && /^## / { exit } on' "$cli_doc")
[[ -n $daemon_page ]] || fail "docs/cli.md has no '## mpfailoverd' page"
daemon_options=$("$daemon" --help | grep -oE '^ +--[a-z-]+' | tr -d ' ' | sort -u)
(($(wc -w <<<"$daemon_options") >= 2)) || fail "found only '$daemon_options' in mpfailoverd --help"
for o in $daemon_options; do
    grep -qF -- "$o" <<<"$daemon_page" || fail "mpfailoverd option $o is not in docs/cli.md"
done

if ((failures > 0)); then
    echo "$failures failure(s)"
    exit 1
fi
echo "docs ok: ${#files[@]} files, $(wc -l <<<"$keys") config keys, $(wc -l <<<"$commands") commands"

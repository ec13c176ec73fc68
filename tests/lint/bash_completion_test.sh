#!/usr/bin/env bash
# deploy/bash_completion/mpfailover: sourced in bash, COMPREPLY checked for typical inputs, and
# its command and option lists compared with what the built CLI's --help says, so a command or
# option added to the CLI without its completion fails here.
# Usage: bash_completion_test.sh COMPLETION_FILE MPFAILOVER_BINARY
set -uo pipefail
completion=$1
cli=$2
failures=0

# shellcheck source=/dev/null
source "$completion"

# complete_line "mpfailover fa" -> the candidates, sorted, one line.
complete_line() {
    local line=$1
    read -ra COMP_WORDS <<<"$line"
    [[ $line == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMP_LINE=$line
    COMP_POINT=${#line}
    COMPREPLY=()
    _mpfailover
    printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}

expect() { # expect LINE WANTED: the candidates are exactly WANTED
    local got
    got=$(complete_line "$1")
    if [[ $got != "$2" ]]; then
        echo "FAIL: '$1' completes to '$got', expected '$2'"
        failures=$((failures + 1))
    fi
}

expect_contains() { # expect_contains LINE WORD
    local got
    got=$(complete_line "$1")
    if [[ " $got " != *" $2 "* ]]; then
        echo "FAIL: '$1' completes to '$got', which lacks '$2'"
        failures=$((failures + 1))
    fi
}

expect "mpfailover fa" "failover"
expect "mpfailover s" "skip standalone status switchover"
expect "mpfailover --config /etc/x.conf qu" "queue"
expect "mpfailover --config=/etc/x.conf qu" "queue"
expect "mpfailover --c" "--config"
expect_contains "mpfailover failover --" "--force"
expect_contains "mpfailover failover --" "--json"
expect "mpfailover queue --w" "--watch"
expect "mpfailover conflicts --s" "--since"
expect "mpfailover init-db --a" "--app-schema"
expect "mpfailover verify --r" "--repair"
expect "mpfailover ch" "check"
expect "mpfailover status --f" ""

# --config completes file names (in a scratch directory).
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
touch "$scratch/node-a.conf" "$scratch/node-b.conf"
expect "mpfailover --config $scratch/node-" "$scratch/node-a.conf $scratch/node-b.conf"
expect "mpfailover status --config $scratch/node-a" "$scratch/node-a.conf"
expect "mpfailover keygen --secret-key-file $scratch/node-b" "$scratch/node-b.conf"

# The lists against the CLI: every command of `mpfailover --help`, every option of each
# command's --help, and nothing more.
cli_commands=$("$cli" --help | sed -n '/^commands:/,/^$/p' | awk 'NR > 1 && NF { print $1 }' |
    sort | tr '\n' ' ' | sed 's/ $//')
if [[ -z $cli_commands ]]; then
    echo "FAIL: no commands read from '$cli --help'"
    failures=$((failures + 1))
fi
expect "mpfailover " "$cli_commands"
for command in $cli_commands; do
    # Option names as program_options prints them: "  --json", "  -h [ --help ]".
    options=$("$cli" "$command" --help | grep -oE '^  (-[a-z] \[ )?--[a-z][a-z-]*' |
        grep -oE -- '--[a-z][a-z-]*' | sort -u)
    options=$(printf '%s\n--config\n' "$options" | sort -u | tr '\n' ' ' | sed 's/ $//')
    expect "mpfailover $command --" "$options"
done

if ((failures > 0)); then
    echo "$failures failure(s)"
    exit 1
fi
echo "bash completion: all checks passed"

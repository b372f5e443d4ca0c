#!/usr/bin/env bash
# The core round trip, end to end through the CLI:
#   demo profile (20,000 transactions, 10 statement files) → backup → verify → restore into
#   another user → backup → diff, which must report the same profile.
# Usage: scripts/roundtrip.sh [path/to/fzip]   (default: builds and uses target/release/fzip)
set -euo pipefail
cd "$(dirname "$0")/.."

FZIP="${1:-}"
if [ -z "$FZIP" ]; then
  cargo build --release --locked -p fzip >&2
  FZIP="$PWD/target/release/fzip"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export FZIP_DATA_DIR="$work/data"

step() { printf '\n== %s\n' "$*"; }

step "demo-profile"
"$FZIP" -q demo-profile --user alice --transactions 20000 --files 10
step "backup alice"
"$FZIP" -q backup --user alice -o "$work/alice.fzip"
step "verify"
"$FZIP" -q verify "$work/alice.fzip"
step "restore into bob"
"$FZIP" -q restore "$work/alice.fzip" --user bob
step "backup bob"
"$FZIP" -q backup --user bob -o "$work/bob.fzip"
step "diff"
"$FZIP" -q diff "$work/alice.fzip" "$work/bob.fzip"
step "restore into bob again must refuse (exit 4)"
set +e
"$FZIP" -q restore "$work/alice.fzip" --user bob
code=$?
set -e
if [ "$code" -ne 4 ]; then
  echo "expected exit code 4, got $code" >&2
  exit 1
fi
echo
echo "round trip OK"

#!/usr/bin/env bash
# Sets everything up on a fresh machine and runs every check CI runs: formatting, clippy,
# the header drift check and all tests (Rust, C and C++). `.ci/run` runs exactly this.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

"$root/scripts/setup.sh" --trainer

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace
echo "== all checks passed"

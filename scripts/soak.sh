#!/usr/bin/env bash
# Soak run (not a test): 10^4 sempart_segment calls on the default model through the C ABI,
# printing the resident memory every 1,000 calls (sdk/examples/soak.rs). About 25 minutes on
# 2 cores with the int8 model. Extra arguments go to the example (--calls, --every, --model,
# --width, --height).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo run --quiet --release -p sempart --example soak -- "$@"

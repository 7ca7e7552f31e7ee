#!/usr/bin/env bash
# Runs the fuzz targets of sdk/tests/fuzz.rs (model-file reader, Frame::new, the C ABI's
# arguments) for as long as wanted, each for SECONDS (default 600), from SEED (default: the
# time, printed). A finding fails with the seed and the input saved in target/fuzz-findings/.
#   scripts/fuzz.sh [SECONDS] [SEED]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-600}
seed=${2:-$(date +%s)}
echo "fuzzing each target for $seconds s from seed $seed"
SEMPART_FUZZ_SECONDS=$seconds SEMPART_FUZZ_SEED=$seed \
  cargo test --release -p sempart --test fuzz -- --nocapture --test-threads 3

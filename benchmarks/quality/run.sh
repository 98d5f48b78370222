#!/usr/bin/env bash
# The committed quality run: every bench method on the first 20 MT-Bench and the first 20 AlpacaEval dev prompts,
# on the embedded SmolLM2-135M policy with the MiniLM preference head (`preference-minilm`, the default reward when
# this run was made) and the template mutator.
#
# On a 2-core CPU two single-thread processes decode about twice the tokens per second of one two-thread process
# (measured here: 62 against 33 tokens/s), so each prompt set runs in its own process, and the halves are merged
# into results.jsonl, which the last command summarises and plots. Resumable: after a crash or Ctrl-C, run it again
# and only the missing (prompt, method) rows are computed. Extra arguments go to every `darwin-chains bench` (later
# ones win), and DIR names another run folder, e.g. the run with the current default reward:
#   DIR=benchmarks/quality/runs/default bash benchmarks/quality/run.sh --reward default --methods best-of-5 darwin-3
# The prompts are read from DARWIN_CHAINS_DATA, by default ../shared/data beside the checkout.
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=${DIR:-benchmarks/quality/runs/preference-minilm}
DATA=${DARWIN_CHAINS_DATA:-../shared/data}
SETTINGS=(--data-dir "$DATA" --reward preference-minilm --max-new-tokens 128 --replacement-period 32 --judge reference relevance+distinct --progress off "$@")
BENCH=.venv/bin/darwin-chains
mkdir -p "$DIR/parts"
OMP_NUM_THREADS=1 "$BENCH" bench --prompts mt-bench:20 --out "$DIR/parts/mt-bench.jsonl" "${SETTINGS[@]}" >/dev/null &
FIRST=$!
OMP_NUM_THREADS=1 "$BENCH" bench --prompts alpaca:20 --out "$DIR/parts/alpaca.jsonl" "${SETTINGS[@]}" >/dev/null &
SECOND=$!
wait "$FIRST" && wait "$SECOND"
for kind in jsonl traces.jsonl; do
    cat "$DIR/parts/mt-bench.$kind" "$DIR/parts/alpaca.$kind" > "$DIR/results.$kind"
done
cp "$DIR/parts/mt-bench.settings.json" "$DIR/results.settings.json"
"$BENCH" bench --prompts mt-bench:20 alpaca:20 --out "$DIR/results.jsonl" --plots "$DIR/plots" "${SETTINGS[@]}" \
    | tee "$DIR/results.md"

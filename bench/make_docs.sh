#!/usr/bin/env bash
# Rebuild docs/benchmarks.md from the per-area sections in docs/benchmarks.d/ (run from anywhere).
cd "$(dirname "$0")/.."
{
cat <<'H'
# Benchmarks

Every figure with the command that produced it and the machine it ran on. Unless a section says
otherwise: 2-core x86_64 CPU (AVX2, no AVX-512), 24 GB RAM, no GPU, Python 3.11, torch 2.13 CPU
fp32. On 2026-11-23 most runs shared the 2 cores with other jobs (load average 4-8); sections say
so where it applies, and timings taken under that load are upper bounds.
`python -m bench.run_all --list` prints the commands of the recurring set (`make bench` runs it).

Sections: shop world · semantic IDs · quality (baselines, generative) · model · decoding · serving.
H
for f in world sids quality_baselines quality_generative model decoding serving; do
  if [ -f docs/benchmarks.d/$f.md ]; then echo; echo; sed 's/^# /## /' docs/benchmarks.d/$f.md | sed '1!s/^## \(.*\)$/### \1/' ; fi
done
} > docs/benchmarks.md

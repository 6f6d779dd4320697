"""Decoding benchmark: our trie-constrained batched beam search (oxygen.decoding.generate_items on a
random-weight OxygenModel of the default size) against HF transformers `T5ForConditionalGeneration`
of the same size run with `generate(num_beams=B, prefix_allowed_tokens_fn=<trie lookup>)`.

For each catalogue size (random unique 3-level codes, K = 256 codes per level, so K^3 = 16.8M >= 4N
even at N = 1M) and each beam width it measures requests/s, p50/p99 latency per call, legality (%
of returned items that are in the pool) and uniqueness (% of requests whose k items are distinct),
and the achieved GFLOP/s from an analytic FLOP count (see `oxygen_flops`, `hf_flops`) against the
device's peak: ~110 GFLOP/s fp32 on this CPU (PEAK_GFLOPS), the measured matmul peak in the
autocast dtype on CUDA (bench.peak.measure_peak). Every call decodes ROWS = 2048 beam rows: 64
requests at beam 32, 16 at beam 128, 8 at beam 256, 4 at beam 512; each request returns k = 20 items.
`--device` puts both models and their inputs on the device (HF on the same one), `--precision` runs
both engines' calls in `oxygen.device.autocast` (auto: bf16 on CUDA, fp32 on the CPU); on CUDA every
timed call is bracketed by torch.cuda.synchronize.
Input: a default-size ModelBatch with 10 short-history items, 40 long-history items of which IGR
keeps 10, a profile, a trigger and an instruction embedding (encoder length 26). HF gets the same
size of model and a 30-token input (the 10 short-history items' SID tokens).

    python -m bench.decoding --quick                  # 3.5k / 20k items, beams 32 and 256
    python -m bench.decoding --out /tmp/decoding.json # full: 3.5k / 20k / 1M, beams 32 / 128 / 256
    python -m bench.decoding --device cuda --sizes 20000,1000000 --beams 32,256,512   # on a GPU (bf16)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from bench.peak import measure_peak, peak_dtype, sync
from oxygen.config import ModelConfig
from oxygen.data.batch import ModelBatch
from oxygen.decoding.generate import generate_items, trie_set
from oxygen.device import autocast, resolve_device
from oxygen.model import OxygenModel
from oxygen.semantic_ids.trie import PrefixTrie

PEAK_GFLOPS = 110.0  # 2-core x86_64 AVX2 fp32 peak (approximate)
ROWS = 2048  # beam rows per call: requests per call = ROWS // beam
K_RETURN = 20
SPECIAL = 2  # HF token ids 0 (pad = decoder start) and 1 (eos); code c of level l is 2 + l*K + c


@dataclass
class Target:
    """Where the engines run: the device, the autocast precision and the peak GFLOP/s to compare with."""

    device: torch.device
    precision: str = "auto"
    peak_gflops: float = PEAK_GFLOPS


@dataclass
class Setup:
    """What one benchmark case needs: the models, the catalogue trie, the widths and the device."""

    model: OxygenModel
    hf: torch.nn.Module | None
    trie: PrefixTrie
    widths: tuple[int, ...]
    rows: int = ROWS  # beam rows per call: requests per call = rows // beam
    target: Target = field(default_factory=lambda: Target(torch.device("cpu")))


def device_target(device: str, precision: str) -> Target:
    """The Target of a --device / --precision setting: on CUDA the peak is measured in the autocast
    dtype (bf16 under auto); on the CPU it is PEAK_GFLOPS."""
    dev = resolve_device(device)
    peak = measure_peak(dev, peak_dtype(dev, precision)) if dev.type == "cuda" else PEAK_GFLOPS
    return Target(dev, precision, peak)


def make_catalogue(n: int, widths: tuple[int, ...], seed: int = 0) -> PrefixTrie:
    """A trie of n items (ids 0..n-1) with random unique code paths Int64[n, L], code l < widths[l]."""
    space = int(np.prod(widths))
    if n > space:
        raise ValueError(f"{n} items do not fit in {space} code paths of widths {widths}; widen a level")
    rng = np.random.default_rng(seed)
    flat = np.unique(rng.integers(0, space, size=int(n * 1.2) + 16))
    while flat.shape[0] < n:
        flat = np.unique(np.concatenate([flat, rng.integers(0, space, size=n)]))
    flat = rng.permutation(flat)[:n]
    codes = np.stack(np.unravel_index(flat, widths), axis=1).astype(np.int64)
    return PrefixTrie(codes, np.arange(n))


def make_batch(cfg: ModelConfig, trie: PrefixTrie, B: int, seed: int = 0) -> ModelBatch:
    """A realistic inference batch of B requests: 10 short + 40 long history items of the catalogue,
    profile, trigger on half the rows, an instruction embedding on every row (no targets)."""
    g = torch.Generator().manual_seed(seed)
    codes = torch.from_numpy(trie.codes)
    S, H, L = 10, 40, len(cfg.codebook_sizes)

    def hist(n: int) -> tuple[torch.Tensor, ...]:
        rows = torch.randint(0, codes.shape[0], (B, n), generator=g)
        return (codes[rows], torch.zeros(B, n, dtype=torch.long), torch.randint(1, 4, (B, n), generator=g),
                torch.randint(1, 6, (B, n), generator=g), torch.ones(B, n, dtype=torch.bool))

    s, lg = hist(S), hist(H)
    return ModelBatch(*s, *lg, profile=torch.randint(0, cfg.profile_size, (B, cfg.profile_slots), generator=g),
                      scenario=torch.randint(1, 6, (B,), generator=g),
                      trigger_codes=codes[torch.randint(0, codes.shape[0], (B,), generator=g)],
                      trigger_mask=torch.arange(B) % 2 == 0,
                      instr_emb=torch.randn(B, cfg.instr_dim, generator=g), instr_mask=torch.ones(B, dtype=torch.bool),
                      cand_codes=torch.zeros(B, 0, L, dtype=torch.long), cand_items=torch.zeros(B, 0, dtype=torch.long),
                      cand_mask=torch.zeros(B, 0, dtype=torch.bool),
                      target_codes=torch.zeros(B, L, dtype=torch.long), target_items=torch.full((B,), -1),
                      weight=torch.ones(B))


def make_hf(widths: tuple[int, ...], cfg: ModelConfig) -> torch.nn.Module:
    """A random-weight HF T5 of the same size as `cfg` (no download); vocab = sum(K_l) + 2 specials."""
    from transformers import T5Config, T5ForConditionalGeneration

    tc = T5Config(vocab_size=SPECIAL + sum(widths), d_model=cfg.d_model, d_kv=cfg.d_model // cfg.n_heads,
                  d_ff=cfg.d_ff, num_layers=cfg.enc_layers, num_decoder_layers=cfg.dec_layers,
                  num_heads=cfg.n_heads, dropout_rate=0.0, pad_token_id=0, eos_token_id=1,
                  decoder_start_token_id=0)
    torch.manual_seed(1)
    return T5ForConditionalGeneration(tc).eval()


def allowed_table(trie: PrefixTrie, widths: tuple[int, ...]) -> dict[tuple[int, ...], list[int]]:
    """{prefix token tuple: allowed next token ids} for every prefix shorter than the depth, in HF
    token space (the trie lookup behind `prefix_allowed_tokens_fn`)."""
    offs = np.cumsum((0,) + widths)
    paths: list[tuple[int, ...]] = [()]
    table: dict[tuple[int, ...], list[int]] = {}
    for level in range(trie.depth):
        lv, base = trie.levels[level], SPECIAL + int(offs[level])
        nxt: list[tuple[int, ...]] = [()] * (int(lv.child_id.max()) + 1)
        for p, path in enumerate(paths):
            lo, hi = int(lv.offsets[p]), int(lv.offsets[p + 1])
            toks = (lv.child_code[lo:hi] + base).tolist()
            table[path] = toks
            if level + 1 < trie.depth:
                for e, t in zip(range(lo, hi), toks):
                    nxt[int(lv.child_id[e])] = path + (t,)
        paths = nxt
    return table


def hf_tokens_to_items(seqs: torch.Tensor, trie: PrefixTrie, widths: tuple[int, ...]) -> list[int | None]:
    """Item id (None when illegal) of each generated sequence Long[R, 1 + L] (decoder start first)."""
    offs = np.cumsum((0,) + widths)
    out = []
    for row in seqs[:, 1:].tolist():
        codes = [t - SPECIAL - int(offs[l]) for l, t in enumerate(row)]
        ok = len(codes) == len(widths) and all(0 <= c < w for c, w in zip(codes, widths))
        out.append(trie.item_of(codes) if ok else None)
    return out


def quality(items: list[list[int | None]], pool: set[int]) -> tuple[float, float]:
    """(legality: share of returned items in the pool, uniqueness: share of requests whose items are
    all distinct) over per-request item lists (None / -1 count as illegal)."""
    flat = [i for row in items for i in row]
    legal = sum(1 for i in flat if i is not None and i in pool) / max(1, len(flat))
    unique = sum(1 for row in items if len(set(row)) == len(row)) / max(1, len(items))
    return legal, unique


def oxygen_flops(cfg: ModelConfig, B: int, beam: int, T: int = 26, P: int = 2) -> float:
    """Analytic FLOPs of one call: the encoder once per request (T tokens), cross K/V once per request,
    the decoder prefix (P positions) once per request, then per beam row and level >= 1 a one-position
    decoder step (self-attn q/k/v/o, cross q/o, FFN, attention over cache and T) and the head over K."""
    d, f, K = cfg.d_model, cfg.d_ff, list(cfg.codebook_sizes)
    enc_tok = 2 * (4 * d * d + 2 * d * f) + 4 * T * d
    dec_tok = lambda t: 2 * (6 * d * d + 2 * d * f) + 4 * (t + T) * d
    per_req = T * enc_tok * cfg.enc_layers + cfg.dec_layers * (2 * T * 2 * d * d + P * dec_tok(P)) + 2 * d * K[0]
    per_beam = sum(cfg.dec_layers * dec_tok(P + l) + 2 * d * K[l] for l in range(1, len(K)))
    return B * per_req + B * beam * per_beam


def hf_flops(cfg: ModelConfig, vocab: int, B: int, beam: int, T: int = 30, L: int = 3) -> float:
    """Analytic FLOPs of HF T5 generate: encoder once per request, then every beam row decodes L
    positions over the full vocab, with cross K/V computed once per beam row (HF expands per beam)."""
    d, f = cfg.d_model, cfg.d_ff
    enc = T * (2 * (4 * d * d + 2 * d * f) + 4 * T * d) * cfg.enc_layers
    dec_tok = lambda t: 2 * (6 * d * d + 2 * d * f) + 4 * (t + T) * d
    per_beam = cfg.dec_layers * (2 * T * 2 * d * d + sum(dec_tok(t + 1) for t in range(L))) + L * 2 * d * vocab
    return B * enc + B * beam * per_beam


def _time_calls(fn, reps: int, budget_s: float, device: torch.device) -> tuple[list[float], list[float], object]:
    """Call fn once to warm up, then up to `reps` times (stop early past `budget_s`). Returns the wall
    latencies and the process CPU times (all threads) of the calls in s, and the last output. On a
    shared machine the CPU time is the steadier figure: time spent waiting for a core is not in it.
    On CUDA each timed call starts and ends with a synchronize (its kernels are inside its time)."""
    out = fn()
    lat: list[float] = []
    cpu: list[float] = []
    t_all = time.perf_counter()
    while len(lat) < reps and (not lat or time.perf_counter() - t_all < budget_s):
        sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        sync(device)
        lat.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return lat, cpu, out


def _summary(lat: list[float], cpu: list[float], B: int, flops: float, found: tuple[float, float],
             peak: float) -> dict:
    """Throughput / latency / CPU time / GFLOP/s figures of one measured engine case (gflops from
    the mean wall time, gflops_best from the fastest call; peak_fraction of `peak` GFLOP/s); `found`
    is quality()'s (legality, uniqueness)."""
    legal, unique = found
    total = sum(lat)
    gflops = flops * len(lat) / total / 1e9
    return {"calls": len(lat), "requests_per_call": B, "requests_per_s": B * len(lat) / total,
            "p50_ms": float(np.percentile(lat, 50)) * 1e3, "p99_ms": float(np.percentile(lat, 99)) * 1e3,
            "min_ms": min(lat) * 1e3, "cpu_p50_ms": float(np.percentile(cpu, 50)) * 1e3,
            "gflop_per_call": flops / 1e9, "gflops": gflops, "gflops_best": flops / min(lat) / 1e9,
            "peak_fraction": gflops / peak, "legality": legal, "uniqueness": unique}


def run_oxygen(s: Setup, beam: int, reps: int, budget_s: float) -> dict:
    """Time generate_items at `beam` on ROWS // beam requests; legality/uniqueness of the last call."""
    B = max(1, s.rows // beam)
    dev = s.target.device
    batch = make_batch(s.model.cfg, s.trie, B).to(dev)
    k = min(K_RETURN, beam)

    def call() -> tuple[torch.Tensor, torch.Tensor]:
        return generate_items(s.model, batch, [s.trie], beam=beam, k=k, precision=s.target.precision)

    lat, cpu, (ids, _) = _time_calls(call, reps, budget_s, dev)
    items = [[i if i >= 0 else None for i in row] for row in ids.cpu().tolist()]
    found = quality(items, set(range(len(s.trie))))
    return _summary(lat, cpu, B, oxygen_flops(s.model.cfg, B, beam), found, s.target.peak_gflops)


def run_hf(s: Setup, beam: int, reps: int, budget_s: float) -> dict:
    """Time HF generate with a trie-lookup prefix_allowed_tokens_fn on the same request count."""
    B = max(1, s.rows // beam)
    k = min(K_RETURN, beam)
    table = allowed_table(s.trie, s.widths)
    offs = np.cumsum((0,) + s.widths)
    g = torch.Generator().manual_seed(0)
    rows = torch.randint(0, len(s.trie), (B, 10), generator=g)
    tok = torch.from_numpy(s.trie.codes)[rows] + torch.from_numpy(offs[:-1] + SPECIAL)
    dev = s.target.device
    input_ids = tok.reshape(B, -1).to(dev)

    def allowed(_batch_id: int, sent: torch.Tensor) -> list[int]:
        return table.get(tuple(sent[1:].tolist()), [])

    def call() -> torch.Tensor:
        with torch.no_grad(), autocast(dev, s.target.precision):
            return s.hf.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), num_beams=beam,
                                 num_return_sequences=k, max_new_tokens=s.trie.depth, do_sample=False,
                                 prefix_allowed_tokens_fn=allowed, early_stopping=True)

    lat, cpu, seqs = _time_calls(call, reps, budget_s, dev)
    found = hf_tokens_to_items(seqs.cpu(), s.trie, s.widths)
    items = [found[b * k:(b + 1) * k] for b in range(B)]
    vocab = SPECIAL + sum(s.widths)
    return _summary(lat, cpu, B, hf_flops(s.model.cfg, vocab, B, beam, T=input_ids.shape[1]),
                    quality(items, set(range(len(s.trie)))), s.target.peak_gflops)


def bench_case(s: Setup, beam: int, reps: int, hf_reps: int, budget_s: float) -> dict:
    """One (catalogue, beam) row: ours, HF (when s.hf) and the speed-up (HF p50 / ours p50 latency)."""
    row = {"items": len(s.trie), "beam": beam, "k": min(K_RETURN, beam), "widths": list(s.widths),
           "oxygen": run_oxygen(s, beam, reps, budget_s)}
    if s.hf is not None:
        row["hf"] = run_hf(s, beam, hf_reps, budget_s)
        # same requests per call, so the ratio of median latencies is the median throughput ratio
        row["speedup"] = row["hf"]["p50_ms"] / row["oxygen"]["p50_ms"]
        row["speedup_cpu"] = row["hf"]["cpu_p50_ms"] / row["oxygen"]["cpu_p50_ms"]
    return row


def run_benchmark(sizes: list[int], beams: list[int], reps: int = 10, hf_reps: int = 3,
                  budget_s: float = 20.0, with_hf: bool = True, threads: int = 2, rows: int = ROWS,
                  device: str = "auto", precision: str = "auto") -> dict:
    """The whole grid: {'load_start', 'load_end', 'threads', 'rows_per_call', 'torch', 'device',
    'precision', 'peak_gflops', 'cases': [bench_case dicts]}; `rows` beam rows per call (requests
    per call = rows // beam); both engines on `device` (auto: CUDA when visible) in `precision`."""
    torch.set_num_threads(threads)
    load_start = os.getloadavg()
    target = device_target(device, precision)
    cfg = ModelConfig(dropout=0.0)
    widths = tuple(cfg.codebook_sizes)
    torch.manual_seed(0)
    model = OxygenModel(cfg).eval().to(target.device)
    hf = make_hf(widths, cfg).to(target.device) if with_hf else None
    cases = []
    for n in sizes:
        trie = make_catalogue(n, widths)
        trie_set([trie])  # built once, as serving does at start
        s = Setup(model, hf, trie, widths, rows, target)
        for beam in tqdm(beams, desc=f"{n} items"):
            cases.append(bench_case(s, beam, reps, hf_reps, budget_s))
    return {"load_start": list(load_start), "load_end": list(os.getloadavg()), "threads": torch.get_num_threads(),
            "rows_per_call": rows, "torch": torch.__version__, "device": str(target.device),
            "precision": precision, "peak_gflops": target.peak_gflops, "cases": cases}


def table(result: dict) -> str:
    """Markdown table of a run_benchmark result (GFLOP/s from the mean wall time; best = fastest call;
    % of the run's peak_gflops)."""
    peak = result.get("peak_gflops", PEAK_GFLOPS)
    head = ("| items | beam | req/call | ours req/s | ours p50 / p99 / min ms | ours CPU ms p50 "
            "| ours GFLOP/s mean / best (% peak best) | legal / unique | HF req/s | HF p50 / min ms | HF CPU ms p50 "
            "| HF GFLOP/s mean / best | HF legal | speed-up wall p50 | speed-up CPU p50 |")
    lines = [head, "|" + "---|" * 15]
    for r in result["cases"]:
        o, h = r["oxygen"], r.get("hf")
        hf = (f"{h['requests_per_s']:.2f} | {h['p50_ms']:.0f} / {h['min_ms']:.0f} | {h['cpu_p50_ms']:.0f} | "
              f"{h['gflops']:.1f} / {h['gflops_best']:.1f} | {h['legality']:.0%} | {r['speedup']:.1f}x | "
              f"{r['speedup_cpu']:.1f}x" if h else "- | - | - | - | - | - | -")
        lines.append(f"| {r['items']} | {r['beam']} | {o['requests_per_call']} | {o['requests_per_s']:.1f} | "
                     f"{o['p50_ms']:.0f} / {o['p99_ms']:.0f} / {o['min_ms']:.0f} | {o['cpu_p50_ms']:.0f} | "
                     f"{o['gflops']:.1f} / {o['gflops_best']:.1f} ({o['gflops_best'] / peak:.0%}) | "
                     f"{o['legality']:.0%} / {o['uniqueness']:.0%} | {hf} |")
    return "\n".join(lines)


def _ints(text: str) -> list[int]:
    """A comma-separated list of ints ("20000,1000000")."""
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> dict:
    """CLI: run the grid, print a markdown table, optionally write the JSON; returns the result."""
    ap = argparse.ArgumentParser(prog="python -m bench.decoding", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3.5k and 20k items, beams 32 and 256, few reps")
    ap.add_argument("--no-hf", action="store_true", help="skip the HF transformers baseline")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--device", default="auto", help="auto (CUDA when visible) | cpu | cuda | cuda:N")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                    help="autocast of both engines: auto = bf16 on CUDA, fp32 on the CPU")
    ap.add_argument("--sizes", type=_ints, help="catalogue sizes, comma-separated (default: by --quick)")
    ap.add_argument("--beams", type=_ints, help="beam widths, comma-separated (default: by --quick)")
    ap.add_argument("--out", help="write the result JSON here")
    args = ap.parse_args(argv)
    sizes = args.sizes or ([3500, 20000] if args.quick else [3500, 20000, 1_000_000])
    beams = args.beams or ([32, 256] if args.quick else [32, 128, 256])
    timing = {"reps": 3, "hf_reps": 1, "budget_s": 5} if args.quick else {}
    result = run_benchmark(sizes, beams, with_hf=not args.no_hf, threads=args.threads, device=args.device,
                           precision=args.precision, **timing)
    print(table(result))
    print(f"load average start {result['load_start']} end {result['load_end']}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()

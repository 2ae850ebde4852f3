"""The command line of `python3 -m pagedkv.engine`: a demo of the reference engine on a mixed
batch, a side-by-side decode throughput comparison of paged and dense attention, and speculative
decoding. Every mode prints key=value fields (tests and docs read them)."""

import argparse
import time

import torch

import pagedkv

from .config import ModelConfig
from .dense import DenseDecoder
from .engine import Engine, EngineConfig, Request
from .model import LlamaModel
from .speculative import SpeculativeDecoder
from .workload import mixed_requests

DESCRIPTION = """\
The pagedkv reference engine: a Llama-architecture model in PyTorch generating through pagedkv
(K/V in pagedkv's pools, pagedkv's write_kv and paged attention, pagedkv.Scheduler for
continuous batching, chunked prefill, prefix caching, swap/recompute preemption, n > 1 sampling
and beam search).

  --demo              run a mixed batch of requests (shared prefixes, prompts of 1..600 tokens,
                      greedy, sampled, n = 2, beam search) on a deliberately small pool and print
                      tokens/s, prefix hits, preemptions and copy-on-write pages
  --compare-dense     also time decode steps of a static batch, paged against a dense
                      contiguous cache (same weights, same tokens), and the share of step time
                      spent in pagedkv's bookkeeping
  --speculative K     also run greedy speculative decoding with K draft tokens per round (the
                      draft is the target's first --draft-layers layers) and check that it
                      returns exactly the target's greedy output

The model is random (seeded) unless --checkpoint gives a safetensors file (with --config, or a
config.json next to it).
"""


def build_parser():
    p = argparse.ArgumentParser(prog="python3 -m pagedkv.engine", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_argument_group("what to run")
    mode.add_argument("--demo", action="store_true", help="run the mixed-batch demo")
    mode.add_argument("--compare-dense", action="store_true",
                      help="time decode steps paged vs dense (same model and requests)")
    mode.add_argument("--speculative", type=int, default=0, metavar="K",
                      help="run speculative decoding with K draft tokens per round (0 = off)")
    m = p.add_argument_group("model (random weights unless --checkpoint)")
    m.add_argument("--checkpoint", help="safetensors file of a Llama-layout checkpoint")
    m.add_argument("--config", help="model config JSON (default: config.json next to the "
                                    "checkpoint)")
    m.add_argument("--layers", type=int, default=4)
    m.add_argument("--hidden", type=int, default=256)
    m.add_argument("--intermediate", type=int, default=512)
    m.add_argument("--heads", type=int, default=8, help="query heads")
    m.add_argument("--kv-heads", type=int, default=2)
    m.add_argument("--head-dim", type=int, default=32)
    m.add_argument("--vocab", type=int, default=512)
    m.add_argument("--seed", type=int, default=0, help="weights and requests")
    m.add_argument("--draft-layers", type=int, default=1,
                   help="layers of the speculative draft model (the target's first ones)")
    e = p.add_argument_group("engine")
    e.add_argument("--requests", type=int, default=48)
    e.add_argument("--max-prompt", type=int, default=600)
    e.add_argument("--max-new-tokens", type=int, default=24)
    e.add_argument("--block-size", type=int, default=16)
    e.add_argument("--gpu-blocks", type=int, default=96,
                   help="pool size in blocks (small, so the demo preempts)")
    e.add_argument("--host-blocks", type=int, default=256, help="swap space in blocks")
    e.add_argument("--preemption", choices=["swap", "recompute"], default="swap")
    e.add_argument("--max-num-seqs", type=int, default=16)
    e.add_argument("--max-batched-tokens", type=int, default=256)
    e.add_argument("--no-prefix-caching", action="store_true")
    e.add_argument("--device", default="cpu", help="cpu, or cuda (needs a CUDA build of "
                                                   "pagedkv and a GPU)")
    e.add_argument("--threads", type=int, default=1,
                   help="torch threads and pagedkv CPU attention threads")
    e.add_argument("--spec-requests", type=int, default=16,
                   help="greedy requests of the --speculative run")
    c = p.add_argument_group("--compare-dense")
    c.add_argument("--dense-batch", type=int, default=16, help="sequences decoded together")
    c.add_argument("--dense-new-tokens", type=int, default=64, help="tokens per sequence")
    c.add_argument("--repeats", type=int, default=1,
                   help="alternating paged/dense runs; medians are printed")
    return p


def load_model(args):
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if args.checkpoint:
        config = ModelConfig.from_json_file(args.config) if args.config else None
        return LlamaModel.from_safetensors(args.checkpoint, config, device=device, dtype=dtype)
    config = ModelConfig(vocab_size=args.vocab, hidden_size=args.hidden,
                         intermediate_size=args.intermediate, num_layers=args.layers,
                         num_q_heads=args.heads, num_kv_heads=args.kv_heads,
                         head_dim=args.head_dim, name="llama-demo")
    return LlamaModel.random(config, seed=args.seed, device=device, dtype=dtype)


def bookkeeping(engine):
    """(pagedkv bookkeeping seconds, step seconds) over every step (Engine._bookkeeping_s)."""
    return engine._bookkeeping_s(), engine.timing["step_s"]


def fmt(fields):
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in fields.items())


def run_demo(args, model):
    requests = mixed_requests(model.config.vocab_size, args.requests, seed=args.seed,
                              block_size=args.block_size, max_prompt=args.max_prompt,
                              max_new_tokens=args.max_new_tokens)
    engine = Engine(model, EngineConfig(
        block_size=args.block_size, num_gpu_blocks=args.gpu_blocks,
        num_host_blocks=args.host_blocks if args.preemption == "swap" else 0,
        max_num_seqs=args.max_num_seqs, max_num_batched_tokens=args.max_batched_tokens,
        preemption=args.preemption, enable_prefix_caching=not args.no_prefix_caching,
        device=args.device, num_threads=args.threads))
    for r in requests:
        engine.add_request(r)
    t0 = time.perf_counter()
    outputs = engine.run()
    wall = time.perf_counter() - t0
    engine.check_invariants()
    s = engine.summary()
    book, step = bookkeeping(engine)
    kinds = dict(greedy=0, sampled=0, n2=0, beams=0)
    for r in requests:
        key = "beams" if r.beam_width > 1 else "n2" if r.n > 1 else \
            "greedy" if r.sampling.greedy else "sampled"
        kinds[key] += 1
    print(f"demo: {len(requests)} requests ({fmt(kinds)}), prompts 1..{args.max_prompt} tokens, "
          f"{model.config.describe()}, pool {args.gpu_blocks} x {args.block_size}-token pages, "
          f"preemption {args.preemption}, device {args.device}")
    print(fmt(dict(
        finished=sum(not o.rejected for o in outputs.values()), rejected=s["rejected"],
        steps=s["steps"], generated_tokens=s["generated_tokens"], wall_s=wall,
        tokens_per_s=s["generated_tokens"] / wall,
        decode_tokens_per_s=s["decode_step_tokens"] / max(engine.timing["decode_steps_s"],
                                                          1e-9))))
    print(fmt(dict(prompt_tokens=s["prompt_tokens"], prefix_hit_tokens=s["cached_prompt_tokens"],
                   prefix_hit_rate=s["cached_prompt_tokens"] / max(s["prompt_tokens"], 1),
                   chunked_prefill_steps=s["chunked_prefills"])))
    print(fmt(dict(preemptions=s["preemptions"], swap_out_blocks=s["swap_out_blocks"],
                   swap_in_blocks=s["swap_in_blocks"], cow_pages=s["cow_pages"],
                   forks=s["forks"], beam_reorders=s["beam_reorders"])))
    t = engine.timing
    print(fmt(dict(bookkeeping_share=book / step, scheduler_share=t["schedule_s"] / step,
                   complete_step_share=t["complete_s"] / step,
                   build_batch_share=t["layout_s"] / step,
                   cache_ops_share=engine.kv.timing["cache_ops_s"] / step,
                   model_share=t["model_s"] / step,
                   attention_kernels_share=engine.kv.timing["attention_s"] / step)))
    stats = engine.bm.stats().groups[0]
    if stats.gpu_in_use_blocks or stats.host_in_use_blocks:
        raise RuntimeError(f"blocks still in use after the run: {stats.gpu_in_use_blocks} GPU, "
                           f"{stats.host_in_use_blocks} host")
    return engine


def compare_dense(args, model):
    """Decode throughput of one static batch, paged (Engine) and dense (DenseDecoder), run
    alternately --repeats times in this process; medians of wall-clock and CPU time (the run is
    single-threaded with --threads 1, so CPU time is what load disturbs least)."""
    import statistics

    import numpy as np
    rng = np.random.default_rng(args.seed + 1)
    b, new = args.dense_batch, args.dense_new_tokens
    prompts = [rng.integers(0, model.config.vocab_size,
                            size=int(rng.integers(64, max(65, args.max_prompt)))).tolist()
               for _ in range(b)]
    pages = sum((len(p) + new) // args.block_size + 2 for p in prompts)
    runs = {k: [] for k in ("paged", "dense", "paged_cpu", "dense_cpu", "paged_attn",
                            "dense_attn", "book", "attn_share", "book_all")}
    same = True
    for _ in range(args.repeats):
        engine = Engine(model, EngineConfig(
            block_size=args.block_size, num_gpu_blocks=pages, max_num_seqs=b,
            max_num_batched_tokens=max(args.max_batched_tokens, max(len(p) for p in prompts)),
            device=args.device, num_threads=args.threads))
        for i, p in enumerate(prompts):
            engine.add_request(Request(i, p, new))
        paged_out = engine.run()
        dense = DenseDecoder(model)
        dense_out = dense.generate(prompts, new)
        same = same and all(paged_out[i].outputs[0] == dense_out[i] for i in range(b))
        t, tokens = engine.timing, engine.counts["decode_step_tokens"]
        runs["paged"].append(tokens / t["decode_steps_s"])
        runs["paged_cpu"].append(tokens / t["decode_steps_cpu_s"])
        runs["dense"].append(dense.decode_tokens / dense.timing["decode_s"])
        runs["dense_cpu"].append(dense.decode_tokens / dense.timing["decode_cpu_s"])
        runs["paged_attn"].append(1e6 * t["decode_attention_s"] / tokens)
        runs["dense_attn"].append(1e6 * dense.timing["decode_attention_s"] /
                                  dense.decode_tokens)
        runs["book"].append(t["decode_bookkeeping_s"] / t["decode_steps_s"])
        runs["attn_share"].append(t["decode_attention_s"] / t["decode_steps_s"])
        runs["book_all"].append(bookkeeping(engine)[0] / bookkeeping(engine)[1])
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(f"compare-dense: batch {b}, prompts {min(map(len, prompts))}.."
          f"{max(map(len, prompts))} tokens, {new} new tokens each, greedy, {args.repeats} "
          f"alternating runs (medians)")
    print(fmt(dict(paged_decode_tokens_per_s=med["paged"],
                   dense_decode_tokens_per_s=med["dense"],
                   paged_over_dense=med["paged"] / med["dense"],
                   paged_decode_tokens_per_cpu_s=med["paged_cpu"],
                   dense_decode_tokens_per_cpu_s=med["dense_cpu"],
                   paged_over_dense_cpu=med["paged_cpu"] / med["dense_cpu"], same_tokens=same)))
    # Attention alone (cache write + attention) per decoded token, and where a paged decode
    # step's time goes.
    print(fmt(dict(paged_attention_us_per_token=med["paged_attn"],
                   dense_attention_us_per_token=med["dense_attn"],
                   paged_decode_bookkeeping_share=med["book"],
                   paged_decode_attention_share=med["attn_share"],
                   paged_bookkeeping_share_all_steps=med["book_all"])))
    if args.repeats > 1:
        print("runs: " + " ".join(f"{k}=" + ",".join(f"{x:.4g}" for x in v)
                                  for k, v in runs.items() if k in ("paged", "dense")))
    if not same:
        raise RuntimeError("paged and dense decoding chose different tokens")


def run_speculative(args, model):
    from .dense import DenseReference
    requests = [r for r in mixed_requests(model.config.vocab_size, args.spec_requests,
                                          seed=args.seed,
                                          block_size=args.block_size,
                                          max_prompt=args.max_prompt,
                                          max_new_tokens=args.max_new_tokens, sampling=False,
                                          beams=False)]
    draft = model.truncated(args.draft_layers)
    spec = SpeculativeDecoder(model, draft, num_speculative_tokens=args.speculative,
                              block_size=args.block_size, num_blocks=4 * args.gpu_blocks,
                              max_num_seqs=args.max_num_seqs, device=args.device,
                              num_threads=args.threads)
    t0 = time.perf_counter()
    outputs = spec.generate(requests)
    wall = time.perf_counter() - t0
    spec.check_invariants()
    # The same requests greedily through the Scheduler path (target only), for the speed-up.
    plain = Engine(model, EngineConfig(
        block_size=args.block_size, num_gpu_blocks=4 * args.gpu_blocks,
        max_num_seqs=args.max_num_seqs, max_num_batched_tokens=args.max_batched_tokens,
        device=args.device, num_threads=args.threads))
    for r in requests:
        plain.add_request(r)
    t0 = time.perf_counter()
    plain_out = plain.run()
    plain_wall = time.perf_counter() - t0
    ref = DenseReference(model)
    mismatches = sum(outputs[r.request_id].outputs[0] !=
                     ref.generate(r.prompt, r.max_new_tokens)[0] or
                     outputs[r.request_id].outputs != plain_out[r.request_id].outputs
                     for r in requests)
    print(f"speculative: {len(requests)} greedy requests, draft {draft.config.describe()}, "
          f"{args.speculative} draft tokens per round")
    print(fmt(dict(generated_tokens=spec.stats["generated"], wall_s=wall,
                   tokens_per_s=spec.stats["generated"] / wall,
                   target_only_tokens_per_s=plain.counts["generated_tokens"] / plain_wall,
                   rounds=spec.stats["rounds"],
                   acceptance_rate=spec.acceptance_rate(),
                   rewound_tokens=spec.stats["rewound_tokens"],
                   tokens_per_verify=spec.stats["round_tokens"] /
                   max(spec.stats["request_rounds"], 1),
                   target_forwards=spec.target.forwards, draft_forwards=spec.draft.forwards,
                   same_as_target_greedy=mismatches == 0)))
    if mismatches:
        raise RuntimeError(f"{mismatches} requests differ from the target's greedy output")


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.demo or args.compare_dense or args.speculative):
        parser.print_usage()
        print("nothing to run: pass --demo, --compare-dense and/or --speculative K "
              "(--help explains them)")
        return 2
    if "scheduler" not in pagedkv.bound_areas or "attention" not in pagedkv.bound_areas:
        parser.error("this pagedkv build lacks the scheduler or attention bindings")
    if torch.device(args.device).type == "cuda" and not (
            torch.cuda.is_available() and pagedkv.cuda_device_available()):
        parser.error("--device cuda needs PyTorch with CUDA, pagedkv built with "
                     "-DPAGEDKV_CUDA=ON and a usable GPU; use --device cpu")
    pagedkv.set_log_level("error")
    torch.set_num_threads(args.threads)
    model = load_model(args)
    if args.demo:
        run_demo(args, model)
    if args.compare_dense:
        compare_dense(args, model)
    if args.speculative:
        run_speculative(args, model)
    return 0

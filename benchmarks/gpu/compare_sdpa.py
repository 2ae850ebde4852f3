#!/usr/bin/env python3
"""Times torch scaled_dot_product_attention on the decode shapes of gpu_decode_benchmark (GQA with
enable_gqa=True, contiguous KV, bf16, cold L2, CUDA events, median) for each SDPA backend, and
writes a markdown table next to the pagedkv figures read from its CSV.

  compare_sdpa.py --pagedkv-csv pagedkv.csv --out results.md [--iters 20]

Without torch (or without a GPU) it writes the pagedkv table alone and says why.
"""
import argparse
import csv
import statistics
import sys

Q_HEADS, KV_HEADS, HEAD_DIM = 32, 8, 128


def time_sdpa(torch, backend, batch, context, iters, flush):
    import torch.nn.functional as F
    from torch.nn.attention import sdpa_kernel

    dev = "cuda"
    q = torch.randn(batch, Q_HEADS, 1, HEAD_DIM, device=dev, dtype=torch.bfloat16)
    k = torch.randn(batch, KV_HEADS, context, HEAD_DIM, device=dev, dtype=torch.bfloat16)
    v = torch.randn_like(k)
    times = []
    with sdpa_kernel([backend]):
        for i in range(iters + 2):
            flush.bitwise_not_()  # rewrites a buffer larger than L2
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
            end.record()
            end.synchronize()
            if i >= 2:
                times.append(start.elapsed_time(end) * 1e3)
    del q, k, v
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pagedkv-csv", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--iters", type=int, default=20)
    args = ap.parse_args()

    with open(args.pagedkv_csv) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit("no rows in " + args.pagedkv_csv)
    device = rows[0]["device"]
    copy_gbps = float(rows[0]["copy_gbps"])

    backends = {}
    note = ""
    try:
        import torch
        from torch.nn.attention import SDPBackend

        if not torch.cuda.is_available():
            raise RuntimeError("torch sees no CUDA device")
        backends = {
            "flash": SDPBackend.FLASH_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION,
            "cudnn": SDPBackend.CUDNN_ATTENTION,
            "math": SDPBackend.MATH,
        }
        l2 = torch.cuda.get_device_properties(0).L2_cache_size
        flush = torch.empty(max(4 * l2, 256 << 20), dtype=torch.uint8, device="cuda")
        note = f"torch {torch.__version__}"
    except Exception as e:  # no torch, old torch, or no device: pagedkv figures only
        note = f"SDPA not measured: {e}"

    sdpa = {}  # (batch, context) -> {backend: us or None}
    for r in rows:
        key = (int(r["batch"]), int(r["context"]))
        if key in sdpa or not backends:
            continue
        sdpa[key] = {}
        for name, be in backends.items():
            try:
                sdpa[key][name] = time_sdpa(torch, be, key[0], key[1], args.iters, flush)
            except Exception:  # backend cannot run this shape (or out of memory)
                sdpa[key][name] = None
            torch.cuda.empty_cache()

    names = list(backends)
    lines = [
        f"GPU decode: {device}; D2D copy {copy_gbps:.0f} GB/s (read + write); 32 q / 8 kv heads, "
        f"head_dim 128, bf16, cold L2, median of {args.iters}; {note}",
        "",
        "| block | batch | context | pagedkv us | GB/s | % copy BW | "
        + " | ".join(f"SDPA {n} us" for n in names)
        + (" | pagedkv / best SDPA |" if names else ""),
        "|---:|---:|---:|---:|---:|---:|" + "---:|" * len(names) + ("---:|" if names else ""),
    ]
    for r in rows:
        key = (int(r["batch"]), int(r["context"]))
        us = float(r["us"])
        cells = [r["block_size"], r["batch"], r["context"], f"{us:.1f}", f"{float(r['gbps']):.0f}",
                 f"{float(r['pct_copy']):.0f}%"]
        if names:
            times = sdpa.get(key, {})
            cells += [f"{times[n]:.1f}" if times.get(n) else "n/a" for n in names]
            valid = [t for t in times.values() if t]
            cells.append(f"{us / min(valid):.2f}x" if valid else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

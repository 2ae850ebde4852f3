"""The data-through-table property from Python: whatever sequence of operations the manager
runs (add, append, fork, beam reorder, rewind, swap, free), after executing its CacheOps on the
NumPy pools, every live sequence reads back exactly the K/V written for its tokens through its
block table, and paged attention equals dense attention over those tokens."""

import numpy as np
import pytest

import pagedkv
from conftest import BLOCK_SIZES, dense_attention, gather_kv, make_manager, token_kv

H, HQ, D, LAYERS = 2, 4, 8, 2


class Model:
    """The reference: each sequence's token list. K/V are derived from (token, position)."""

    def __init__(self, block_size, seed):
        self.rng = np.random.default_rng(seed)
        self.bm = make_manager(block_size=block_size, gpu_num_blocks=48, host_num_blocks=32)
        self.gpu = self.bm.kv_cache(0)
        self.host = self.bm.kv_cache(0, pagedkv.Tier.HOST)
        self.tokens = {}
        self.swapped = set()
        self.next_id = 1

    def execute_ops(self):
        pagedkv.execute_cache_ops(self.bm, self.bm.take_cache_ops())

    def write_new(self, seq, num_new):
        layout = self.bm.build_batch([seq], num_new_tokens=num_new)
        for layer in range(LAYERS):
            k, v = token_kv(self.tokens[seq], layer, H, D)
            pagedkv.write_kv(self.gpu, layer, layout.slot_mapping, k[-num_new:], v[-num_new:])

    def resident(self):
        return [s for s in self.tokens if s not in self.swapped]

    def step(self):
        op = self.rng.choice(["add", "append", "fork", "beams", "rewind", "swap_out", "swap_in",
                              "free"], p=[.2, .3, .1, .1, .08, .08, .08, .06])
        res = self.resident()
        try:
            if op == "add":
                seq, self.next_id = self.next_id, self.next_id + 1
                prompt = list(self.rng.integers(0, 500, size=int(self.rng.integers(0, 20))))
                self.bm.add_sequence(seq, prompt)
                self.tokens[seq] = prompt
                self.execute_ops()
                if prompt:
                    self.write_new(seq, len(prompt))
            elif op == "append" and res:
                seq = int(self.rng.choice(res))
                new = list(self.rng.integers(0, 500, size=int(self.rng.integers(1, 6))))
                self.bm.append_tokens(seq, new)
                self.tokens[seq] = self.tokens[seq] + new
                self.execute_ops()  # copy-on-write before the write
                self.write_new(seq, len(new))
            elif op == "fork" and res:
                parent, child = int(self.rng.choice(res)), self.next_id
                self.next_id += 1
                self.bm.fork(parent, child)
                self.tokens[child] = list(self.tokens[parent])
            elif op == "beams" and res:
                length = len(self.tokens[int(self.rng.choice(res))])
                beams = [s for s in res if len(self.tokens[s]) == length][:4]
                parents = [int(p) for p in self.rng.integers(0, len(beams), size=len(beams))]
                self.bm.reorder_beams(beams, parents)
                old = {s: self.tokens[s] for s in beams}
                for i, s in enumerate(beams):
                    self.tokens[s] = list(old[beams[parents[i]]])
            elif op == "rewind" and res:
                seq = int(self.rng.choice(res))
                n = int(self.rng.integers(0, len(self.tokens[seq]) + 1))
                self.bm.rewind(seq, n)
                self.tokens[seq] = self.tokens[seq][:n]
            elif op == "swap_out" and res:
                seq = int(self.rng.choice(res))
                self.bm.swap_out(seq)
                self.swapped.add(seq)
                self.execute_ops()
            elif op == "swap_in" and self.swapped:
                seq = int(self.rng.choice(sorted(self.swapped)))
                self.bm.swap_in([seq])
                self.swapped.discard(seq)
                self.execute_ops()
            elif op == "free" and self.tokens:
                seq = int(self.rng.choice(list(self.tokens)))
                self.bm.free(seq)
                del self.tokens[seq]
                self.swapped.discard(seq)
        except MemoryError:
            # Out of blocks: the call changed nothing (all or nothing); free the longest.
            victim = max(self.tokens, key=lambda s: len(self.tokens[s]))
            self.bm.free(victim)
            del self.tokens[victim]
            self.swapped.discard(victim)
        self.execute_ops()

    def check(self):
        self.bm.check_invariants()
        bs = self.bm.block_size
        for seq, toks in self.tokens.items():
            table = self.bm.block_table(seq)
            pool = self.host if seq in self.swapped else self.gpu
            assert table.tier == (pagedkv.Tier.HOST if seq in self.swapped else pagedkv.Tier.GPU)
            for layer in range(LAYERS if toks else 0):
                k, v = token_kv(toks, layer, H, D)
                kk, vv = gather_kv(pool, layer, table.blocks, len(toks), bs)
                np.testing.assert_array_equal(kk, k, err_msg=f"seq {seq} K layer {layer}")
                np.testing.assert_array_equal(vv, v, err_msg=f"seq {seq} V layer {layer}")

    def check_attention(self):
        res = [s for s in self.resident() if self.tokens[s]]
        if not res:
            return
        layout = self.bm.build_batch(res, num_new_tokens=1)
        q = self.rng.standard_normal((len(res), HQ, D)).astype(np.float32)
        out = pagedkv.attention_decode(self.gpu, 1, q, layout)
        for b, s in enumerate(res):
            k, v = token_kv(self.tokens[s], 1, H, D)
            np.testing.assert_allclose(out[b], dense_attention(q[b:b + 1], k, v)[0], atol=3e-5)


@pytest.mark.parametrize("block_size", BLOCK_SIZES)
def test_random_operations_keep_data_reachable(block_size):
    m = Model(block_size, seed=1000 + block_size)
    for i in range(150):
        m.step()
        m.check()
        if i % 25 == 24:
            m.check_attention()
    assert m.bm.stats().num_sequences == len(m.tokens)

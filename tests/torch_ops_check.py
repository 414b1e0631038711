"""torch.ops.chart from Python (ops/libchart_ops.so), on the CPU, against the other ways PyTorch
computes the packed-patient attention (scripts/packed_attention.py): chart's operator,
FlexAttention (compiled, block mask + score_mod), SDPA with the materialised mask and the
float64 formula must agree in the forward and in every gradient (q, k, v and the slopes), with
grouped-query heads and padding. This is what makes the GPU benchmark's comparison one of the
same function; there the operator runs the CUDA kernels, whose agreement with the reference the
C++ suite checks (AttentionCuda, AttentionEmulated).
  python tests/torch_ops_check.py build/ops/libchart_ops.so
"""
import os
import sys
import unittest

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import packed_attention as pa  # noqa: E402

# Relative to the largest magnitude. Not 1e-6: the bias takes float32 ages (as the loader stores
# them), and at 30 years (about 11,000 days) float32 resolves a gap only to about 1e-3 days.
TOL = 3e-4
LIBRARY = sys.argv.pop(1) if len(sys.argv) > 1 else "build/ops/libchart_ops.so"


def gradients(fn, p, dout):
    for x in p.leaves():
        x.grad = None
    fn(p).backward(dout)
    return [x.grad.clone() for x in p.leaves()]


def worst(a, b):
    """Largest |a - b| relative to b's largest magnitude."""
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30))


class ChartOpsAgainstTorch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ops = pa.load_chart_ops(LIBRARY)
        torch.manual_seed(0)
        # GQA (4 query heads on 2 KV heads), unequal patients, padding at the end of the last row.
        cls.p = pa.packed_inputs(batch=2, heads=4, kv_heads=2, length=128, head_dim=32, patients=5,
                                 dtype=torch.float32, device="cpu", padding=9, requires_grad=True)
        cls.dout = torch.randn(cls.p.q.shape)
        cls.want = pa.formula_attention(cls.p)
        cls.want_grads = gradients(pa.formula_attention, cls.p, cls.dout)

    def check_against_formula(self, name, fn, tol=TOL, backward=True):
        got = fn(self.p if backward else self.p.detached())
        self.assertEqual(got.shape, self.want.shape, name)
        print(f"{name}: forward {worst(got, self.want):.1e}", end="")
        self.assertLess(worst(got, self.want), tol, f"{name} forward")
        if not backward:
            return print()
        grads = gradients(fn, self.p, self.dout)
        print("".join(f", d{leaf} {worst(g, w):.1e}" for leaf, g, w in zip(["q", "k", "v", "slopes"], grads, self.want_grads)))
        for leaf, g, w in zip(["q", "k", "v", "slopes"], grads, self.want_grads):
            self.assertLess(worst(g, w), tol, f"{name} d{leaf}")

    def test_chart_operator(self):
        self.check_against_formula("chart", lambda p: pa.chart_attention(self.ops, p, "auto"))

    def test_sdpa_with_mask(self):
        self.check_against_formula("sdpa", pa.sdpa_attention)

    def test_flex_attention(self):
        # FlexAttention has no backward on the CPU (torch 2.11); the GPU benchmark compares its
        # gradients with chart's (scripts/bench_attention_packed.py).
        self.check_against_formula("flex", pa.flex_attention_fn(self.p), backward=False)

    def test_the_bias_matters(self):
        # Without the slopes the answer differs: the checks above see the bias, not only the mask.
        plain = self.ops.attention(self.p.q, self.p.k, self.p.v, self.p.segments)
        self.assertGreater(worst(plain, self.want), 1e-2)

    def test_patients_do_not_see_each_other(self):
        # Changing the second patient's keys leaves the first patient's outputs exactly as they were.
        q, k, v = (x.detach().clone() for x in (self.p.q, self.p.k, self.p.v))
        first = self.p.segments[0] == self.p.segments[0, 0]
        k2, v2 = k.clone(), v.clone()
        k2[0, :, ~first] += 5
        v2[0, :, ~first] -= 3
        a = self.ops.attention(q, k, v, self.p.segments, self.p.ages, self.p.slopes)
        b = self.ops.attention(q, k2, v2, self.p.segments, self.p.ages, self.p.slopes)
        self.assertTrue(torch.equal(a[0, :, first], b[0, :, first]))
        self.assertFalse(torch.equal(a[0, :, ~first], b[0, :, ~first]))

    def test_path_and_refusals(self):
        q = self.p.q.detach()
        self.assertIn("LibTorch reference", self.ops.attention_path(q))
        args = (q, self.p.k, self.p.v, self.p.segments, self.p.ages, self.p.slopes)
        with self.assertRaisesRegex(RuntimeError, "kernels cannot run here: CPU tensor"):
            self.ops.attention(*args, "kernels")
        with self.assertRaisesRegex(RuntimeError, "'fast' is not one of auto, kernels, reference"):
            self.ops.attention(*args, "fast")
        with self.assertRaisesRegex(RuntimeError, "ages and slopes go together"):
            self.ops.attention(q, self.p.k, self.p.v, self.p.segments, self.p.ages, None)
        with self.assertRaisesRegex(RuntimeError, r"segments must be \[B, L\]"):
            self.ops.attention(q, self.p.k, self.p.v, self.p.segments[:, :5])


if __name__ == "__main__":
    unittest.main(verbosity=2)

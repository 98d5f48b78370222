"""Packed products for the engine and the reward's encoder (`modeling/products.py`): the usual numbers to float
rounding, a row's numbers the same however many rows share the product (what batch invariant callers rely on),
only inside the block that asks for them, repacked when the weights change."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import pytest
import torch

from darwin_chains import HFPolicy, Prompt, Sampling
from darwin_chains.modeling import products
from darwin_chains.modeling.products import packed_products, use_packed_products

pytestmark = pytest.mark.skipif(not products.available(), reason="this PyTorch build has no oneDNN")


def switched(bias: bool = True) -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(48, 80, bias=bias), torch.nn.Linear(80, 16, bias=False))
    use_packed_products(model)
    return model


@pytest.fixture
def counted(monkeypatch):
    """How many products went the usual way (`torch.nn.functional.linear`), per call of the layer."""
    calls = []
    usual = torch.nn.functional.linear

    def linear(*args, **kwargs):
        calls.append(args[0].shape)
        return usual(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "linear", linear)
    return calls


def usual_numbers(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.linear(torch.nn.functional.linear(x, model[0].weight, model[0].bias), model[1].weight)


@pytest.mark.parametrize("shape", [(1, 48), (1, 1, 48), (3, 48), (2, 1, 48), (4, 2, 48), (6, 48), (40, 48),
                                   (2, 300, 48), (48,)])
@pytest.mark.parametrize("bias", [True, False])
def test_products_inside_the_block_are_packed_or_weight_first_and_give_the_usual_numbers(shape, bias, counted):
    model = switched(bias)
    x = torch.randn(*shape)
    expected = usual_numbers(model, x)
    counted.clear()
    with torch.inference_mode(), packed_products():  # as in the engine's thread
        got = model(x)
    assert counted == []  # neither layer took the usual product
    packed = x.numel() // 48 > products.WEIGHT_FIRST_ROWS  # one or two rows go weight-first, unpacked
    assert all(isinstance(vars(layer).get("_packed"), tuple) == packed for layer in model)
    assert got.shape == expected.shape and got.is_contiguous()  # attention's fused CPU kernel needs it row-major
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_a_non_contiguous_input_gives_the_usual_numbers():
    model = switched()
    x = torch.randn(48, 5).t()
    with packed_products():
        got = model(x)
    torch.testing.assert_close(got, usual_numbers(model, x), rtol=1e-5, atol=1e-5)


def test_other_dtypes_empty_inputs_and_outside_the_block_take_the_usual_product(counted):
    model = switched()
    counted.clear()
    with packed_products():
        model.to(torch.float64)(torch.randn(2, 48, dtype=torch.float64))
        model.to(torch.float32)(torch.randn(0, 48))
    assert len(counted) == 4
    few = torch.randn(2, 48)
    counted.clear()
    out = model(few)  # outside the block: bitwise the usual numbers
    assert len(counted) == 2
    with packed_products(on=False):
        model(few)
    assert len(counted) == 4
    assert torch.equal(out, usual_numbers(model, few))


def test_the_switch_is_per_thread(counted):
    model, seen = switched(), {}

    def elsewhere():
        counted.clear()
        model(torch.randn(2, 48))
        seen["usual products"] = len(counted)

    with packed_products():
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
    assert seen["usual products"] == 2


def test_switching_twice_keeps_one_layer_of_switching():
    model = switched()
    forward = model[0].forward
    use_packed_products(model)
    assert model[0].forward is forward


def test_changed_weights_are_packed_again():
    """A stale packed copy would silently decode with the old weights: an in-place update (as `load_state_dict`
    makes) and a new weight tensor are both seen."""
    model, x = switched(), torch.randn(3, 48)
    with packed_products():
        model(x)
        with torch.no_grad():
            model[0].weight.mul_(2)  # in place
        torch.testing.assert_close(model(x), usual_numbers(model, x), rtol=1e-5, atol=1e-5)
        model[1].weight = torch.nn.Parameter(torch.randn(16, 80))  # a new tensor
        torch.testing.assert_close(model(x), usual_numbers(model, x), rtol=1e-5, atol=1e-5)
        model.load_state_dict(switched(bias=True).state_dict())
        torch.testing.assert_close(model(x), usual_numbers(model, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("isa", ["AVX2", "the host's"])
def test_the_numbers_hold_on_each_instruction_set(isa, threads):
    """oneDNN and MKL pick their kernels by the host's instruction set: the AVX2 ones (all an AVX2-only host has)
    are run here whatever the host, beside the host's own best, in a fresh process as the choice is made once.
    On each, over SmolLM2-135M's shapes: the usual numbers to rounding, and from `MIN_ROWS` rows up a row's numbers
    bitwise the same however many rows share the product and whatever the others hold (batch invariant callers
    pad to that many)."""
    script = textwrap.dedent("""
        import torch
        from darwin_chains.modeling.attention import MIN_ROWS
        from darwin_chains.modeling.products import packed_products, use_packed_products
        torch.manual_seed(0)
        worst, varying = 0.0, []
        for inputs, outputs in ((576, 1536), (1536, 576), (576, 192)):
            layer = torch.nn.Linear(inputs, outputs)
            use_packed_products(layer)
            x = torch.randn(600, inputs)
            with torch.inference_mode(), packed_products():
                alone = layer(x[:MIN_ROWS])
                for rows in (1, 2, 5, 6, 8, 40, 300, 600):
                    got = layer(x[:rows])
                    expected = torch.nn.functional.linear(x[:rows], layer.weight, layer.bias)
                    worst = max(worst, ((got - expected).abs().max() / expected.abs().max()).item())
                    others = torch.cat([x[:MIN_ROWS], torch.randn(rows - MIN_ROWS, inputs)]) if rows > MIN_ROWS else None
                    if others is not None and not (torch.equal(got[:MIN_ROWS], alone)
                                                   and torch.equal(layer(others)[:MIN_ROWS], alone)):
                        varying.append((inputs, outputs, rows))
        print(worst, varying)
    """)
    kernels = {"ONEDNN_MAX_CPU_ISA": isa, "MKL_ENABLE_INSTRUCTIONS": "AVX2"} if isa == "AVX2" else {}
    env = {**os.environ, **kernels, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    worst, varying = done.stdout.strip().splitlines()[-1].split(" ", 1)
    assert float(worst) < 1e-5  # of the largest value
    assert varying == "[]"


def test_a_cpu_engine_takes_its_products_packed_in_either_mode(tiny_llama, monkeypatch):
    """On a real (tiny) Llama: batched and batch invariant, the engine's prefill and decoding steps never take the
    usual product, and both decode the same greedy text; the model, called by its user, is untouched."""
    taken = {"usual": 0, "packed": 0}
    usual, packed = torch.nn.functional.linear, products._forward

    def count_usual(*args, **kwargs):
        taken["usual"] += 1
        return usual(*args, **kwargs)

    def count_packed(self, x):
        if getattr(products._local, "on", False):
            taken["packed"] += 1
        return packed(self, x)

    monkeypatch.setattr(products, "_forward", count_packed)
    monkeypatch.setattr(torch.nn.functional, "linear", count_usual)
    texts = {}
    for invariant in (True, False):
        policy = HFPolicy.from_pretrained(tiny_llama, device="cpu", batch_invariant=invariant)
        before = dict(taken)
        beams = policy.start([Prompt.of("Name a colour.")], 10)
        policy.extend(beams, 10, Sampling(temperature=0), seed=0)
        steps = {k: taken[k] - before[k] for k in taken}
        assert "forward" in vars(policy.model.lm_head) and steps["packed"] > 0 and steps["usual"] == 0
        with torch.no_grad():  # the user's own call, on their thread: the usual product, bitwise
            x = torch.randn(2, policy.model.config.hidden_size)
            assert torch.equal(policy.model.lm_head(x), usual(x, policy.model.lm_head.weight))
        texts[invariant] = beams[0].response
    assert texts[True] == texts[False] and texts[True]


def test_without_onednn_the_engine_keeps_the_usual_products(tiny_llama, monkeypatch):
    monkeypatch.setattr(products, "available", lambda: False)
    policy = HFPolicy.from_pretrained(tiny_llama, device="cpu", batch_invariant=False)
    beams = policy.start([Prompt.of("Name a colour.")], 4)
    policy.extend(beams, 4, Sampling(temperature=0), seed=0)
    assert beams[0].tokens == 4 and "forward" not in vars(policy.model.lm_head)

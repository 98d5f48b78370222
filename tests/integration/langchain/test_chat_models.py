"""ChatDarwin's token counts on a real tokenizer, the embedded SmolLM2's. The rest of ChatDarwin beyond the standard
suite runs on fakes in tests/langchain/test_chat_models.py."""
from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage

from langchain_darwin import ChatDarwin

QUESTION = "Tell me about the cat"


def test_token_counts_use_the_policys_tokenizer(smollm2_policy):
    from langchain_core.messages import SystemMessage, trim_messages

    chat = ChatDarwin(policy=smollm2_policy)
    assert chat.get_num_tokens("hello world") == len(smollm2_policy.tokenizer.encode("hello world",
                                                                                     add_special_tokens=False)) > 0
    history = [SystemMessage("Be brief."), HumanMessage("word " * 100), AIMessage("ok " * 100), HumanMessage(QUESTION)]
    kept = trim_messages(history, max_tokens=60, token_counter=chat, strategy="last", include_system=True)
    assert kept == [history[0], history[-1]]

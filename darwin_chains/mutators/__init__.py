"""Mutators: rewrite an instruction into variants with the same intent (Darwin's exploration).

`TemplateMutator` (`template.py`) needs no model; `LLMMutator` (`llm.py`) asks a policy and validates the rewrites.
"""
from .llm import MUTATION_PROMPT, LLMMutator, parse_list
from .template import TEMPLATES, TemplateMutator

__all__ = ["MUTATION_PROMPT", "TEMPLATES", "LLMMutator", "TemplateMutator", "parse_list"]

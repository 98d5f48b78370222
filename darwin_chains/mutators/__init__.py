"""Mutators: rewrite an instruction into variants with the same intent (Darwin's exploration).

`TemplateMutator` (`template.py`) needs no model; `LLMMutator` (`llm.py`) asks a policy and validates the rewrites.
Both keep the directions the prompt gives its answer ("Be brief."), read by `directions.py`.
"""
from .llm import MUTATION_PROMPT, LLMMutator, parse_list
from .template import TEMPLATES, Template, TemplateMutator

__all__ = ["MUTATION_PROMPT", "TEMPLATES", "LLMMutator", "Template", "TemplateMutator", "parse_list"]

"""The floor plan holds: the core knows no framework, components know no search, and the package stays inside itself."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "darwin_chains"
MODULES = sorted(PACKAGE.rglob("*.py"))
COMPONENTS = ("policies", "rewards", "mutators", "embedded")


def imports(path: Path, source: str | None = None) -> set[str]:
    """Absolute names of every module `path` imports, relative imports resolved against its package."""
    package = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)[:-1]
    found = set()
    for node in ast.walk(ast.parse(source if source is not None else path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_core_imports_no_framework(path):
    framework = sorted(m for m in imports(path) if m.split(".")[0] in ("langchain", "langchain_core", "llama_index"))
    assert not framework, f"{path.relative_to(PACKAGE)} imports {framework}; adapters belong in integrations/"


@pytest.mark.parametrize("path", [p for p in MODULES if p.relative_to(PACKAGE).parts[0] in COMPONENTS],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_component_imports_the_search(path):
    search = sorted(m for m in imports(path) if m == "darwin_chains.search" or m.startswith("darwin_chains.search."))
    assert not search, f"{path.relative_to(PACKAGE)} imports {search}; components must not know the search"


@pytest.mark.parametrize("path", [p for p in MODULES if p.relative_to(PACKAGE).parts[0] in ("rewards", "modeling")],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_rewards_and_the_model_plumbing_import_no_policy(path):
    """The plumbing both share (caches, ragged passes, row attention) lives in modeling/, so a reward never needs a
    policy's module, and the plumbing knows no component."""
    policies = sorted(m for m in imports(path) if m == "darwin_chains.policies" or m.startswith("darwin_chains.policies."))
    assert not policies, f"{path.relative_to(PACKAGE)} imports {policies}; shared model plumbing belongs in modeling/"


def _file_parents(node: ast.AST) -> int | None:
    """How many `.parent` steps (or `.parents[i]`) an expression takes up from `__file__`, if it starts there."""
    steps = 0
    while True:
        if isinstance(node, ast.Attribute) and node.attr == "parent":
            steps, node = steps + 1, node.value
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "parents":
            index = node.slice
            steps, node = steps + 1 + (index.value if isinstance(index, ast.Constant) else 0), node.value.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "resolve":
            node = node.func.value
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Path" and node.args:
            node = node.args[0]
        else:
            return steps if isinstance(node, ast.Name) and node.id == "__file__" else None


def climbs(source: str) -> list[int]:
    return [steps for node in ast.walk(ast.parse(source)) if (steps := _file_parents(node)) is not None]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_package_reads_no_path_outside_itself(path):
    depth = len(path.relative_to(PACKAGE).parts)  # parents a module may climb and stay inside darwin_chains/
    steps = climbs(path.read_text())
    assert all(n <= depth for n in steps), (
        f"{path.relative_to(PACKAGE)} builds a path {max(steps)} levels above itself, outside the package")
    assert "shared" not in {node.value for node in ast.walk(ast.parse(path.read_text()))
                            if isinstance(node, ast.Constant) and isinstance(node.value, str)}, (
        f"{path.relative_to(PACKAGE)} names the repository's shared/ folder")


def test_the_checks_would_catch_a_violation():
    probe = PACKAGE / "policies" / "probe.py"
    source = ("from ..search import Search\nfrom langchain_core.messages import AIMessage\n"
              "from ..policies.engine import Engine\n"
              "ROOT = Path(__file__).resolve().parent.parent.parent\n")
    found = imports(probe, source)
    assert "darwin_chains.search" in found and "langchain_core.messages" in found
    assert "darwin_chains.policies.engine" in found
    assert max(climbs(source)) == 3 > len(probe.relative_to(PACKAGE).parts)

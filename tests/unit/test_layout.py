"""The floor plan holds: the core knows no framework, components know no search, and the package stays inside itself."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "darwin_chains"
MODULES = sorted(PACKAGE.rglob("*.py"))
INTEGRATIONS = PACKAGE.parent / "integrations"
ADAPTERS = sorted(INTEGRATIONS.rglob("*.py"))
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


#: What calls a component: the protocols' methods and their async helpers.
COMPONENT_CALLS = {"start", "extend", "adopt", "score", "mutate", "astart", "aextend", "ascore", "amutate",
                   "supports_continuation"}


def component_calls(source: str) -> list[str]:
    """The component methods (or async helpers) that `source` calls or reads."""
    found = []
    for node in ast.walk(ast.parse(source)):
        name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
        if name in COMPONENT_CALLS:
            found.append(name)
    return found


@pytest.mark.parametrize("name", ["algorithm.py", "requests.py"])
def test_only_the_driver_calls_a_component(name):
    """The algorithm yields requests (plain data) and reads replies; `search/driver.py` alone calls the policy,
    the reward and the mutator, so the sync and async paths and the books live in one place."""
    calls = component_calls((PACKAGE / "search" / name).read_text())
    assert not calls, f"search/{name} calls {calls}; only search/driver.py calls a component"
    assert component_calls((PACKAGE / "search" / "driver.py").read_text())  # the check sees a call where one is


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


def private_uses(source: str) -> list[str]:
    """What a module takes from darwin_chains other than the public names of the package and of
    `darwin_chains.adapters` (their `__all__`): a deep module, or a name that is not public."""
    import darwin_chains
    import darwin_chains.adapters

    public = {"darwin_chains": set(darwin_chains.__all__), "darwin_chains.adapters": set(darwin_chains.adapters.__all__)}
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "darwin_chains" and a.name not in public]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module.split(".")[0] == "darwin_chains":
            names = public.get(node.module)
            found += [f"{node.module}.{a.name}" for a in node.names if names is None or a.name not in names]
    return found


@pytest.mark.parametrize("path", ADAPTERS, ids=lambda p: str(p.relative_to(INTEGRATIONS)))
def test_adapters_use_only_the_public_surface(path):
    """An adapter takes from the core only what `darwin_chains` and `darwin_chains.adapters` export, so the core's
    modules can move without breaking LangChain's or LlamaIndex's face."""
    private = private_uses(path.read_text())
    assert not private, (f"integrations/{path.relative_to(INTEGRATIONS)} imports {private}; export what adapters "
                         "need from darwin_chains.adapters")


def test_adapters_read_no_stack_frames():
    """A caller is told apart by what LlamaIndex passes (prompt types, its public templates), never by its frames."""
    for path in ADAPTERS:
        assert "_getframe" not in path.read_text() and "f_locals" not in path.read_text(), path


def test_the_checks_would_catch_a_violation():
    probe = PACKAGE / "policies" / "probe.py"
    source = ("from ..search import Search\nfrom langchain_core.messages import AIMessage\n"
              "from ..policies.engine import Engine\n"
              "ROOT = Path(__file__).resolve().parent.parent.parent\n")
    found = imports(probe, source)
    assert "darwin_chains.search" in found and "langchain_core.messages" in found
    assert "darwin_chains.policies.engine" in found
    assert max(climbs(source)) == 3 > len(probe.relative_to(PACKAGE).parts)
    adapter = ("from darwin_chains import Search\nfrom darwin_chains.adapters import Components\n"
               "from darwin_chains.search.stream import Delta\nfrom darwin_chains import _private\n"
               "from darwin_chains.adapters import _hidden\nimport darwin_chains.config\n")
    assert private_uses(adapter) == ["darwin_chains.search.stream.Delta", "darwin_chains._private",
                                     "darwin_chains.adapters._hidden", "darwin_chains.config"]

"""The house rules of the layout, read from the source with ``ast`` (README, "Layout").

1. Imports run one way: cli -> flows -> tasks -> models -> the ground (conventions, params,
   runtime). A module imports its own layer or one below it, never one above; every import
   counts, those inside functions too.
2. No circle between modules.
3. Every dvc.yaml stage lists as ``deps:`` exactly the code its flow imports.
4. pyproject.toml installs every package folder.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# Lowest first. A module belongs to the first layer whose prefix its name starts with.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("ground", ("inpaintflow.conventions", "inpaintflow.params", "inpaintflow.runtime", "inpaintflow")),
    ("models", ("inpaintflow.models",)),
    ("tasks", ("inpaintflow.tasks",)),
    ("flows", ("inpaintflow.flows",)),
    ("cli", ("inpaintflow.cli",)),
]
# The layers most specific first, so that inpaintflow.tasks is not read as the ground's inpaintflow
_PREFIXES = sorted(((prefix, rank) for rank, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes),
                   key=lambda item: -len(item[0]))


def layer_of(module: str) -> int | None:
    for prefix, rank in _PREFIXES:
        if module == prefix or module.startswith(prefix + "."):
            return rank
    return None


def package_dirs() -> dict[str, Path]:
    """pyproject.toml's package-dir mapping: package -> folder."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {name: REPO / folder for name, folder in setuptools["package-dir"].items()}


def project_modules(dirs: dict[str, Path]) -> dict[str, Path]:
    """Every module of the mapped packages: dotted name -> file."""
    modules: dict[str, Path] = {}
    for package, folder in dirs.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join((package, *parts))
            if name not in modules and (path.parent == folder or (path.parent / "__init__.py").is_file()):
                modules[name] = path
    return modules


def imports_of(path: Path, module: str, known: set[str]) -> set[str]:
    """The project modules that ``module`` (at ``path``) imports, anywhere in its body."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import sub` imports the module pkg.sub where there is one
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:  # `import a.b.c` of a known a.b: its deepest module
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    known = set(modules)
    return {name: imports_of(path, name, known) for name, path in modules.items()}


def back_edges(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if layer_of(module) is None or layer_of(target) is None:
                bad.append(f"{module} -> {target}: not in any layer (add it to LAYERS)")
            elif layer_of(target) > layer_of(module):
                bad.append(f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} "
                           f"({LAYERS[layer_of(target)][0]}), a layer above it")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(project_modules(package_dirs()))


def test_every_module_is_in_a_layer(graph):
    assert graph and all(layer_of(module) is not None for module in graph)
    assert {LAYERS[layer_of(m)][0] for m in graph} == {name for name, _ in LAYERS}


def test_imports_run_one_way(graph):
    assert back_edges(graph) == []


def test_no_circle(graph):
    assert cycles(graph) == []


def test_a_planted_back_edge_and_circle_fail(tmp_path, graph):
    models = tmp_path / "models"
    models.mkdir()
    (models / "__init__.py").write_text("")
    # a model reaching up into the tasks, lazily, as models/inception.py once did
    (models / "planted.py").write_text("def f():\n    from inpaintflow.tasks.data.download import download\n")
    (models / "ring_a.py").write_text("from inpaintflow.models import ring_b\n")
    (models / "ring_b.py").write_text("from . import ring_a\n")
    planted = project_modules({"inpaintflow.models": models})
    known = set(graph) | set(planted)
    extra = {name: imports_of(path, name, known) for name, path in planted.items()}
    assert back_edges({**graph, **extra}) == [
        "inpaintflow.models.planted (models) imports inpaintflow.tasks.data.download (tasks), a layer above it"]
    assert cycles({**graph, **extra}) == [["inpaintflow.models.ring_a", "inpaintflow.models.ring_b"]]
    assert back_edges({"inpaintflow.params": {"inpaintflow.tasks.tables.render"}}) != []


def test_pyproject_installs_every_package_folder():
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = set()
    for package, folder in setuptools["package-dir"].items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder).parts
            folders.add(".".join((package, *rel)))
    assert sorted(setuptools["packages"]) == sorted(folders)


# --- dvc.yaml: each stage names exactly its step's code -----------------------------------------

# The flow module each stage runs (through the CLI, which every stage shares and none lists).
STAGE_FLOWS = {"data": "inpaintflow.flows.data", "masks": "inpaintflow.flows.masks",
               "train": "inpaintflow.flows.train", "inpaint": "inpaintflow.flows.inpaint",
               "blend": "inpaintflow.flows.blend", "evaluate": "inpaintflow.flows.evaluate",
               "table": "inpaintflow.flows.tables"}
# Imported by every stage but listed by none: params.py (a stage lists the params keys it reads,
# so a change to another key reruns nothing), runtime.py (Prefect and Dask set-up, result-neutral)
# and the package's __init__.py (the version, and where a source checkout's layers are). A
# package __init__.py that holds only its docstring is no code either.
UNLISTED = {"inpaintflow/params.py", "inpaintflow/runtime.py", "inpaintflow/__init__.py"}


def docstring_only(path: Path) -> bool:
    body = ast.parse(path.read_text()).body
    return len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
MODEL_FILE = "${item.code}"  # train: the paper's model file, imported by name through RECIPES


def closure(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph.get(module, ()))
            # a module imports its package's __init__ first
            parent = module.rpartition(".")[0]
            if parent in graph:
                todo.append(parent)
    return seen


def _listed_files(deps: list[str]) -> set[str]:
    files = set()
    for dep in deps:
        path = REPO / dep
        if path.is_dir():
            files |= {str(p.relative_to(REPO)) for p in path.rglob("*.py") if not docstring_only(p)}
        elif dep.endswith(".py"):
            files.add(dep)
    return files


@pytest.mark.parametrize("stage", sorted(STAGE_FLOWS))
def test_each_stage_lists_exactly_its_code(stage, graph):
    from inpaintflow.models import RECIPES

    modules = project_modules(package_dirs())
    body = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage]["do"]
    deps = [d for d in body["deps"] if not d.startswith(("data/", "runs/", "references/"))]
    needed = closure(graph, STAGE_FLOWS[stage])
    # the training engine imports each paper's module by name (models.RECIPES): the train stage
    # lists its own paper's file as ${item.code}, a stage that rebuilds any run lists them all
    dynamic = {module for module, _, _ in RECIPES.values()} if "inpaintflow.tasks.train.engine" in needed else set()
    for module in dynamic:
        needed |= closure(graph, module)
    needed_files = {str(modules[m].relative_to(REPO)) for m in needed if not docstring_only(modules[m])} - UNLISTED
    if MODEL_FILE in deps:
        needed_files -= {str(modules[m].relative_to(REPO)) for m in dynamic}
    listed = _listed_files([d for d in deps if d != MODEL_FILE])
    assert sorted(listed - needed_files) == [], "listed but not imported by the stage's flow"
    assert sorted(needed_files - listed) == [], "imported by the stage's flow but not listed"
    assert all((REPO / d).exists() for d in deps if d != MODEL_FILE)

"""The layout: modules named for their jobs, imported one way only. No import circle among the top-level
modules and benchmarks/, counting every import, also one inside a function (a circle a deferred import
hides still ties two modules together); ``utils`` defines what it exports; the specification's names live
in ``specification.py``, which imports nothing from the repository when it is imported."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = {path.stem: path for path in ROOT.glob("*.py")}
SPECIFICATION = "specification"  # its shims import what they stand for when called: the one place allowed to


def parse(name):
    return ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))


def repository_imports(tree, module_level_only=False):
    """``{module: [line, ...]}``: the top-level modules of the repository that ``tree`` imports, anywhere in it
    (in functions too) or only in its module-level statements."""
    nodes = tree.body if module_level_only else ast.walk(tree)
    found = {}
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in MODULES:
                found.setdefault(top, []).append(node.lineno)
    return found


def import_graph():
    """Every top-level module and benchmarks/*.py -> the repository modules it imports. The specification's
    shims import at call time what they stand for, and the modules that re-export them import
    ``specification``: that is the one edge left out, from ``specification`` to what it stands for
    (``test_the_specification_imports_nothing_when_imported`` checks it is only ever deferred)."""
    graph = {}
    for name in MODULES:
        graph[name] = {} if name == SPECIFICATION else repository_imports(parse(name))
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        graph[f"benchmarks/{path.name}"] = repository_imports(ast.parse(path.read_text(), filename=str(path)))
    return graph


def find_cycle(graph):
    """One import circle as ``[a, b, ..., a]``, or None."""
    state = {}  # name -> "open" while on the current path, "done" after

    def visit(name, path):
        state[name] = "open"
        for target in sorted(graph.get(name, {})):
            if state.get(target) == "open":
                return path[path.index(target):] + [name, target] if target in path else [name, target]
            if target not in state:
                cycle = visit(target, path + [name])
                if cycle:
                    return cycle
        state[name] = "done"
        return None

    for name in sorted(graph):
        if name not in state:
            cycle = visit(name, [])
            if cycle:
                return cycle
    return None


def describe(cycle, graph):
    return " -> ".join(cycle) + " (" + "; ".join(
        f"{a}.py line {', '.join(map(str, graph[a][b]))} imports {b}" for a, b in zip(cycle, cycle[1:])) + ")"


def test_no_import_circle():
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, f"import circle: {describe(cycle, graph)}"


def test_the_cycle_finder_names_a_circle():
    graph = {"a": {"b": [3]}, "b": {"c": [5]}, "c": {"a": [7]}, "d": {"a": [1]}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert describe(["a", "b", "c", "a"], graph).startswith("a -> b -> c -> a (a.py line 3 imports b")
    assert find_cycle({"a": {"b": [1]}, "b": {}}) is None


def test_the_specification_imports_nothing_when_imported():
    tree = parse(SPECIFICATION)
    assert repository_imports(tree, module_level_only=True) == {}
    defined = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    # no other module defines a specification name: each lives here once
    for name in MODULES:
        if name != SPECIFICATION:
            theirs = {node.name for node in parse(name).body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
            theirs |= {target.id for node in parse(name).body if isinstance(node, ast.Assign)
                       for target in node.targets if isinstance(target, ast.Name)}
            assert not defined & theirs, f"{name}.py defines the specification's {sorted(defined & theirs)}"


def test_utils_defines_what_it_exports():
    """What ``utils`` takes from another repository module it uses itself; the only names it passes on
    are the specification's (from ``specification``)."""
    tree = parse("utils")
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    used |= {node.value.id for node in ast.walk(tree)
             if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)}
    passed_on = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in MODULES:
            if node.module != SPECIFICATION:
                passed_on += [f"{alias.name} (from {node.module})" for alias in node.names
                              if (alias.asname or alias.name) not in used]
        elif isinstance(node, ast.Import):
            passed_on += [alias.name for alias in node.names if alias.name in MODULES
                          and (alias.asname or alias.name) not in used]
    assert not passed_on, f"utils.py re-exports {passed_on}: import them from where they are defined"

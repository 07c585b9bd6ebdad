"""Imports point one way: the apps use the core (vpnmonitor/), the core uses no app, and no two modules import
each other. Read from the source with ast, imports inside functions included, so a deferred import does not
hide a dependency."""

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = "vpnmonitor"
APPS = ("monitoring", "flowreports", "proxylogs", "dashboard", "proxytraffic")
CORE_EXCEPTIONS = ("vpnmonitor.testing", "vpnmonitor.tests")
"""Test support may build data of every app."""


def module_files():
    """{dotted module name: path} of every module of the project's packages."""
    modules = {}
    for package in (CORE, *APPS):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def imported_names(module, path):
    """Every dotted name an import statement anywhere in the file (module level or inside a function) names.

    `from a import b` gives both a.b (b may be a module) and a; relative imports are made absolute.
    """
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[:len(parts) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base, node.lineno
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno


def import_graph():
    """{module: {imported project module: first line}}; an imported name maps to the longest module it names
    (from a package's __init__ when the name is a function or class)."""
    modules = module_files()
    graph = defaultdict(dict)
    for module, path in modules.items():
        for name, line in imported_names(module, path):
            target = name
            while target and target not in modules:
                target = target.rpartition(".")[0]
            # Importing a module imports its packages anyway: an edge to one's own package says nothing.
            if target and target != module and not module.startswith(target + "."):
                graph[module].setdefault(target, line)
    return modules, graph


def is_core(module):
    return (module == CORE or module.startswith(CORE + ".")) and not any(
        module == name or module.startswith(name + ".") for name in CORE_EXCEPTIONS
    )


def imports_app(name):
    return name.split(".")[0] in APPS


def mutual_pairs(graph):
    return {
        frozenset({module, target})
        for module, targets in graph.items()
        for target in targets
        if module in graph.get(target, {})
    }


def test_the_walk_sees_module_level_and_function_level_imports():
    modules, graph = import_graph()

    assert len(modules) > 100
    assert "vpnmonitor.models" in graph["vpnmonitor.api.principals"]  # module level
    assert "vpnmonitor.retention" in graph["monitoring.apps"]  # inside AppConfig.ready()
    assert "flowreports.models" in graph["flowreports.rollups"]  # inside functions only


def test_each_app_registers_its_health_check_and_its_collectors_in_installed_apps_order():
    from vpnmonitor import ingestion_health, metrics

    checks = {name: check.summary_key for name, check in ingestion_health.checks().items()}
    collectors = [f"{factory.__module__}.{factory.__name__}" for factory in metrics.collectors()]

    assert checks == {"servers": "openvpn_servers", "collectors": "flow_collectors", "log_sources": "proxy_log_sources"}
    assert list(checks) == ["servers", "collectors", "log_sources"]
    assert collectors == [
        "monitoring.metrics.OpenVpnCollector", "monitoring.metrics.CertificateCollector",
        "flowreports.metrics.FlowCollectorCollector", "proxylogs.metrics.LogSourceCollector",
    ]


def test_the_core_imports_no_app():
    _, graph = import_graph()

    found = sorted(
        f"{module} imports {target} (line {line})"
        for module, targets in graph.items() if is_core(module)
        for target, line in targets.items() if imports_app(target)
    )

    assert found == []


def test_no_two_modules_import_each_other():
    _, graph = import_graph()

    found = sorted(" <-> ".join(sorted(pair)) for pair in mutual_pairs(graph))

    assert found == []

"""The layout's rules, checked: who may import whom, and no import cycles.

- media code (`rtp`, `sfu`, `compose`) knows nothing of HTTP, signaling or the database;
- signaling never touches aiortc objects (it drives `sfu.MediaServer` through its API);
- the offline composer imports no aiortc at all (it runs in its own process);
- clients and load bots use the shared `rtp` seam, never the server's `sfu` or `signaling`;
- no module imports one that imports it back.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("rtp", "sfu", "compose", "signaling", "storage", "client")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module this one names in an import (type-checking imports included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _top(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


def test_media_code_knows_nothing_of_http_signaling_or_the_database():
    for name, path in MODULES.items():
        if name.split(".")[0] in ("rtp", "sfu", "compose"):
            forbidden = _top(_imports(name, path)) & {"aiohttp", "signaling", "storage"}
            assert not forbidden, f"{name} imports {forbidden}"


def test_signaling_never_touches_aiortc():
    """Signaling drives the media server through `sfu`'s public API; from `rtp` it may use
    the shared vocabulary (`rtp.types`) only."""
    allowed = {"sfu", "rtp", "rtp.types"}
    for name, path in MODULES.items():
        if name.startswith("signaling"):
            names = _imports(name, path)
            assert not _top(names) & {"aiortc", "aioice", "av"}, f"{name} imports aiortc or av"
            deep = {n for n in names if n in MODULES and n.split(".")[0] in ("sfu", "rtp")}
            assert deep <= allowed, f"{name} reaches into {deep - allowed}"


def test_clients_use_the_shared_seam_not_the_server():
    for name, path in MODULES.items():
        if name.startswith("client"):
            forbidden = _top(_imports(name, path)) & {"sfu", "signaling", "storage"}
            assert not forbidden, f"{name} imports {forbidden}"


def test_the_composer_process_imports_no_aiortc():
    code = (
        "import sys, compose, compose.composer; print(sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('aiortc', 'aioice', 'sfu', 'signaling')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout


def test_no_import_cycles():
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        targets = set()
        for imported in _imports(name, path):
            while imported and imported not in MODULES:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and not name.startswith(imported + "."):
                targets.add(imported)
        graph[name] = targets
    cycles = []
    for start in graph:
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    cycles.append(" -> ".join([*trail, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
    assert not cycles, "\n".join(sorted(set(cycles)))

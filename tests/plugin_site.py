"""Third-party adapter plugins for tests: a module and a dist-info folder, no pip needed.

`importlib.metadata` finds entry points in any ``*.dist-info`` on sys.path, so a
folder holding both, put on sys.path (and PYTHONPATH for child processes), is an
installed plugin as far as portable can tell.
"""

from __future__ import annotations

from pathlib import Path

_BASE = '''
import os, signal, sys, time
from portable.adapter import Adapter, Capabilities, DeviceInfo


class _Plugin(Adapter):
    def capabilities(self):
        return Capabilities(dtypes=("float32",))

    def load(self, model_path, config):
        raise NotImplementedError
'''

#: entry point name -> (module source after `_BASE`, class name)
PLUGINS = {
    "evil-exit": ("sys.exit(3)\n", "Gone"),
    "evil-segv": ('''
class Segv(_Plugin):
    name = "evil-segv"

    def probe(self):
        os.kill(os.getpid(), signal.SIGSEGV)
''', "Segv"),
    "evil-hang": ('''
class Hang(_Plugin):
    name = "evil-hang"

    def probe(self):
        time.sleep(3600)
''', "Hang"),
    "evil-markup": ('''
class Markup(_Plugin):
    name = "evil-markup"

    def probe(self):
        return DeviceInfo("[/x]", "[bold red]pwn <script>alert(1)</script>",
                          runtime={"[/y]": "=HYPERLINK(1)"})
''', "Markup"),
}


def make_plugin_site(folder: Path, names: tuple[str, ...] = tuple(PLUGINS)) -> Path:
    """A folder that, on sys.path, installs the named plugins (one module each)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["[portable.backends]"]
    for name in names:
        source, cls = PLUGINS[name]
        module = "portable_test_" + name.replace("-", "_")
        (folder / f"{module}.py").write_text(_BASE + source, encoding="utf-8")
        lines.append(f"{name} = {module}:{cls}")
    info = folder / "portable_test_plugins-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: portable-test-plugins\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder

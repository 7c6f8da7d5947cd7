"""Without the "sdk" extra, importing agenttrail.sdk says what to install instead of failing on
an OpenTelemetry module name."""

from __future__ import annotations

import subprocess
import sys

# A fresh interpreter where opentelemetry.sdk cannot be imported, as after `pip install -e .`.
_WITHOUT_OTEL_SDK = """
import importlib.abc, sys
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry.sdk" or name.startswith("opentelemetry.sdk."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Missing())
try:
    from agenttrail import sdk
except ImportError as exc:
    print(exc)
    print(type(exc.__cause__).__name__)
else:
    print("imported")
"""


def test_the_sdk_without_its_extra_names_the_install_command():
    out = subprocess.run([sys.executable, "-c", _WITHOUT_OTEL_SDK], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    message, cause = out.stdout.strip().splitlines()
    assert "pip install 'agenttrail[sdk]'" in message and "-e '.[sdk]'" in message
    assert cause == "ModuleNotFoundError"  # the original error stays attached


def test_the_sdk_imports_with_its_extra():
    out = subprocess.run([sys.executable, "-c", "from agenttrail import sdk; print(sdk.__version__)"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip(), out.stderr

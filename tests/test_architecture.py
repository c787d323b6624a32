"""The import contracts of pyproject.toml (the apps' dependency rule and the engine's layers) hold:
`lint-imports` fails this test with the import that broke one."""

import subprocess
import sys
from pathlib import Path

from django.conf import settings


def test_the_import_contracts_hold():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]

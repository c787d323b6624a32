"""A throwaway database with the default team, for the in-process benchmarks (api_lists, turn_writes).

    with throwaway_database() as engine:   # "sqlite3" or "postgresql"
        ...

SQLite by default (a file in a temp dir); DATABASE_URL picks another server. A test database is
created and dropped, so an existing database is never touched. DEBUG is off, as in production.
"""

import contextlib
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def throwaway_database():
    sys.path.insert(0, str(ROOT))
    tmp = tempfile.mkdtemp(prefix="tron-bench-")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{tmp}/bench.sqlite3")
    os.environ["TRON_DATA_DIR"] = tmp
    os.environ["DJANGO_DEBUG"] = "false"
    os.environ["DJANGO_SETTINGS_MODULE"] = "tron_site.settings"
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test.utils import setup_databases, teardown_databases

    config = setup_databases(verbosity=0, interactive=False)
    try:
        call_command("load_team", verbosity=0)
        yield settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    finally:
        teardown_databases(config, verbosity=0)

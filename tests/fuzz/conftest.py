from tests.integrations.conftest import (  # noqa: F401 - the edges' fixtures
    application,
    chat_setup,
    fake_slack,
    live_tron,
    slack,
    team,
)

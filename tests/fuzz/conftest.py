from tests.integrations.conftest import chat_setup, live_tron, team  # noqa: F401 - the edges' fixtures
from tests.integrations.slack.conftest import fake_slack, slack  # noqa: F401

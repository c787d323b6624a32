"""Start-up configuration: read from the environment, and a bad value stops start-up with a clear message."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def manage(*args, **env):
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "TRON_", "REDIS_", "OPENAI_", "OTEL_"))
    }
    full_env["DATABASE_URL"] = "sqlite:///:memory:"
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG must be true or false"),
        ({"TRON_PORT": "eighty"}, "TRON_PORT must be a whole number"),
        ({"TRON_PORT": "70000"}, "TRON_PORT must be between 1 and 65535"),
        ({"TRON_LLM": "gpt"}, "TRON_LLM must be one of auto, openai, local"),
        ({"REDIS_URL": "http://user:hunter2@localhost"}, "REDIS_URL must start with redis://"),
        ({"DATABASE_URL": "nosuchdb://x"}, "DATABASE_URL is not a database URL"),
        ({"TRON_SESSION_IDLE_MINUTES": "0"}, "TRON_SESSION_IDLE_MINUTES must be at least 1"),
        ({"TRON_PRICES": '{"m": {"input": Infinity, "output": 1}}'}, "TRON_PRICES: the price of 'm'"),
        ({"TRON_PRICES": '{"m": {"input": true, "output": 1}}'}, "TRON_PRICES: the price of 'm'"),
        ({"TRON_PRICES": "[1]"}, "TRON_PRICES must be a JSON object"),
        ({"SLACK_ADMIN_USERS": "U0ADMIN01,ada@example.com"}, "SLACK_ADMIN_USERS must be Slack ids"),
        ({"SLACK_CHANNEL_PERSONAS": "C0MARKET1:maya"}, "SLACK_CHANNEL_PERSONAS must be entries like"),
        ({"SLACK_CHANNEL_PERSONAS": "#marketing=maya"}, "SLACK_CHANNEL_PERSONAS must be entries like"),
        ({"SLACK_API_URL": "slack.com/api"}, "SLACK_API_URL must be an http:// or https:// URL"),
        (
            {"TRON_NEWS_FEEDS": "https://ok.example/rss,feed.xml"},
            "TRON_NEWS_FEEDS must be comma-separated http(s) URLs, got 'feed.xml'",
        ),
        ({"TRON_SOCIAL_API_URL": "ftp://hunter2@example.com"}, "TRON_SOCIAL_API_URL must be an http(s) URL"),
        ({"TRON_REFLECTION_THRESHOLD": "0"}, "TRON_REFLECTION_THRESHOLD must be at least 1"),
        ({"TRON_PUBLIC_URL": "tron.example.com"}, "TRON_PUBLIC_URL must start with http:// or https://"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "grpc://collector:4317"},
            "OTEL_EXPORTER_OTLP_ENDPOINT must be an http",
        ),
        (
            {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "please"},
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT must be true or false",
        ),
    ],
)
def test_a_bad_value_stops_start_up_with_a_clear_message(env, message):
    result = manage("check", **env)
    assert result.returncode != 0
    assert message in result.stderr
    assert "hunter2" not in result.stderr


def test_good_values_start(tmp_path):
    result = manage("check", DJANGO_DEBUG="false", TRON_PORT="8080", DJANGO_ALLOWED_HOSTS="example.com")
    assert result.returncode == 0, result.stderr


def test_secrets_can_come_from_files(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("from-a-file\n")
    result = manage(
        "shell",
        "-v",
        "0",
        "-c",
        "from django.conf import settings; print(settings.TRON_API_TOKEN)",
        TRON_API_TOKEN_FILE=str(secret),
    )
    assert result.stdout.strip() == "from-a-file"


def test_slack_settings_are_read_with_their_secrets_from_files(tmp_path):
    secret = tmp_path / "slack-secret"
    secret.write_text("s3cr3t\n")
    result = manage(
        "shell",
        "-v",
        "0",
        "-c",
        "from django.conf import settings as s; "
        "print(s.SLACK_SIGNING_SECRET, s.SLACK_ADMIN_USERS, s.SLACK_CHANNEL_PERSONAS, s.SLACK_API_URL)",
        SLACK_SIGNING_SECRET_FILE=str(secret),
        SLACK_ADMIN_USERS=" U0ADMIN01, W0ADMIN02 ",
        SLACK_CHANNEL_PERSONAS="C0MARKET1=maya, C0MONEY01 = Jordan",
        SLACK_API_URL="",
    )
    assert result.stdout.strip() == (
        "s3cr3t ['U0ADMIN01', 'W0ADMIN02'] {'C0MARKET1': 'maya', 'C0MONEY01': 'Jordan'} https://slack.com/api/"
    ), result.stderr


def test_prices_come_from_the_table_then_the_file_then_the_variable(tmp_path):
    prices = tmp_path / "prices.json"
    prices.write_text('{"gpt-4o-mini": {"input": 1, "output": 1}, "House-Model": {"input": 2, "output": 3}}')
    code = (
        "from agents.pricing import price_for as p; "
        "print(*(p(m) for m in ['gpt-4o-mini', 'house-model-2026-01', 'openai/gpt-4o', 'nobody']), sep='|')"
    )
    result = manage(
        "shell",
        "-v",
        "0",
        "-c",
        code,
        TRON_PRICES_FILE=str(prices),
        TRON_PRICES='{"gpt-4o-mini": {"input": 9, "output": 9.5}}',
    )
    assert result.stdout.strip().split("|") == [
        "(Decimal('9'), Decimal('9.5'))",  # the variable over the file over the table
        "(Decimal('2'), Decimal('3'))",  # the file's model, by prefix of a dated name, any case
        "(Decimal('2.50'), Decimal('10.00'))",  # the table, without the provider prefix
        "None",  # unknown: recorded at $0 and logged
    ], result.stderr


@pytest.mark.parametrize(
    ("env", "provider"),
    [
        ({}, "local"),
        ({"OPENAI_API_KEY": "sk-test"}, "openai"),
        ({"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}, "openai"),
        ({"OPENAI_API_KEY": "sk-test", "TRON_LLM": "local"}, "local"),
        ({"TRON_LLM": "openai"}, "openai"),
    ],
)
def test_the_provider_is_chosen_by_tron_llm_and_the_openai_settings(env, provider):
    code = "from agents.llm import get_provider; print(get_provider().name)"
    result = manage("shell", "-v", "0", "-c", code, **env)
    assert result.stdout.strip() == provider, result.stderr


def test_without_redis_the_layer_spans_this_machines_processes_and_the_broker_is_the_database():
    code = "from django.conf import settings as s; print(s.CHANNEL_LAYERS['default']['BACKEND'], 'orm' in s.Q_CLUSTER)"
    assert manage("shell", "-v", "0", "-c", code).stdout.split() == [
        "tron_site.channel_layer.MachineChannelLayer",
        "True",
    ]


def test_with_redis_both_use_it():
    code = (
        "from django.conf import settings as s; "
        "print(s.CHANNEL_LAYERS['default']['BACKEND'], s.Q_CLUSTER.get('redis'), 'orm' in s.Q_CLUSTER)"
    )
    out = manage("shell", "-v", "0", "-c", code, REDIS_URL="redis://127.0.0.1:6379/0").stdout.split()
    assert out == ["channels_redis.core.RedisChannelLayer", "redis://127.0.0.1:6379/0", "False"]


def test_deploy_check_refuses_development_defaults():
    result = manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert "security.W018" in result.stderr or "security.W018" in result.stdout

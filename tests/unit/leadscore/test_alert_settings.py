"""The alert settings: read from the environment, bad values named by their variable."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from leadscore.cli import app
from leadscore.settings import Settings, SettingsError


def test_alert_settings_are_read_and_normalised() -> None:
    settings = Settings.from_env(
        {
            "LEADSCORE_SLACK_WEBHOOK_URL": "https://hooks.slack.test/services/T/B/X",
            "LEADSCORE_SLACK_TOKEN": "xoxb-1",
            "LEADSCORE_SLACK_CHANNELS": "NA=#sales-na, EMEA=#sales-emea,*=#sales",
            "LEADSCORE_WEBHOOK_URL": "https://example.test/in?x=1",
            "LEADSCORE_WEBHOOK_SECRET": "s",
            "LEADSCORE_ALERT_JUMP": "15",
            "LEADSCORE_ALERT_DIGEST_MINUTES": "2.5",
            "LEADSCORE_PUBLIC_URL": "https://leads.example.test",
        }
    )
    assert settings.slack_webhook_url == {"*": "https://hooks.slack.test/services/T/B/X"}
    assert settings.slack_channels == {"NA": "#sales-na", "EMEA": "#sales-emea", "*": "#sales"}
    assert (settings.alert_jump, settings.alert_digest_minutes) == (15, 2.5)
    assert (settings.alert_max_attempts, settings.alert_timeout) == (5, 10.0)
    assert "xoxb-1" not in repr(settings) and "secret" not in repr(settings)
    assert Settings.from_env({}).alert_jump is None  # off by default
    assert Settings.from_env(settings.to_env()) == settings  # a subprocess gets the same


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LEADSCORE_ALERT_JUMP": "0"}, "LEADSCORE_ALERT_JUMP must be between 1 and 100"),
        ({"LEADSCORE_ALERT_JUMP": "ten"}, "LEADSCORE_ALERT_JUMP must be a number of score"),
        ({"LEADSCORE_ALERT_DIGEST_MINUTES": "-1"}, "LEADSCORE_ALERT_DIGEST_MINUTES must be"),
        ({"LEADSCORE_ALERT_TIMEOUT": "nan"}, "LEADSCORE_ALERT_TIMEOUT must be between"),
        ({"LEADSCORE_ALERT_MAX_ATTEMPTS": "0"}, "LEADSCORE_ALERT_MAX_ATTEMPTS must be between"),
        ({"LEADSCORE_SLACK_WEBHOOK_URL": "hooks.slack.com/x"}, "LEADSCORE_SLACK_WEBHOOK_URL must"),
        ({"LEADSCORE_SLACK_WEBHOOK_URL": "NA=ftp://x"}, "LEADSCORE_SLACK_WEBHOOK_URL must be an"),
        ({"LEADSCORE_PUBLIC_URL": "leads.example"}, "LEADSCORE_PUBLIC_URL must be an http"),
        (
            {"LEADSCORE_SLACK_CHANNELS": "NA=,EMEA=#x", "LEADSCORE_SLACK_TOKEN": "t"},
            "LEADSCORE_SLACK_CHANNELS must be one value or region=value pairs",
        ),
        ({"LEADSCORE_SLACK_CHANNELS": "#sales"}, "LEADSCORE_SLACK_TOKEN must be set"),
        ({"LEADSCORE_WEBHOOK_URL": "https://x.test/"}, "LEADSCORE_WEBHOOK_SECRET must be set"),
    ],
)
def test_a_bad_alert_setting_names_its_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_alerts_send_without_a_destination_says_what_to_set(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LEADSCORE_HOME", str(tmp_path))
    for name in (
        "LEADSCORE_SLACK_WEBHOOK_URL",
        "LEADSCORE_SLACK_CHANNELS",
        "LEADSCORE_WEBHOOK_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(app, ["alerts", "send"])
    assert result.exit_code == 2
    assert "error: no alert destination: set LEADSCORE_SLACK_WEBHOOK_URL" in result.output

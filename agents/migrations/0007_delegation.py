from django.db import migrations, models

CHANNELS = [
    ("http", "HTTP (OpenAI-compatible)"),
    ("vapi", "VAPI"),
    ("elevenlabs", "ElevenLabs"),
    ("slack", "Slack"),
    ("life", "Life loop"),
    ("cli", "Command line"),
    ("memory", "Caller memory"),
    ("delegated", "Delegated task"),
]


class Migration(migrations.Migration):
    """Delegation: a process's depth below its conversation, a delegated task's result and when it was
    delivered, and the `delegated` channel."""

    dependencies = [
        ("agents", "0006_voice_calls_and_caller_memory"),
    ]

    operations = [
        migrations.AddField(
            model_name="process",
            name="spawn_depth",
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="process",
            name="result",
            field=models.TextField(blank=True, help_text="A delegated task's final answer."),
        ),
        migrations.AddField(
            model_name="process",
            name="delivered_at",
            field=models.DateTimeField(
                blank=True,
                help_text="When the result or failure reached the delegating conversation.",
                null=True,
            ),
        ),
        migrations.AlterField(
            model_name="process",
            name="channel",
            field=models.CharField(choices=CHANNELS, default="http", max_length=16),
        ),
        migrations.AlterField(
            model_name="callersession",
            name="channel",
            field=models.CharField(choices=CHANNELS, default="http", max_length=16),
        ),
    ]

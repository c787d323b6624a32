"""Talk to a persona from the shell, through the same runtime as the chat API.

    manage.py chat "What are you working on?"          # one message, one answer
    manage.py chat --persona maya                      # a conversation: one line per message, Ctrl-D ends

Each run is a caller of its own (`cli-<user>` by default), so a conversation continues across runs
until it is idle for TRON_SESSION_IDLE_MINUTES, like any other caller. Its turns run for a team member
(`--operator`: for an operator, who may give standing instructions; docs/security.md). It exercises the
runtime's sync entry point, the one django-q2 tasks use.
"""

import getpass
import sys

from django.core.management.base import BaseCommand, CommandError

from agents.callers import Caller
from agents.errors import NoPersona, TurnError
from agents.llm.local import model_process_while_needed
from agents.models import Channel, Persona
from agents.principals import Principal, Trust
from agents.runtime import TurnInput, complete_turn_sync


class Command(BaseCommand):
    help = "Chat with a persona from the command line."

    def add_arguments(self, parser):
        parser.add_argument("message", nargs="*", help="the message; without it, read lines from stdin")
        parser.add_argument("--persona", default=None, help="who answers (default: TRON_DEFAULT_PERSONA)")
        parser.add_argument("--caller", default=None, help="caller id (default: cli-<your user name>)")
        parser.add_argument("--max-tokens", type=int, default=None)
        parser.add_argument("--operator", action="store_true", help="act as an operator, not a team member")

    def handle(self, *args, message, persona, caller, max_tokens, operator, **options):
        caller_id = caller or f"cli-{getpass.getuser()}"
        trust = Trust.OPERATOR if operator else Trust.TEAM
        principal = Principal(trust, caller_id, f"shell user {getpass.getuser()}")
        if persona is not None:
            check_persona(persona)
        if message and not " ".join(message).strip():
            raise CommandError(
                "The message is empty: say something, or give no message to read lines from stdin."
            )
        lines = [" ".join(message)] if message else (line.strip() for line in sys.stdin)
        try:
            with model_process_while_needed():
                self._converse(lines, caller_id, principal, persona, max_tokens, options["verbosity"])
        except NoPersona as exc:
            raise CommandError(exc.message) from exc
        except TurnError as exc:
            raise CommandError(f"The model failed ({exc.code}): {exc.message}") from exc

    def _converse(self, lines, caller_id, principal, persona, max_tokens, verbosity):
        for text in lines:
            if not text:
                continue
            end = complete_turn_sync(
                TurnInput(
                    messages=[{"role": "user", "content": text}],
                    caller=Caller(caller_id, Channel.CLI),
                    principal=principal,
                    persona_name=persona,
                    max_tokens=max_tokens,
                )
            )
            self.stdout.write(end.text)
            if verbosity > 1:
                self.stderr.write(
                    f"[{end.input_tokens}+{end.output_tokens} tokens, ${end.cost_usd}, {end.usage_source}]"
                )


def check_persona(name: str) -> None:
    """Refuse a persona that would not answer: the chat API falls back to the default persona for any
    other `model`, but a person who typed a name means that one."""
    names = list(Persona.objects.enabled().values_list("name", flat=True))
    if name.strip().lower() not in {n.lower() for n in names}:
        known = ", ".join(names) or "none (run `manage.py load_team`)"
        raise CommandError(f"No enabled persona is called {name!r}. Personas: {known}.")

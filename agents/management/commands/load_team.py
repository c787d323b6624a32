"""Seed the Persona table from the default team file (agents/team.toml).

Why it exists: the original server read its 24 agents from a YAML file on every start and kept a second,
disagreeing copy of the five executives in code, so changing a prompt meant a redeploy. Here the team ships
as one data file that seeds the database once; after that the database is the truth and operators edit
personas in the admin. `make run` calls this command on every start, so it must be safe to repeat:

* By default it only creates personas that do not exist yet (matched by name, ignoring case) and leaves
  existing rows exactly as they are, admin edits included. A second run changes nothing.
* `--update` makes existing personas match the file again: every key a persona's entry gives is written
  (keys the entry leaves out, such as `model`, keep their database value). It discards admin edits to
  those keys, which is the point: use it to roll out prompt changes made in the file.
* `--dry-run` validates the file and reports what would happen, writing nothing.

The whole file is checked before anything is written, and the writes run in one transaction. The file's
shape is checked here (unknown or missing keys, TOML types, duplicate names, `reports_to` naming nobody);
the values are checked by the model, as the admin checks them: each persona, as the file would leave it,
goes through `Persona.full_clean()`, and its errors are reported with the persona's name and key.
`reports_to` is resolved by name in a second pass, once every persona in the file exists.
"""

import copy
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from django.apps import apps
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError, transaction

from agents.models import Persona

REQUIRED_KEYS = ("name", "role", "system_prompt")
STRING_KEYS = ("name", "role", "kind", "tone", "system_prompt", "model", "reports_to", "time_zone")
NUMBER_KEYS = ("temperature", "budget_usd")
BOOL_KEYS = ("life_enabled", "enabled")
# Checked by the model's validators (JSON fields take any TOML value here).
JSON_KEYS = ("focus_areas", "tools", "life_schedule", "news_feeds")
KNOWN_KEYS = frozenset(STRING_KEYS + NUMBER_KEYS + BOOL_KEYS + JSON_KEYS + ("sort_order",))


def default_team_file() -> Path:
    return Path(apps.get_app_config("agents").path) / "team.toml"


@dataclass
class Entry:
    """One validated persona from the file: field values, plus the lead's name when the entry gives one."""

    name: str
    values: dict
    reports_to: str | None = None  # None: not given; "": explicitly nobody


@dataclass
class Plan:
    creates: list = field(default_factory=list)  # [Entry]
    updates: list = field(default_factory=list)  # [(Persona, Entry, [changed keys])]
    unchanged: list = field(default_factory=list)  # [(Persona, [keys that differ from the file])]


class Command(BaseCommand):
    help = (
        "Create the default team's personas from agents/team.toml if missing; "
        "--update overwrites existing personas from the file."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--file", type=Path, default=None, help="Team file to load (default: agents/team.toml)."
        )
        parser.add_argument(
            "--update",
            action="store_true",
            help="Overwrite existing personas with the file's values (discards admin edits to those keys).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Report what would change; write nothing.")

    def handle(self, *args, **options):
        path = options["file"] or default_team_file()
        verbosity = options["verbosity"]
        entries = parse_team_file(path)
        existing = {p.name.lower(): p for p in Persona.objects.select_related("reports_to")}
        check_reports_to(path, entries, existing)
        validate_personas(path, entries, existing)
        plan = make_plan(entries, existing, update=options["update"])

        if verbosity >= 2:
            self.describe(plan)
        if not options["dry_run"]:
            try:
                with transaction.atomic():
                    apply_plan(plan, existing)
            except IntegrityError as exc:
                raise CommandError(
                    f"Could not load the team ({exc}); was it loaded concurrently? Run the command again."
                ) from exc

        if verbosity >= 1:
            counts = (
                f"created {len(plan.creates)}, updated {len(plan.updates)}, unchanged {len(plan.unchanged)}"
            )
            differing = sum(1 for _persona, keys in plan.unchanged if keys)
            verb = "differs" if differing == 1 else "differ"
            note = f" ({differing} {verb} from the file; --update would overwrite)" if differing else ""
            if options["dry_run"]:
                self.stdout.write(f"Dry run, nothing written. From {path}: would have {counts}{note}.")
            else:
                self.stdout.write(self.style.SUCCESS(f"Loaded the team from {path}: {counts}{note}."))

    def describe(self, plan: Plan):
        for entry in plan.creates:
            self.stdout.write(f"  create {entry.name}")
        for persona, _entry, keys in plan.updates:
            self.stdout.write(f"  update {persona.name}: {', '.join(keys)}")
        for persona, keys in plan.unchanged:
            detail = f" (differs from the file: {', '.join(keys)})" if keys else ""
            self.stdout.write(f"  keep {persona.name}{detail}")


# --- Reading and validating the file ------------------------------------------------------------------------


def parse_team_file(path: Path) -> list[Entry]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f, parse_float=Decimal)
    except FileNotFoundError as exc:
        raise CommandError(f"Team file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CommandError(f"{path} is not valid TOML: {exc}") from exc

    unknown = sorted(set(data) - {"persona"})
    if unknown:
        raise CommandError(
            f"{path}: unknown top-level key(s) {', '.join(map(repr, unknown))}; expected [[persona]] tables."
        )
    raw_personas = data.get("persona", [])
    if not isinstance(raw_personas, list) or not all(isinstance(p, dict) for p in raw_personas):
        raise CommandError(f"{path}: 'persona' must be an array of tables ([[persona]]).")

    entries, seen = [], {}
    for index, raw in enumerate(raw_personas, start=1):
        label = raw["name"] if isinstance(raw.get("name"), str) and raw["name"].strip() else f"#{index}"
        try:
            entry = parse_entry(raw)
        except ValueError as exc:
            raise CommandError(f"{path}: persona {label}: {exc}") from exc
        key = entry.name.lower()
        if key in seen:
            raise CommandError(
                f"{path}: persona {entry.name}: key 'name': duplicate name (also persona {seen[key]!r}; "
                "names are unique ignoring case)."
            )
        seen[key] = entry.name
        entries.append(entry)
    return entries


def parse_entry(raw: dict) -> Entry:
    """Check one [[persona]] table's keys and TOML types; raises ValueError naming the key.

    Only the file's shape is checked here. The model's validation does the rest (`validate_personas`):
    the model's fields would quietly turn `1` into true or `"0.5"` into 0.5, so the types are checked first.
    """
    unknown = sorted(set(raw) - KNOWN_KEYS)
    if unknown:
        raise ValueError(
            f"unknown key(s) {', '.join(map(repr, unknown))}; "
            f"allowed keys are {', '.join(sorted(KNOWN_KEYS))}."
        )
    for key in REQUIRED_KEYS:
        if key not in raw:
            raise ValueError(f"key {key!r} is missing (required: {', '.join(REQUIRED_KEYS)}).")

    values = {}
    for key, value in raw.items():
        if key in STRING_KEYS:
            if not isinstance(value, str):
                raise ValueError(f"key {key!r} must be a string, not {value!r}.")
            value = value.strip()  # as the admin's form strips what it is given
        elif key in BOOL_KEYS:
            if not isinstance(value, bool):
                raise ValueError(f"key {key!r} must be true or false, not {value!r}.")
        elif key in NUMBER_KEYS:
            if not is_number(value):
                raise ValueError(f"key {key!r} must be a number, not {value!r}.")
        elif key == "sort_order" and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"key 'sort_order' must be a whole number, not {value!r}.")
        values[key] = value

    reports_to = values.pop("reports_to", None)
    return Entry(name=values["name"], values=values, reports_to=reports_to)


def is_number(value) -> bool:
    """A whole or decimal TOML number (floats are parsed as Decimal), but not a boolean, nan or inf."""
    if isinstance(value, Decimal):
        return value.is_finite()
    return isinstance(value, int) and not isinstance(value, bool)


def check_reports_to(path: Path, entries: list[Entry], existing: dict[str, Persona]):
    """Every lead must be a persona in the file or already in the database."""
    known = {e.name.lower() for e in entries} | set(existing)
    for entry in entries:
        if entry.reports_to and entry.reports_to.lower() not in known:
            raise CommandError(
                f"{path}: persona {entry.name}: key 'reports_to': no persona named {entry.reports_to!r} "
                "in the file or the database."
            )


def validate_personas(path: Path, entries: list[Entry], existing: dict[str, Persona]):
    """Run the model's validation on every persona as the file would leave it; keep the cleaned values.

    Existing personas are validated as copies with the file's values applied (whether or not --update will
    write them), new ones as unsaved instances; leads point at those instances, so a reporting loop
    within the file is found before anything is written."""
    candidates = {}
    for entry in entries:
        current = existing.get(entry.name.lower())
        persona = copy.copy(current) if current else Persona()
        for key, value in entry.values.items():
            setattr(persona, key, value)
        candidates[entry.name.lower()] = persona
    for entry in entries:
        if entry.reports_to is not None:
            lead = entry.reports_to.lower()
            persona = candidates[entry.name.lower()]
            persona.reports_to = (candidates.get(lead) or existing[lead]) if lead else None
    for index, entry in enumerate(entries, start=1):
        persona = candidates[entry.name.lower()]
        try:
            persona.full_clean()
        except ValidationError as exc:
            label = entry.name or f"#{index}"
            raise CommandError(f"{path}: persona {label}: {describe_errors(exc)}") from exc
        entry.values = {key: getattr(persona, key) for key in entry.values}


def describe_errors(exc: ValidationError) -> str:
    """The model's errors as `key 'temperature': Must be a number from 0 to 2.`, one key after another."""
    parts = []
    for key, messages in exc.message_dict.items():
        text = " ".join(messages)
        parts.append(text if key == NON_FIELD_ERRORS else f"key {key!r}: {text}")
    return "; ".join(parts)


# --- Planning and writing -----------------------------------------------------------------------------------


def differences(persona: Persona, entry: Entry) -> list[str]:
    """The keys of `entry` whose value differs from the row's."""
    keys = [key for key, value in entry.values.items() if getattr(persona, key) != value]
    if entry.reports_to is not None:
        current = persona.reports_to.name.lower() if persona.reports_to_id else ""
        if current != entry.reports_to.lower():
            keys.append("reports_to")
    return keys


def make_plan(entries: list[Entry], existing: dict[str, Persona], *, update: bool) -> Plan:
    plan = Plan()
    for entry in entries:
        persona = existing.get(entry.name.lower())
        if persona is None:
            plan.creates.append(entry)
            continue
        keys = differences(persona, entry)
        if update and keys:
            plan.updates.append((persona, entry, keys))
        else:
            plan.unchanged.append((persona, keys))
    return plan


def apply_plan(plan: Plan, existing: dict[str, Persona]):
    by_name = dict(existing)
    # Pass 1: create and update every row, leaving reports_to for when all rows exist.
    for entry in plan.creates:
        by_name[entry.name.lower()] = Persona.objects.create(**entry.values)
    for persona, entry, keys in plan.updates:
        for key in keys:
            if key != "reports_to":
                setattr(persona, key, entry.values[key])
        persona.save()
    # Pass 2: resolve reports_to by name.
    linked = []
    for entry in [*plan.creates, *(entry for _p, entry, keys in plan.updates if "reports_to" in keys)]:
        if entry.reports_to is None:
            continue
        persona = by_name[entry.name.lower()]
        persona.reports_to = by_name[entry.reports_to.lower()] if entry.reports_to else None
        linked.append(persona)
    Persona.objects.bulk_update(linked, ["reports_to"])

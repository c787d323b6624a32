"""Make sure an operator can log into the admin.

`make run` calls this. With DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD set, it creates that
superuser if missing (an existing user is left as it is). Without them, and with no superuser yet, it
prints how to create one.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create the admin user from DJANGO_SUPERUSER_* if set, or explain how to create one."

    def handle(self, *args, **options):
        User = get_user_model()
        username = settings.DJANGO_SUPERUSER_USERNAME
        if username:
            if User.objects.filter(username=username).exists():
                if options["verbosity"] > 1:
                    self.stdout.write(f"Admin user {username!r} already exists.")
                return
            if not settings.DJANGO_SUPERUSER_PASSWORD:
                raise CommandError("DJANGO_SUPERUSER_USERNAME is set but DJANGO_SUPERUSER_PASSWORD is empty.")
            User.objects.create_superuser(
                username=username,
                email=settings.DJANGO_SUPERUSER_EMAIL,
                password=settings.DJANGO_SUPERUSER_PASSWORD,
            )
            self.stdout.write(self.style.SUCCESS(f"Created admin user {username!r}; log in at /admin/."))
            return
        if not User.objects.filter(is_superuser=True).exists():
            self.stdout.write(
                "No admin user yet. Create one with:  .venv/bin/python manage.py createsuperuser\n"
                "or set DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD before `make run`."
            )

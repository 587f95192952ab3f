"""Create the first admin once, for the embedded run, and print how to sign in.

The generated password is kept in DATA_DIR/admin-credentials.txt (mode 600) so that every run can
print it again; an existing admin is never changed.
"""

import os
import secrets

from django.conf import settings
from django.core.management.base import BaseCommand

from accounts.models import Role, User

DEFAULT_EMAIL = "admin@elsehub.local"


class Command(BaseCommand):
    help = "Create the first ADMIN user if there is none, and print its credentials."

    def add_arguments(self, parser):
        parser.add_argument("--email", default=os.environ.get("ELSEHUB_ADMIN_EMAIL", DEFAULT_EMAIL))

    def handle(self, *args, email: str, **options):
        credentials = settings.DATA_DIR / "admin-credentials.txt"
        if not User.objects.alive().filter(role=Role.ADMIN).exists():
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser(email, password, name="Administrador")
            settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
            credentials.write_text(f"{email}\n{password}\n")
            credentials.chmod(0o600)
        if credentials.exists():
            saved_email, saved_password = credentials.read_text().split("\n")[:2]
            self.stdout.write(f"Admin login: {saved_email}  password: {saved_password}")
        else:
            self.stdout.write("An admin already exists; use its credentials (manage.py createsuperuser adds another).")

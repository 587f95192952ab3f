"""Benchmark of the contacts CSV import: 50,000 rows through ``contacts.importing`` on the configured database.

Run by hand, never by the test suite. Against PostgreSQL:

    createdb -h 127.0.0.1 -U postgres elsehub_bench
    DEBUG=true DATABASE_URL=postgres://postgres@127.0.0.1:5432/elsehub_bench .venv/bin/python manage.py migrate
    DEBUG=true DATABASE_URL=postgres://postgres@127.0.0.1:5432/elsehub_bench .venv/bin/python bench/contacts_import.py

The file is what a Brazilian spreadsheet exports (Windows-1252, ``;``, Portuguese headers, phones
typed in several formats) with about 2 % bad rows: invalid phones, missing names, invalid CPFs and
phones repeated in the file. Only the generated phones are deleted before and after each run, and
only on a database whose name contains "bench" unless ``--any-database`` is given.
"""

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "elsehub.settings.base")

import django

django.setup()

from django.core.exceptions import ValidationError  # noqa: E402
from django.core.files.base import ContentFile  # noqa: E402
from django.db import connection  # noqa: E402
from validate_docbr import CPF  # noqa: E402

from contacts import importing  # noqa: E402
from contacts.models import Contact  # noqa: E402
from contacts.normalization import normalize_phone  # noqa: E402

FIRST_NAMES = ["João", "Maria", "José", "Ana", "Antônio", "Luíza", "Márcio", "Cecília", "Sérgio", "Inês", "Otávio"]
LAST_NAMES = ["Silva", "Conceição", "Araújo", "Gonçalves", "Simões", "Pereira", "Lima", "Brandão", "Assunção"]
BAD_KINDS = ["invalid_phone", "missing_name", "invalid_cpf", "duplicate"]
AREA_CODES = [11, 14, 19, 21, 27, 31, 41, 48, 51, 61, 62, 71, 81, 85, 91, 92]


def _phone(rng: random.Random, index: int) -> str:
    """A valid Brazilian mobile, unique per index, typed in one of the ways people type it."""
    digits = f"9{index:08d}"
    area = AREA_CODES[index % len(AREA_CODES)]
    return rng.choice(
        [f"+55{area}{digits}", f"({area}) {digits[:5]}-{digits[5:]}", f"{area}{digits}", f"+55 {area} {digits}"]
    )


def build_csv(rows: int, bad_ratio: float, seed: int) -> tuple[bytes, list[str]]:
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    cpf = CPF()
    lines = ["Nome;Telefone;CPF;Adicional 1;Adicional 2"]
    typed_phones: list[str] = []
    for index in range(rows):
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        phone = _phone(rng, index)
        document = cpf.generate(mask=index % 2 == 0) if index % 3 else ""
        extra = f"Lote {index // 1000}"
        if rng.random() < bad_ratio:
            kind = rng.choice(BAD_KINDS)
            if kind == "invalid_phone":
                phone = f"12{index % 1000}"
            elif kind == "missing_name":
                name = ""
            elif kind == "invalid_cpf":
                document = "123.456.789-00"
            elif typed_phones:
                phone = typed_phones[-1]
        typed_phones.append(phone)
        lines.append(f"{name};{phone};{document};{extra};")
    return ("\r\n".join(lines) + "\r\n").encode("cp1252"), typed_phones


def _clear(phones: list[str]) -> None:
    normalised = set()
    for phone in phones:
        try:
            normalised.add(normalize_phone(phone))
        except ValidationError:
            continue  # the invalid ones were never stored
    ordered = sorted(normalised)
    for start in range(0, len(ordered), 5000):
        Contact.objects.filter(phone__in=ordered[start : start + 5000]).delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--bad-ratio", type=float, default=0.02)
    parser.add_argument("--repeat", type=int, default=1, help="runs; the median is printed last")
    parser.add_argument("--seed", type=int, default=20250115)
    parser.add_argument("--keep", action="store_true", help="leave the imported contacts in place")
    parser.add_argument("--any-database", action="store_true", help="allow a database not named *bench*")
    args = parser.parse_args()

    database = str(connection.settings_dict["NAME"])
    if "bench" not in database and not args.any_database:
        sys.exit(f"Refusing to write to {database!r}: use a database named *bench* or pass --any-database.")

    content, phones = build_csv(args.rows, args.bad_ratio, args.seed)
    print(f"database: {connection.vendor} {database}; file: {args.rows} rows, {len(content) / 1_048_576:.2f} MB")
    timings = []
    for run in range(1, args.repeat + 1):
        _clear(phones)
        started = time.perf_counter()
        report = importing.import_contacts_csv(file=ContentFile(content, name="contatos.csv"))
        elapsed = time.perf_counter() - started
        timings.append(elapsed)
        print(f"run {run}: {elapsed:.2f} s - total {report.total}, imported {report.imported}, failed {report.failed}")
        if not args.keep:
            _clear(phones)
    print(f"median: {statistics.median(timings):.2f} s")


if __name__ == "__main__":
    main()

"""CSV import of contacts (contract section 6, ``POST /api/contacts/import/csv``; also the admin's "Import CSV").

What spreadsheets really send: UTF-8 with or without a BOM, or Windows-1252 from a Brazilian
Excel; ``,`` or ``;`` between cells; headers such as "Telefone" or "NOME". Every row is checked in
Python first; then the phones already stored are fetched in chunks, and the good rows go in with
``bulk_create(ignore_conflicts=True)`` batch by batch. Whatever a batch did not actually insert
lost a race with a concurrent writer and is reported as "already exists": nothing is lost and
nothing is counted twice.
"""

import csv
import io
import logging
import re
import time
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from contacts.models import ADDITIONAL_MAX_LENGTH, NAME_MAX_LENGTH, Contact
from contacts.normalization import INVALID_CPF, INVALID_PHONE, normalize_cpf, normalize_phone, search_key
from contacts.services import phone_taken_message
from elsehub.api.errors import ApplicationError

logger = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
# Windows browsers send application/vnd.ms-excel for a .csv when Excel is installed.
CSV_CONTENT_TYPES = frozenset({"text/csv", "application/vnd.ms-excel"})
BATCH_SIZE = 2000
LOOKUP_CHUNK = 2000
_SNIFF_SAMPLE_CHARS = 8 * 1024

COLUMN_ALIASES = {
    "name": ("name", "nome", "nomecompleto", "fullname"),
    "phone": ("phone", "telefone", "tel", "fone", "celular", "whatsapp", "mobile"),
    "cpf": ("cpf",),
    "additional1": ("additional1", "adicional1", "informacao1", "informacaoadicional1", "info1", "extra1"),
    "additional2": ("additional2", "adicional2", "informacao2", "informacaoadicional2", "info2", "extra2"),
}
REQUIRED_COLUMNS = ("name", "phone")
_COLUMN_BY_ALIAS = {alias: column for column, aliases in COLUMN_ALIASES.items() for alias in aliases}
_NOT_ALNUM = re.compile(r"[^a-z0-9]")


class FileTooLarge(ApplicationError):
    status_code = 413

    def __init__(self):
        limit = MAX_UPLOAD_BYTES // (1024 * 1024)
        super().__init__(_("The file exceeds the %(limit)s MB limit") % {"limit": limit}, code="file_too_large")


class InvalidFile(ApplicationError):
    status_code = 400

    def __init__(self, message):
        super().__init__(message, code="invalid_file")


@dataclass(frozen=True)
class RowError:
    row: int  # as a spreadsheet counts: the header is row 1, the first contact row 2
    error: str


@dataclass
class ImportReport:
    total: int = 0
    imported: int = 0
    errors: list[RowError] = field(default_factory=list)
    # The file was read and every row accounted for; a refused file raises instead.
    success: bool = True

    @property
    def failed(self) -> int:
        return len(self.errors)


def missing_file_error() -> InvalidFile:
    return InvalidFile(_('Send a CSV file in the "file" field'))


def check_upload(*, file: File) -> None:
    """Refuse a file by its declared size, name and type, before anything reads it."""
    if file.size is not None and file.size > MAX_UPLOAD_BYTES:
        raise FileTooLarge()
    name = (file.name or "").lower()
    content_type = (getattr(file, "content_type", None) or "").split(";")[0].strip().lower()
    if not name.endswith(".csv") and content_type not in CSV_CONTENT_TYPES:
        raise InvalidFile(_("The file must be a CSV (.csv or text/csv)"))
    if file.size == 0:
        raise InvalidFile(_("The file is empty"))


def _read(file: File) -> bytes:
    if hasattr(file, "seek"):
        file.seek(0)
    raw = file.read(MAX_UPLOAD_BYTES + 1)
    if len(raw) > MAX_UPLOAD_BYTES:  # a size that lied
        raise FileTooLarge()
    return raw


def _decode(raw: bytes) -> str:
    """UTF-8 (a BOM is dropped) or, failing that, Windows-1252: what Brazilian Excel exports."""
    if b"\x00" in raw:
        raise InvalidFile(_("The file could not be read as text (use UTF-8 or Windows-1252)"))
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        if not text.strip():
            raise InvalidFile(_("The file is empty"))
        return text
    raise InvalidFile(_("The file could not be read as text (use UTF-8 or Windows-1252)"))


def _detect_delimiter(text: str) -> str:
    sample = text[:_SNIFF_SAMPLE_CHARS]
    if len(text) > len(sample) and "\n" in sample:
        sample = sample[: sample.rindex("\n")]  # a cut line would mislead the sniffer
    header = sample.splitlines()[0] if sample else ""
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=",;").delimiter
    except csv.Error:
        delimiter = ""
    # The sniffer can be fooled by commas inside names; the header line settles it.
    if delimiter and delimiter in header:
        return delimiter
    return ";" if header.count(";") > header.count(",") else ","


def _header_key(cell: str) -> str:
    return _NOT_ALNUM.sub("", search_key(cell))


def _map_columns(header: list[str]) -> dict[str, int]:
    positions: dict[str, int] = {}
    for index, cell in enumerate(header):
        column = _COLUMN_BY_ALIAS.get(_header_key(cell))
        if column is not None and column not in positions:
            positions[column] = index
    missing = [column for column in REQUIRED_COLUMNS if column not in positions]
    if missing:
        message = ngettext(
            "Missing required column: %(columns)s", "Missing required columns: %(columns)s", len(missing)
        ) % {"columns": ", ".join(missing)}
        raise InvalidFile(message)
    return positions


class _RowReader:
    """Turns one CSV record into an unsaved Contact, or into the reason it cannot be one."""

    def __init__(self, header: list[str], positions: dict[str, int]):
        self.positions = positions
        self.labels = {column: (header[index].strip() or column) for column, index in positions.items()}
        self.messages = {
            "name_required": _("Name is required"),
            "phone_required": _("Phone is required"),
            "invalid_phone": str(INVALID_PHONE),
            "invalid_cpf": str(INVALID_CPF),
        }

    def cell(self, record: list[str], column: str) -> str:
        index = self.positions.get(column)
        return record[index].strip() if index is not None and index < len(record) else ""

    def too_long(self, column: str, limit: int) -> str:
        return _("%(field)s must be at most %(max)s characters") % {"field": self.labels[column], "max": limit}

    def read(self, record: list[str]) -> Contact | str:
        name = self.cell(record, "name")
        if not name:
            return self.messages["name_required"]
        if len(name) > NAME_MAX_LENGTH:
            return self.too_long("name", NAME_MAX_LENGTH)
        raw_phone = self.cell(record, "phone")
        if not raw_phone:
            return self.messages["phone_required"]
        try:
            phone = normalize_phone(raw_phone)
        except ValidationError:
            return self.messages["invalid_phone"]
        try:
            cpf = normalize_cpf(self.cell(record, "cpf"))
        except ValidationError:
            return self.messages["invalid_cpf"]
        extras = {}
        for column in ("additional1", "additional2"):
            value = self.cell(record, column)
            if len(value) > ADDITIONAL_MAX_LENGTH:
                return self.too_long(column, ADDITIONAL_MAX_LENGTH)
            extras[column] = value or None
        return Contact(name=name, name_search=search_key(name), phone=phone, cpf=cpf, **extras)


def _existing_phones(phones: list[str]) -> set[str]:
    existing: set[str] = set()
    for start in range(0, len(phones), LOOKUP_CHUNK):
        chunk = phones[start : start + LOOKUP_CHUNK]
        existing.update(Contact.objects.filter(phone__in=chunk).values_list("phone", flat=True))
    return existing


def _insert(candidates: list[tuple[int, Contact]], report: ImportReport, already_exists: str) -> None:
    for start in range(0, len(candidates), BATCH_SIZE):
        batch = candidates[start : start + BATCH_SIZE]
        ids = [contact.pk for _row, contact in batch]
        with transaction.atomic():
            Contact.objects.bulk_create([contact for _row, contact in batch], ignore_conflicts=True)
            # ignore_conflicts reports nothing back: the ids we chose tell which rows went in.
            # Counting is enough in the usual case; the ids are fetched only when a row lost a race.
            mine = Contact.objects.filter(pk__in=ids)
            inserted = None if mine.count() == len(batch) else set(mine.values_list("pk", flat=True))
        for row, contact in batch:
            if inserted is None or contact.pk in inserted:
                report.imported += 1
            else:
                report.errors.append(RowError(row=row, error=already_exists))


def import_contacts_csv(*, file: File) -> ImportReport:
    """Import every good row of a CSV file; report each bad one with its spreadsheet row number.

    Deliberately not one transaction: each batch commits on its own, so good rows are kept even
    when others fail. Running the same file twice imports nothing the second time (every phone
    then already exists).

    Raises ``FileTooLarge`` (413) or ``InvalidFile`` (400) for a file that cannot be imported at all.
    """
    started = time.monotonic()
    check_upload(file=file)
    text = _decode(_read(file))
    try:
        records = csv.reader(io.StringIO(text, newline=""), delimiter=_detect_delimiter(text))
        header = next(records, [])
        positions = _map_columns(header)
        reader = _RowReader(header, positions)
        report = ImportReport()
        first_row_of: dict[str, int] = {}
        candidates: list[tuple[int, Contact]] = []
        # Numbered as a spreadsheet numbers them: a quoted cell spanning lines is still one row.
        for row, record in enumerate(records, start=2):
            if not any(cell.strip() for cell in record):
                continue  # blank lines and ";;;;" rows that spreadsheets leave at the end
            report.total += 1
            result = reader.read(record)
            if isinstance(result, str):
                report.errors.append(RowError(row=row, error=result))
                continue
            first_row = first_row_of.setdefault(result.phone, row)
            if first_row != row:
                message = _("Duplicate phone in the file (same as row %(row)s)") % {"row": first_row}
                report.errors.append(RowError(row=row, error=message))
                continue
            candidates.append((row, result))
    except csv.Error as exc:
        raise InvalidFile(_("The CSV could not be read: check its format")) from exc

    already_exists = phone_taken_message()
    existing = _existing_phones([contact.phone for _row, contact in candidates])
    fresh = []
    for row, contact in candidates:
        if contact.phone in existing:
            report.errors.append(RowError(row=row, error=already_exists))
        else:
            fresh.append((row, contact))
    _insert(fresh, report, already_exists)
    report.errors.sort(key=lambda error: error.row)
    logger.info(
        "contacts.import.finished",
        extra={
            "total": report.total,
            "imported": report.imported,
            "failed": report.failed,
            "seconds": round(time.monotonic() - started, 3),
        },
    )
    return report

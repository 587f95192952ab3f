"""The import service itself: batching, races with concurrent writers, and files that are not uploads."""

import threading

import pytest
from django.core.files.base import ContentFile
from django.db import connection

from contacts import importing
from contacts.models import Contact
from contacts.tests.factories import ContactFactory

PHONE_TAKEN = "Telefone já existe"


def _csv(phones: list[str], *, prefix: str = "Contato") -> ContentFile:
    lines = ["name,phone", *(f"{prefix} {index},{phone}" for index, phone in enumerate(phones))]
    return ContentFile("\n".join(lines).encode(), name="contatos.csv")


def _phones(count: int, start: int = 0) -> list[str]:
    return [f"+55149{start + index:08d}" for index in range(count)]


@pytest.mark.django_db
def test_import_contacts_csv_small_batches_and_lookup_chunks(monkeypatch):
    monkeypatch.setattr(importing, "BATCH_SIZE", 3)
    monkeypatch.setattr(importing, "LOOKUP_CHUNK", 2)
    phones = _phones(10)
    for phone in phones[4:7]:
        ContactFactory(phone=phone)

    report = importing.import_contacts_csv(file=_csv(phones))

    assert (report.total, report.imported, report.failed) == (10, 7, 3)
    assert [(error.row, error.error) for error in report.errors] == [
        (6, PHONE_TAKEN),
        (7, PHONE_TAKEN),
        (8, PHONE_TAKEN),
    ]
    assert Contact.objects.count() == 10


@pytest.mark.django_db
def test_import_contacts_csv_insert_lost_to_a_concurrent_writer_is_already_exists(monkeypatch):
    """A phone stored between the lookup and the insert is reported, not counted as imported."""
    phones = _phones(5)
    lookup = importing._existing_phones

    def lookup_then_someone_else_inserts(wanted):
        found = lookup(wanted)
        ContactFactory(name="Chegou Antes", phone=phones[2])
        return found

    monkeypatch.setattr(importing, "_existing_phones", lookup_then_someone_else_inserts)

    report = importing.import_contacts_csv(file=_csv(phones))

    assert (report.total, report.imported) == (5, 4)
    assert [(error.row, error.error) for error in report.errors] == [(4, PHONE_TAKEN)]
    assert Contact.objects.get(phone=phones[2]).name == "Chegou Antes"
    assert Contact.objects.count() == 5


@pytest.mark.django_db(transaction=True)
def test_import_contacts_csv_concurrent_imports_count_each_phone_once(monkeypatch):
    """Two imports of overlapping files at once: every phone is stored once and imported by exactly one."""
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL; the in-memory SQLite test database locks its tables")
    monkeypatch.setattr(importing, "BATCH_SIZE", 50)
    phones = _phones(600)
    files = [_csv(phones[:400], prefix="A"), _csv(phones[200:], prefix="B")]
    reports: list = [None, None]
    failures: list[BaseException] = []
    start = threading.Barrier(2)

    def run(index: int) -> None:
        try:
            start.wait()
            reports[index] = importing.import_contacts_csv(file=files[index])
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not failures
    assert Contact.objects.count() == 600
    assert reports[0].imported + reports[1].imported == 600
    for report in reports:
        assert report.total == 400
        assert {error.error for error in report.errors} <= {PHONE_TAKEN}
        assert report.imported + report.failed == 400


@pytest.mark.django_db
def test_import_contacts_csv_reads_a_plain_file_object(tmp_path):
    path = tmp_path / "lista.csv"
    path.write_bytes("nome;telefone\nJoão;14999999999\n".encode("cp1252"))

    with path.open("rb") as handle:
        from django.core.files import File

        report = importing.import_contacts_csv(file=File(handle, name=path.name))

    assert report.imported == 1
    assert Contact.objects.get().name == "João"


@pytest.mark.django_db
def test_import_contacts_csv_field_beyond_the_csv_limit_is_400():
    content = ContentFile(b"name,phone\n" + b"x" * 200_000 + b",14999999999\n", name="big-cell.csv")

    with pytest.raises(importing.InvalidFile) as caught:
        importing.import_contacts_csv(file=content)

    assert str(caught.value.message) == "Não foi possível ler o CSV: verifique o formato"


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [
        ("name,phone\nMaria,1\n", ","),
        ("name;phone\nMaria;1\n", ";"),
        ("nome;telefone\nSilva, Maria;1\nSouza, Ana;2\n", ";"),
        ('name,phone\n"Silva; Maria",1\n', ","),
        ("name;phone", ";"),
        ("name", ","),
        ("", ","),
    ],
)
def test_detect_delimiter(text, delimiter):
    assert importing._detect_delimiter(text) == delimiter


def test_detect_delimiter_ignores_a_line_cut_by_the_sample(monkeypatch):
    monkeypatch.setattr(importing, "_SNIFF_SAMPLE_CHARS", 40)
    text = "nome;telefone\nMaria;1\nAna;2\n" + "Jo, Silva, Souza, Lima, Costa;3\n" * 5

    assert importing._detect_delimiter(text) == ";"

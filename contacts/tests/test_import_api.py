"""POST /api/contacts/import/csv (contract section 6) with the files spreadsheets really produce."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from contacts.models import Contact
from contacts.tests.factories import ContactFactory, valid_cpf

pytestmark = pytest.mark.django_db

IMPORT = "/api/contacts/import/csv"
MB = 1024 * 1024
PHONE_TAKEN = "Telefone já existe"
TOO_LARGE = {"statusCode": 413, "message": "O arquivo excede o limite de 5 MB", "error": "Payload Too Large"}
NOT_CSV = {"statusCode": 400, "message": "O arquivo deve ser um CSV (.csv ou text/csv)", "error": "Bad Request"}
EMPTY = {"statusCode": 400, "message": "O arquivo está vazio", "error": "Bad Request"}
NO_FILE = {"statusCode": 400, "message": 'Envie um arquivo CSV no campo "file"', "error": "Bad Request"}
NOT_TEXT = {
    "statusCode": 400,
    "message": "Não foi possível ler o arquivo como texto (use UTF-8 ou Windows-1252)",
    "error": "Bad Request",
}


def _upload(client, content: bytes, name: str = "contatos.csv", content_type: str = "text/csv", **extra):
    file = SimpleUploadedFile(name, content, content_type=content_type)
    return client.post(IMPORT, {"file": file}, format="multipart", **extra)


def _report(response) -> dict:
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"success", "total", "imported", "failed", "errors"}
    assert body["success"] is True
    assert body["failed"] == len(body["errors"])
    assert body["total"] == body["imported"] + body["failed"]
    return body


def _stored() -> dict[str, tuple]:
    return {
        contact.phone: (contact.name, contact.cpf, contact.additional1, contact.additional2)
        for contact in Contact.objects.all()
    }


# ------------------------------------------------------------------------------
# Good files
# ------------------------------------------------------------------------------


def test_import_csv_contract_example_utf8_with_bom_and_commas(operator_client):
    cpf_maria, cpf_joao = valid_cpf(), valid_cpf(mask=True)
    content = (
        "name,phone,cpf,additional1,additional2\r\n"
        f"Maria Santos,+5514999999999,{cpf_maria},Info1,Info2\r\n"
        f'João Silva,+5514999999998,"{cpf_joao}",Info3,Info4\r\n'
    ).encode("utf-8-sig")
    assert content.startswith(b"\xef\xbb\xbf")

    response = _upload(operator_client, content)

    assert response.json() == {"success": True, "total": 2, "imported": 2, "failed": 0, "errors": []}
    assert _stored() == {
        "+5514999999999": ("Maria Santos", cpf_maria, "Info1", "Info2"),
        "+5514999999998": ("João Silva", cpf_joao.replace(".", "").replace("-", ""), "Info3", "Info4"),
    }
    assert Contact.objects.get(phone="+5514999999998").name_search == "joao silva"


def test_import_csv_windows_1252_with_semicolons_and_accents(operator_client):
    content = (
        "Nome;Telefone;CPF;Adicional 1\r\n"
        "João Conceição;(14) 99999-9999;;Ação\r\n"
        "Ângela Müller;14 98888-7777;;Observação: ç, ã, é\r\n"
    ).encode("cp1252")
    with pytest.raises(UnicodeDecodeError):
        content.decode("utf-8")

    body = _report(_upload(operator_client, content))

    assert (body["total"], body["imported"]) == (2, 2)
    assert _stored() == {
        "+5514999999999": ("João Conceição", "", "Ação", None),
        "+5514988887777": ("Ângela Müller", "", "Observação: ç, ã, é", None),
    }


def test_import_csv_utf8_without_bom_and_semicolons(operator_client):
    content = "nome;telefone\nJosé Ávila;+55 14 99999-9999\n".encode()

    body = _report(_upload(operator_client, content))

    assert body["imported"] == 1
    assert _stored() == {"+5514999999999": ("José Ávila", "", None, None)}


@pytest.mark.parametrize(
    "header",
    [
        "NOME;TELEFONE;CPF;ADICIONAL1;ADICIONAL2",
        "Nome;Telefone;C.P.F.;Adicional 1;Adicional 2",
        "nome;celular;cpf;informação adicional 1;Informação Adicional 2",
        "Nome Completo;WhatsApp;Cpf;additional_1;additional_2",
        "  name ; Phone ;CPF;Additional1;ADDITIONAL2",
        "Nóme;Telefóne;CPF;Informação 1;Informação 2",
    ],
)
def test_import_csv_header_aliases_ignore_case_accents_and_spacing(operator_client, header):
    cpf = valid_cpf()
    content = f"{header}\nMaria;(14) 99999-9999;{cpf};um;dois\n".encode()

    _report(_upload(operator_client, content))

    assert _stored() == {"+5514999999999": ("Maria", cpf, "um", "dois")}


def test_import_csv_columns_in_any_order_extra_ones_ignored(operator_client):
    content = b"Email,Telefone,Cidade,Nome\nm@example.com,14999999999,Bauru,Maria\n"

    _report(_upload(operator_client, content))

    assert _stored() == {"+5514999999999": ("Maria", "", None, None)}


def test_import_csv_quoted_cells_keep_their_commas_and_newlines(operator_client):
    content = b'name,phone,additional1\n"Silva, Maria",14999999999,"linha 1\nlinha 2"\nSem Telefone,,\n'

    body = _report(_upload(operator_client, content))

    # The quoted cell spans two lines but is one spreadsheet row: the next row is 3.
    assert body["errors"] == [{"row": 3, "error": "Telefone é obrigatório"}]
    assert _stored() == {"+5514999999999": ("Silva, Maria", "", "linha 1\nlinha 2", None)}


def test_import_csv_semicolon_file_with_commas_in_names(operator_client):
    content = "nome;telefone\nSilva, Maria;14999999999\nSouza, João;14999999998\nLima, Ana;14999999997\n".encode()

    body = _report(_upload(operator_client, content))

    assert body["imported"] == 3
    assert Contact.objects.get(phone="+5514999999999").name == "Silva, Maria"


def test_import_csv_header_only_imports_nothing(operator_client):
    assert _upload(operator_client, b"name,phone\r\n").json() == {
        "success": True,
        "total": 0,
        "imported": 0,
        "failed": 0,
        "errors": [],
    }


def test_import_csv_blank_rows_are_skipped_but_keep_their_numbers(operator_client):
    content = "name;phone;cpf\n\n;;\nMaria;14999999999;\n  ;  ;  \nJoão;123;\n;;\n".encode()

    body = _report(_upload(operator_client, content))

    assert (body["total"], body["imported"]) == (2, 1)
    assert body["errors"] == [{"row": 6, "error": "Telefone inválido"}]


@pytest.mark.parametrize("client_name", ["admin_client", "supervisor_client", "operator_client"])
def test_import_csv_allowed_for_every_role(request, client_name):
    body = _report(_upload(request.getfixturevalue(client_name), b"name,phone\nMaria,14999999999\n"))

    assert body["imported"] == 1


def test_import_csv_refuses_anonymous(api_client):
    response = _upload(api_client, b"name,phone\nMaria,14999999999\n")

    assert response.status_code == 401
    assert not Contact.objects.exists()


# ------------------------------------------------------------------------------
# Bad rows
# ------------------------------------------------------------------------------


def test_import_csv_reports_every_kind_of_bad_row_with_spreadsheet_numbers(operator_client):
    ContactFactory(name="Já Cadastrada", phone="+5514988887777")
    good_cpf = valid_cpf()
    rows = [
        "name,phone,cpf,additional1",
        "Ana,+5514999990001,,",  # 2: imported
        ",+5514999990002,,",  # 3: no name
        "Bruno,123,,",  # 4: invalid phone
        "Carla,,,",  # 5: no phone
        "Dora,+5514999990005,12345678900,",  # 6: invalid CPF
        "Ana de Novo,(14) 99999-0001,,",  # 7: same phone as row 2
        "Existente,14 98888-7777,,",  # 8: already stored
        "",  # 9: blank, skipped
        f"Eva,+5514999990009,{good_cpf},ok",  # 10: imported
        f"{'N' * 121},+5514999990011,,",  # 11: name too long
        f"Fábio,+5514999990012,,{'x' * 256}",  # 12: additional1 too long
    ]

    body = _report(_upload(operator_client, "\n".join(rows).encode()))

    assert body == {
        "success": True,
        "total": 10,
        "imported": 2,
        "failed": 8,
        "errors": [
            {"row": 3, "error": "Nome é obrigatório"},
            {"row": 4, "error": "Telefone inválido"},
            {"row": 5, "error": "Telefone é obrigatório"},
            {"row": 6, "error": "CPF inválido"},
            {"row": 7, "error": "Telefone duplicado no arquivo (igual à linha 2)"},
            {"row": 8, "error": PHONE_TAKEN},
            {"row": 11, "error": "name deve ter no máximo 120 caracteres"},
            {"row": 12, "error": "additional1 deve ter no máximo 255 caracteres"},
        ],
    }
    assert _stored() == {
        "+5514988887777": ("Já Cadastrada", "", None, None),
        "+5514999990001": ("Ana", "", None, None),
        "+5514999990009": ("Eva", good_cpf, "ok", None),
    }


def test_import_csv_duplicates_within_the_file(operator_client):
    content = (
        b"nome;telefone\n"
        b"Primeira;+5514999999999\n"
        b"Segunda;(14) 99999-9999\n"
        b"Outra;14999999998\n"
        b"Terceira;5514999999999\n"
        b"Quarta;14 99999-9998\n"
    )

    body = _report(_upload(operator_client, content))

    assert body["imported"] == 2
    assert body["errors"] == [
        {"row": 3, "error": "Telefone duplicado no arquivo (igual à linha 2)"},
        {"row": 5, "error": "Telefone duplicado no arquivo (igual à linha 2)"},
        {"row": 6, "error": "Telefone duplicado no arquivo (igual à linha 4)"},
    ]
    assert Contact.objects.get(phone="+5514999999999").name == "Primeira"


def test_import_csv_duplicate_of_a_failed_row_is_imported(operator_client):
    content = b"name,phone,cpf\nRuim,14999999999,12345678900\nBoa,14999999999,\n"

    body = _report(_upload(operator_client, content))

    assert body["errors"] == [{"row": 2, "error": "CPF inválido"}]
    assert _stored() == {"+5514999999999": ("Boa", "", None, None)}


def test_import_csv_existing_phones_are_reported_and_left_untouched(operator_client):
    ContactFactory(name="Original", phone="+5514999999999", additional1="manter")
    content = b"name,phone,additional1\nSubstituta,(14) 99999-9999,trocar\nNova,14999999998,\n"

    body = _report(_upload(operator_client, content))

    assert body["errors"] == [{"row": 2, "error": PHONE_TAKEN}]
    assert _stored()["+5514999999999"] == ("Original", "", "manter", None)
    assert "+5514999999998" in _stored()


def test_import_csv_same_file_twice_imports_nothing_the_second_time(operator_client):
    content = "name,phone\nMaria,14999999999\nJoão,14999999998\n".encode()
    assert _report(_upload(operator_client, content))["imported"] == 2

    body = _report(_upload(operator_client, content))

    assert body["imported"] == 0
    assert body["errors"] == [{"row": 2, "error": PHONE_TAKEN}, {"row": 3, "error": PHONE_TAKEN}]
    assert Contact.objects.count() == 2


def test_import_csv_row_errors_follow_accept_language(operator_client):
    content = b"name,phone\n,14999999999\nBruno,123\n"

    body = _report(_upload(operator_client, content, HTTP_ACCEPT_LANGUAGE="en"))

    assert body["errors"] == [{"row": 2, "error": "Name is required"}, {"row": 3, "error": "Invalid phone number"}]


# ------------------------------------------------------------------------------
# Refused files
# ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("nome;cpf", "Coluna obrigatória ausente: phone"),
        ("telefone,cpf", "Coluna obrigatória ausente: name"),
        ("email,cpf", "Colunas obrigatórias ausentes: name, phone"),
        ("Maria,14999999999", "Colunas obrigatórias ausentes: name, phone"),
    ],
)
def test_import_csv_missing_required_column_is_400(operator_client, header, message):
    response = _upload(operator_client, f"{header}\nMaria,14999999999\n".encode())

    assert response.status_code == 400
    assert response.json() == {"statusCode": 400, "message": message, "error": "Bad Request"}
    assert not Contact.objects.exists()


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("contatos.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ("foto.png", "image/png"),
        ("contatos.txt", "text/plain"),
        ("contatos", "application/octet-stream"),
    ],
)
def test_import_csv_non_csv_file_is_400(operator_client, name, content_type):
    response = _upload(operator_client, b"name,phone\nMaria,14999999999\n", name=name, content_type=content_type)

    assert response.status_code == 400
    assert response.json() == NOT_CSV
    assert not Contact.objects.exists()


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("contatos.CSV", "application/octet-stream"),
        ("lista", "text/csv"),
        ("lista.txt", "text/csv; charset=utf-8"),
        ("contatos.csv", "application/vnd.ms-excel"),
        ("export", "application/vnd.ms-excel"),
    ],
)
def test_import_csv_accepts_a_csv_by_name_or_type(operator_client, name, content_type):
    response = _upload(operator_client, b"name,phone\nMaria,14999999999\n", name=name, content_type=content_type)

    assert _report(response)["imported"] == 1


@pytest.mark.parametrize(
    "content",
    [b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00", "name,phone\n".encode("utf-16")],
    ids=["xlsx-bytes", "utf-16"],
)
def test_import_csv_binary_content_is_400(operator_client, content):
    response = _upload(operator_client, content)

    assert response.status_code == 400
    assert response.json() == NOT_TEXT


@pytest.mark.parametrize("content", [b"", b"\r\n\r\n  \n", b"\xef\xbb\xbf"], ids=["zero-bytes", "blank", "bom-only"])
def test_import_csv_empty_file_is_400(operator_client, content):
    response = _upload(operator_client, content)

    assert response.status_code == 400
    assert response.json() == EMPTY


def test_import_csv_without_a_file_is_400(operator_client):
    response = operator_client.post(IMPORT, {"other": "value"}, format="multipart")

    assert response.status_code == 400
    assert response.json() == NO_FILE


def test_import_csv_json_body_is_400(operator_client):
    response = operator_client.post(IMPORT, {"file": "name,phone"}, format="json")

    assert response.status_code == 400
    assert response.json() == NO_FILE


def test_import_csv_larger_than_5_mb_is_413(operator_client):
    content = b"name,phone\nMaria,14999999999\n" + b"\n" * (6 * MB)

    response = _upload(operator_client, content)

    assert response.status_code == 413
    assert response.json() == TOO_LARGE
    assert not Contact.objects.exists()


def test_import_csv_one_byte_over_5_mb_is_413(operator_client):
    # Within the multipart allowance, so the declared length passes: the file's own size refuses it.
    head = b"name,phone\nMaria,14999999999\n"
    response = _upload(operator_client, head + b"\n" * (5 * MB + 1 - len(head)))

    assert response.status_code == 413
    assert response.json() == TOO_LARGE
    assert not Contact.objects.exists()


def test_import_csv_exactly_5_mb_is_accepted(operator_client):
    head = b"name,phone\nMaria,14999999999\n"

    body = _report(_upload(operator_client, head + b"\n" * (5 * MB - len(head))))

    assert (body["total"], body["imported"]) == (1, 1)


def test_import_csv_oversized_body_is_refused_before_it_is_parsed(operator_client):
    # Not even valid multipart: had the parser read it, this would be a 400, not a 413.
    response = operator_client.generic(
        "POST", IMPORT, b"x" * (6 * MB), content_type="multipart/form-data; boundary=never-reached"
    )

    assert response.status_code == 413
    assert response.json() == TOO_LARGE

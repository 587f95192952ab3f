import factory
from validate_docbr import CPF

from contacts.models import Contact
from contacts.normalization import search_key


def valid_cpf(mask: bool = False) -> str:
    return CPF().generate(mask=mask)


class ContactFactory(factory.django.DjangoModelFactory):
    """Rows as the services would store them: E.164 phone, CPF digits, the name's search key."""

    class Meta:
        model = Contact

    name = factory.Faker("name", locale="pt_BR")
    phone = factory.Sequence(lambda n: f"+55149{n:08d}")
    cpf = ""
    additional1 = None
    additional2 = None
    name_search = factory.LazyAttribute(lambda contact: search_key(contact.name))

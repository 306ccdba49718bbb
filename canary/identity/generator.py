"""The canary identity generator: fake French patients, every field consistent.

    generator = IdentityGenerator(contacts, seed=42, catchment=("35", "22"))
    identity = generator.generate()

Same seed + same contacts + same reservations -> same identities. Every
watched value (email, phones, access code, DNS label, portal login, NIR) is
unique across the run and, through ``reserved``, across the registry.
How each field is drawn, and why, is in docs/identities.md.
"""

from __future__ import annotations

import random
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date

from canary.identity import accounts

from canary.identity import medical

from canary.identity import refdata
from canary.identity.accounts import PasswordHints, Person
from canary.identity.ages import AgeProfile
from canary.contacts import ContactPoints, Mailbox
from canary.errors import ConfigError, PoolExhausted
from canary.model import Birthplace, Identity, Sex, Token, TokenKind
from canary.identity.mailboxes import MailboxAllocator, holder_birth
from canary.identity.names import civility, draw_names, draw_sex, first_name_table, name_parts, \
    split_double_name
from canary.identity.nir import THREE_DIGITS, TWO_DIGITS, nir_key
from canary.identity.phonepool import PhoneAllocator
from canary.identity.places import PlaceDrawer
from canary.identity.sampling import SecretStream, by_age_steps, pick, randint

# Patients whose only number is a home line, by age (the others give a mobile).
_HOME_LINE_ONLY = ((44, 0.01), (64, 0.04), (79, 0.12), (200, 0.25))
# Patients who also give a home line, by age: older people keep landlines.
_SECOND_LINE = ((29, 0.08), (44, 0.18), (64, 0.30), (79, 0.45), (200, 0.50))
# Children's email and portal account are a parent's (mostly the mother's).
_CHILD_AGE_LIMIT = 15
_MOTHER_HOLDS_ACCOUNT = 0.7
# A married woman's email keeps her birth name this often (made before marriage).
_EMAIL_WITH_BIRTH_NAME = 0.25
# NIR order numbers count the registrations of one commune and month: a
# village rarely goes past a dozen, a big city reaches hundreds.
_ORDER_PER_INHABITANT = 0.004
_ORDER_MIN_TOP = 12

_MAX_ATTEMPTS = 200

# Enum members read through their class cost a metaclass lookup: read them once.
_MALE = Sex.MALE
_URL_CODE, _DNS_LABEL, _NIR = TokenKind.URL_CODE, TokenKind.DNS_LABEL, TokenKind.NIR
_EMAIL, _LOGIN = TokenKind.EMAIL, TokenKind.PORTAL_LOGIN

_SECOND_LINE_AT_AGE = by_age_steps(_SECOND_LINE)
_HOME_LINE_ONLY_AT_AGE = by_age_steps(_HOME_LINE_ONLY)


def second_line_share(age: int) -> float:
    return _SECOND_LINE_AT_AGE[age]


def home_line_only_share(age: int) -> float:
    return _HOME_LINE_ONLY_AT_AGE[age]


class IdentityGenerator:
    """Deterministic generator of canary patients.

    ``reserved(token)`` says whether a normalised token is already used in the
    registry; ``taken_phones`` lists numbers already used, removed from the
    pool up front. ``reserve_phones=True`` (planting) issues each number once
    and raises PoolExhausted when none is left; ``False`` (preview, nothing
    is recorded) draws numbers with replacement. ``seed=None`` draws a random
    128-bit seed, readable afterwards as ``generator.seed``.

    ``site_postcodes`` (postcode -> the site's patients there) draws addresses
    where the site's patients live, unless ``catchment`` names départements.

    ``in_use`` (planting) holds the emails and phone numbers of the target
    source's live canaries: with ``contacts.max_per_email_domain`` and
    ``max_per_phone_block`` no domain and no 10,000-number block gets more
    canaries than that, and domains are drawn least used first.

    ``contacts.mailbox_pool`` (watched mailboxes at common providers) comes
    first: while one is free, the canary's email is that address, and a
    mailbox that names its holder makes the canary that holder
    (canary/identity/mailboxes.py). Then the owned domains, as above.
    """

    def __init__(self, contacts: ContactPoints, *, seed: int | None = None,
                 age_profile: Mapping[str, float] | None = None, catchment: Sequence[str] = (),
                 reserved: Callable[[Token], bool] | None = None, taken_phones: Iterable[str] = (),
                 reserve_phones: bool = True, today: date | None = None,
                 in_use: Iterable[str] = (), site_postcodes: Mapping[str, int] | None = None) -> None:
        if not contacts.email_domains:
            raise ConfigError("[contacts] email_domains is empty: list at least one domain you own")
        if not contacts.phone_pool:
            raise ConfigError("[contacts] phone_pool is empty: list numbers you own")
        self.contacts = contacts
        self.seed = secrets.randbits(128) if seed is None else seed
        self.today = today or date.today()
        self.reserve_phones = reserve_phones
        self._rng = random.Random(self.seed)
        self._secret = SecretStream(self.seed)
        self._reserved = reserved
        # Values issued in this run, one set per kind (attributes rather than a
        # dict keyed by TokenKind: hashing an Enum member runs Python code).
        self._emails: set[str] = set()
        self._logins: set[str] = set()
        self._nirs: set[str] = set()
        self._url_codes: set[str] = set()
        self._dns_labels: set[str] = set()
        self._passwords: set[str] = set()
        self._births = AgeProfile.from_mapping(age_profile).sampler(self.today)
        self._places = PlaceDrawer(tuple(catchment), site_postcodes)
        in_use = tuple(in_use)
        self._phones = PhoneAllocator(contacts.phone_pool, self._rng, taken=taken_phones, reserved=reserved,
                                      unique=reserve_phones, max_per_block=contacts.max_per_phone_block,
                                      in_use=[v for v in in_use if v.startswith("+")])
        self._max_per_domain = contacts.max_per_email_domain if reserve_phones else None
        self._domain_use = Counter(v.rpartition("@")[2].lower() for v in in_use if "@" in v)
        self._gps = medical.GpBook()
        self._mailboxes = MailboxAllocator(contacts.mailbox_pool, self._rng,
                                           lambda address: self._claim(_EMAIL, self._emails, address)) \
            if contacts.mailbox_pool else None
        self._zones: dict[str, str | None] = {}
        self._portal_base = contacts.portal_url if contacts.portal_url.endswith("/") else contacts.portal_url + "/"

    # -- public API -------------------------------------------------------------

    def generate(self) -> Identity:
        rng = self._rng
        mailbox = self._mailboxes.take() if self._mailboxes is not None else None
        named = mailbox is not None and mailbox.first_name is not None
        if named:
            sex = Sex(self._mailboxes.sex_of(mailbox))
            birth, age = holder_birth(rng, self._births, mailbox.first_name, sex.value)
            first_names, last_name, birth_name = _holder_names(rng, mailbox, sex, birth, age)
        else:
            birth, age = self._births.draw(rng)
            sex = draw_sex(rng, age)
            first_names, last_name, birth_name = draw_names(rng, sex, birth, age)
        address = self._places.address(rng)
        birthplace, population = self._places.birthplace(rng, birth, age, address.departement)
        nir = self._nir(sex, birth, birthplace, population)

        dept = address.departement
        zone = self._zones.get(dept) if dept in self._zones else self._zone(dept)
        phone = self._phones.primary(zone, home_line_only=rng.random() < _HOME_LINE_ONLY_AT_AGE[age])
        phone2 = None
        if phone[3] in "67" and rng.random() < _SECOND_LINE_AT_AGE[age]:
            phone2 = self._phones.home_line(zone)

        if age < _CHILD_AGE_LIMIT and not named:
            holder_year = birth.year - randint(rng, 24, 40)
            # A parent carries one of a double-barrelled name's parts.
            parts = split_double_name(birth_name) if " " in birth_name or "-" in birth_name else None
            surname = parts[int(rng.random() * 2)] if parts else birth_name
            holder = Person.of((self._parent_name(rng, holder_year),), surname, holder_year)
            child = accounts.slug(first_names[0])  # the parent may use the child's name
        else:
            surname = last_name
            if last_name != birth_name and rng.random() < _EMAIL_WITH_BIRTH_NAME:
                surname = birth_name
            holder = Person.of(first_names, surname, birth.year)
            child = accounts.slug(self._child_name(rng, birth.year))
        email = mailbox.address if mailbox is not None else self._email(holder)
        login = self._login(holder, email)
        password = self._password(PasswordHints(holder.first, child, holder.year, dept, self.today.year))
        url_code = self._secret_value(_URL_CODE)
        dns_label = self._secret_value(_DNS_LABEL)

        return Identity(
            sex=sex,
            civility=civility(sex),
            first_names=first_names,
            last_name=last_name,
            birth_name=birth_name,
            birth_date=birth,
            birthplace=birthplace,
            nir=nir,
            address=address,
            phone=phone,
            phone2=phone2,
            email=email,
            url_code=url_code,
            portal_url=self._portal_base + url_code,
            dns_label=dns_label,
            hostname=f"{dns_label}.{self.contacts.dns_zone}",
            portal_login=login,
            portal_password=password,
            blood_group=medical.blood_group(rng),
            allergies=medical.allergies(rng),
            treatments=medical.treatments(rng, age, sex),
            gp=self._gps.gp_for(rng, dept),
        )

    def generate_many(self, count: int) -> Iterator[Identity]:
        for _ in range(count):
            yield self.generate()

    def _zone(self, departement: str) -> str | None:
        # Overseas lines are +262/+590... numbers, which a pool does not hold.
        zone = refdata.landline_zone(departement) if len(departement) == 2 else None
        self._zones[departement] = zone
        return zone

    # -- uniqueness ---------------------------------------------------------------

    def _claim(self, kind: TokenKind, issued: set[str], value: str) -> bool:
        """Take ``value`` if nobody uses it yet.

        Generated values are already in normalised form (lower case, E.164,
        upper-case NIR); tests check that tokens.normalise leaves them as is.
        """
        if value in issued:
            return False
        if self._reserved is not None and self._reserved(Token(kind, value)):
            return False
        issued.add(value)
        return True

    def _saturated(self, kind: TokenKind) -> PoolExhausted:
        return PoolExhausted(f"no unused {kind.value} found after {_MAX_ATTEMPTS} attempts: "
                             "the registry is saturated for this kind of value")

    # -- fields ---------------------------------------------------------------------

    def _nir(self, sex: Sex, birth: date, birthplace: Birthplace, population: int) -> str:
        rng = self._rng
        if birthplace.departement == "99":
            top = 999
        else:
            top = min(999, max(_ORDER_MIN_TOP, int(population * _ORDER_PER_INHABITANT)))
        prefix = ("1" if sex is _MALE else "2") + TWO_DIGITS[birth.year % 100] + TWO_DIGITS[birth.month] \
            + birthplace.insee_code
        for attempt in range(_MAX_ATTEMPTS):
            widened = min(999, top << (attempt // 10))  # a full range widens
            body = prefix + THREE_DIGITS[1 + int(rng.random() * widened)]
            nir = body + nir_key(body)
            if self._claim(_NIR, self._nirs, nir):
                return nir
        raise self._saturated(_NIR)

    def _email(self, holder: Person) -> str:
        rng = self._rng
        local = accounts.email_local_part(rng, holder)
        domain = "@" + self._domain(rng)
        for attempt in range(_MAX_ATTEMPTS):
            email = (local if attempt == 0 else accounts.with_suffix(rng, local, attempt)) + domain
            if self._claim(_EMAIL, self._emails, email):
                return email
        raise self._saturated(_EMAIL)

    def _domain(self, rng: random.Random) -> str:
        """An owned domain; with a cap, one of the least used that still has room."""
        domains = self.contacts.email_domains
        if not self._max_per_domain:
            return pick_domain(rng, domains)
        use = self._domain_use
        room = [d for d in domains if use[d] < self._max_per_domain]
        if not room:
            raise PoolExhausted(
                f"every email domain already holds {self._max_per_domain} canaries of this source: add "
                "domains to [contacts] email_domains, or raise contacts.max_per_email_domain")
        fewest = min(use[d] for d in room)
        domain = pick_domain(rng, tuple(d for d in room if use[d] == fewest))
        use[domain] += 1
        return domain

    def _login(self, holder: Person, email: str) -> str:
        rng = self._rng
        login = accounts.portal_login(rng, holder, email)
        for attempt in range(_MAX_ATTEMPTS):
            if attempt == 0:
                candidate = login
            elif login.isdigit():
                candidate = accounts.numeric_login(rng)
            else:
                candidate = accounts.with_suffix(rng, login, attempt)
            if self._claim(_LOGIN, self._logins, candidate):
                return candidate
        raise self._saturated(_LOGIN)

    def _password(self, hints: PasswordHints) -> str:
        # Not a watched token (logins are), but kept unique in the run so a
        # password seen alone still points to one canary.
        rng = self._rng
        password = accounts.portal_password(rng, hints)
        for _ in range(20):
            if password not in self._passwords:
                break
            password = accounts.portal_password(rng, hints)
        while password in self._passwords:  # a very common pick: add digits, as users do
            password += str(randint(rng, 0, 9))
        self._passwords.add(password)
        return password

    def _secret_value(self, kind: TokenKind) -> str:
        url = kind is _URL_CODE
        issued = self._url_codes if url else self._dns_labels
        for _ in range(_MAX_ATTEMPTS):
            value = accounts.url_code(self._secret) if url else accounts.dns_label(self._secret, self._rng)
            if self._claim(kind, issued, value):
                return value
        raise self._saturated(kind)

    def _parent_name(self, rng: random.Random, parent_year: int) -> str:
        sex = "F" if rng.random() < _MOTHER_HOLDS_ACCOUNT else "M"
        return pick(rng, first_name_table(sex, parent_year // 10 * 10))

    def _child_name(self, rng: random.Random, birth_year: int) -> str:
        year = min(birth_year + 30, self.today.year)
        return pick(rng, first_name_table("F" if rng.random() < 0.5 else "M", year // 10 * 10))


def _holder_names(rng: random.Random, mailbox: Mailbox, sex: Sex, birth: date,
                  age: int) -> tuple[tuple[str, ...], str, str]:
    """(first names, used name, birth name) of a mailbox's named holder.

    The holder's first name leads (middle names drawn as usual, none repeating
    a part of it); the mailbox's last name is the used name, and also the birth
    name unless the draw made her a married woman using her husband's name.
    """
    drawn, used, born = draw_names(rng, sex, birth, age)
    first = mailbox.first_name
    first_names = (first, *(n for n in drawn[1:] if not name_parts(n) & name_parts(first)))
    last = mailbox.last_name
    return first_names, last, (born if used != born else last)


def pick_domain(rng: random.Random, domains: tuple[str, ...]) -> str:
    return domains[0] if len(domains) == 1 else domains[int(rng.random() * len(domains))]

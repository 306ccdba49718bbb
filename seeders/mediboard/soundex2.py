"""French Soundex2, exactly as Mediboard computes it for its patient search columns.

Mediboard stores ``soundex2->build(nom)`` in ``patients.nom_soundex2`` (and
the first name, birth name) when it saves a patient; its phonetic search
reads them. The algorithm is Frédéric Brouard's "Soundex2" in Johan
Barbier's PHP class, step by step:

1. strip accents (HTML entities trick), anything else than a-z0-9 becomes '-'
   (so œ, æ and ß disappear);
2. upper case, drop spaces and '-';
3. GUI->KI, GUE->KE, GA->KA, GO->KO, GU->K, CA->KA, CO->KO, CU->KU, Q->K, CC->K,
   CK->K (PHP str_replace: each pair over the whole string, in that order);
4. vowels E, I, O, U -> A, except the first letter;
5. prefixes ASA->AZA, KN->NN, PF->FF, PH->FF, SCH->SSS (start of the word only);
6. drop H not after C or S, drop Y not after A;
7. drop a final A, T, D or S;
8. drop every A except a leading one;
9. collapse doubled letters;
10. keep 4 characters, padded with spaces.

Step 1 depends on the PHP runtime: with a French locale, an accented capital
is lower-cased and loses its accent ("É" -> "e"); without it (PHP 8), the
capital stays and is dropped with the other non a-z characters. ``accents``
chooses: "strip" or "drop". A seeder picks the one its host's own rows agree
with.
"""

from __future__ import annotations

import re
import unicodedata

_GROUP1 = (("GUI", "KI"), ("GUE", "KE"), ("GA", "KA"), ("GO", "KO"), ("GU", "K"), ("CA", "KA"),
           ("CO", "KO"), ("CU", "KU"), ("Q", "K"), ("CC", "K"), ("CK", "K"))
_VOWELS = (("E", "A"), ("I", "A"), ("O", "A"), ("U", "A"))
_PREFIXES = (("ASA", "AZA"), ("KN", "NN"), ("PF", "FF"), ("PH", "FF"), ("SCH", "SSS"))


def soundex2(text: str, accents: str = "strip") -> str:
    """The 4-character Soundex2 code of a (French) name; empty input gives an empty string."""
    word = _ascii(text.strip(), accents)
    word = word.upper().replace(" ", "").replace("-", "")
    if not word:
        return ""
    for old, new in _GROUP1:
        word = word.replace(old, new)
    head, tail = word[0], word[1:]
    for old, new in _VOWELS:
        tail = tail.replace(old, new)
    word = head + tail
    for old, new in _PREFIXES:
        if word.startswith(old):
            word = new + word[len(old):]
    word = re.sub(r"(?<![CS])H", "", word)
    word = re.sub(r"(?<!A)Y", "", word)
    if word and word[-1] in "ATDS":
        word = word[:-1]
    lead = "A" if word.startswith("A") else ""
    word = lead + word.replace("A", "")
    word = re.sub(r"(.)\1", r"\1", word)
    return word[:4].ljust(4)


def _ascii(text: str, accents: str) -> str:
    """PHP trimAccent: accented letters lose their accent; other characters become '-'."""
    if accents == "drop":
        # strtolower() leaves non-ASCII capitals alone; their entity letter is upper case.
        lowered = "".join(ch.lower() if ch.isascii() else ch for ch in text)
    else:
        lowered = text.lower()
    plain = "".join(ch for ch in unicodedata.normalize("NFD", lowered) if not unicodedata.combining(ch))
    return re.sub(r"[^a-z0-9]+", "-", plain).strip("-")

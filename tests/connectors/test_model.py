from datetime import datetime, timedelta, timezone

from inlet.connectors.model import ACL, Document, normal_user, principals_for


def doc(**fields):
    base = dict(id="s:1", source="s", source_type="files", title="T", text="hello")
    return Document(**{**base, **fields})


def test_acl_normalises_and_lists_principals():
    acl = ACL(public=True, users=["Bob@Example.com ", "alice@example.com", "bob@example.com"], domains=["Corp.COM"])
    assert acl.users == ["alice@example.com", "bob@example.com"]
    assert acl.principals() == ["*", "u:alice@example.com", "u:bob@example.com", "d:corp.com"]


def test_principals_for_user_and_operator():
    assert principals_for(None) is None
    assert principals_for("Alice@Example.com") == ["*", "u:alice@example.com", "d:example.com"]


def test_a_look_alike_letter_never_folds_into_another_user():
    """str.lower() makes the KELVIN SIGN an ASCII k: "\u212aate" was kate, in an ACL and as a caller."""
    kelvin = "\u212aate@example.com"
    assert principals_for(kelvin) == ["*", f"u:{kelvin}", "d:example.com"]
    assert principals_for("eve@\u212apmg.example")[-1] == "d:\u212apmg.example"
    assert ACL(users=[kelvin, "Kate@example.com"]).users == sorted(["kate@example.com", kelvin])
    assert ACL(domains=["\u212aPMG.example"]).domains == ["\u212apmg.example"]
    assert Document(id="s:1", source="s", source_type="files", text="x", author=kelvin).people() == [kelvin]
    # the ANGSTROM and OHM signs would become another letter (å, ω); the Turkish İ two characters
    for other in ("\u212bsa@example.com", "\u2126mega@example.com", "\u0130nci@example.com"):
        assert normal_user(other) == other and normal_user(other) != other.lower()


def test_the_fold_is_str_lower_for_every_other_address():
    """What earlier versions stored needs no rewrite: ASCII and a letter's own lower case as before."""
    for user in (" Alice@Example.COM ", "JÜRGEN@Straße.DE", "ΝΙΚΟΣ@example.gr", "josé@example.com", "eve", "µ@x"):
        assert normal_user(user) == user.strip().lower()
    for user in ("\u212aate@Example.COM", "\u0130NCI@X.tr", "JÜRGEN@x"):
        assert normal_user(normal_user(user)) == normal_user(user)
    assert normal_user("\u212aATE@Example.COM") == "\u212aate@example.com"


def test_naive_datetimes_are_utc():
    naive = datetime(2024, 1, 2, 3, 4, 5)
    assert doc(updated_at=naive).updated_at == naive.replace(tzinfo=timezone.utc)
    plus_two = datetime(2024, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert doc(updated_at=plus_two).updated_at == naive.replace(tzinfo=timezone.utc)


def test_content_hash_ignores_acl_and_meta_hash_sees_it():
    a = doc(acl=ACL(users=["a@x.com"]))
    b = doc(acl=ACL(users=["b@x.com"]))
    assert a.content_hash() == b.content_hash()
    assert a.meta_hash() != b.meta_hash()
    assert doc(text="other").content_hash() != a.content_hash()

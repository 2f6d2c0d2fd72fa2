from datetime import datetime, timedelta, timezone

from inlet.connectors.model import ACL, Document, principals_for


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

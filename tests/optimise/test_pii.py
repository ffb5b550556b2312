"""PII detection measured on the hand-written labelled fixture, and the surrogates' promises."""

from __future__ import annotations

from collections import Counter

import pytest
from cryptography.fernet import InvalidToken
from tests.optimise.pii_fixture import load

from imts.optimise.pii import recognizers as r
from imts.optimise.pii.engine import Replacer, analyzer, decrypt_mapping, encrypt_mapping, find
from imts.optimise.pii.surrogates import format_ok

STRUCTURED_MIN, NAME_MIN = 0.95, 0.9


def test_precision_and_recall_per_type_on_the_labelled_fixture() -> None:
    rows = load()
    tp, fp, fn = Counter(), Counter(), Counter()
    for text, gold in rows:
        pred = {(s.entity, s.start, s.end) for s in find(text)}
        for e, *_ in pred & gold:
            tp[e] += 1
        for e, *_ in pred - gold:
            fp[e] += 1
        for e, *_ in gold - pred:
            fn[e] += 1
    assert sum(tp.values()) + sum(fn.values()) >= 300
    assert sum(1 for _, gold in rows if not gold) >= 30  # hard negatives
    for entity in r.ENTITIES:
        precision = tp[entity] / max(1, tp[entity] + fp[entity])
        recall = tp[entity] / max(1, tp[entity] + fn[entity])
        floor = NAME_MIN if entity in (r.PERSON, r.ADDRESS) else STRUCTURED_MIN
        assert tp[entity] >= 5, entity
        assert precision >= floor and recall >= floor, (entity, precision, recall)


def test_the_engine_is_presidio_with_no_nlp_model() -> None:
    engine = analyzer()
    assert type(engine.nlp_engine).__name__ == "NoOpNlpEngine"
    names = {rec.name for rec in engine.registry.recognizers}
    assert names and all(n.startswith("imts_") for n in names)


def test_surrogates_are_consistent_format_valid_and_keyed_per_project() -> None:
    texts = [text for text, gold in load() if gold]
    a, b = Replacer(b"project-a"), Replacer(b"project-a")
    out_a = [a.replace(t)[0] for t in texts]
    assert out_a == [b.replace(t)[0] for t in texts]  # same secret, same surrogates
    other = Replacer(b"project-b")
    out_other = [other.replace(t)[0] for t in texts]
    assert sum(x != y for x, y in zip(out_a, out_other, strict=True)) > 0.9 * len(texts)
    originals = {o for (_, o) in a.surrogates.mapping}
    for (entity, original), value in a.surrogates.mapping.items():
        assert format_ok(entity, value, original), (entity, original, value)
        assert value not in originals
    assert len(set(a.surrogates.mapping.values())) == len(a.surrogates.mapping)  # no two share one
    for text in out_a:  # no original survives
        assert not [o for o in originals if len(o) > 3 and o in text]


def test_the_same_person_keeps_one_surrogate_and_ids_keep_sex() -> None:
    rep = Replacer(b"k")
    text, _ = rep.replace("周磊（电话13883216448）说：周磊的身份证是110105197401287278。")
    new_name = rep.surrogates.get(r.PERSON, "周磊")
    assert text.count(new_name) == 2 and "周磊" not in text
    new_id = rep.surrogates.get(r.CN_ID, "110105197401287278")
    assert int(new_id[16]) % 2 == 1 and r.valid_cn_id(new_id)
    e1 = rep.surrogates.get(r.EMAIL, "a@example.com")
    assert e1 != rep.surrogates.get(r.EMAIL, "b@example.com")  # not one value for every e-mail


def test_the_mapping_is_encrypted_and_reversible_with_the_passphrase() -> None:
    rep = Replacer(b"k")
    rep.replace("Call Lily Lewis at 617-555-0109.")
    blob = encrypt_mapping(rep.mapping(), "admin passphrase")
    assert b"Lily" not in blob
    back = decrypt_mapping(blob, "admin passphrase")
    assert {m["original"] for m in back} == {"Lily Lewis", "617-555-0109"}
    with pytest.raises(InvalidToken):
        decrypt_mapping(blob, "wrong")


def test_the_fix_mapping_opens_only_with_the_admins_private_key() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from imts.optimise.apply import mapping_blob, open_mapping

    def pair() -> tuple[str, bytes]:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pub = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        priv = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return pub.decode(), priv

    rep = Replacer(b"k")
    rep.replace("客户张伟的手机号是13912345678。")
    (pub, priv), (_, other) = pair(), pair()
    blob = mapping_blob(rep, pub)
    assert "张伟".encode() not in blob and b"13912345678" not in blob
    assert {m["original"] for m in open_mapping(blob, priv)} == {"张伟", "13912345678"}
    with pytest.raises(ValueError):
        open_mapping(blob, other)


def test_a_first_name_alone_follows_its_persons_surrogate() -> None:
    rep = Replacer(b"k")
    texts, _ = rep.replace_all(["Liam Young (tel 415-555-0187) buys 3 tickets.", "Liam pays 252 dollars."])
    new_first = rep.surrogates.get(r.PERSON, "Liam Young").split()[0]
    assert "Liam" not in " ".join(texts) and texts[1] == f"{new_first} pays 252 dollars."

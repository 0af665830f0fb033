"""The tokens' rules (conveyor_bus.tokens): both formats, what is refused without naming a
secret, the lookup comparing with every token, and the roles."""

from __future__ import annotations

import hmac
from pathlib import Path

import pytest

from conveyor_bus.tokens import (
    Principal,
    Role,
    TokenError,
    Tokens,
    TokenSettings,
    bearer,
    parse_file,
    parse_list,
)

pytestmark = pytest.mark.unit

ALICE = "alice-secret-0123456789"
DASH = "dash-secret-abcdefghijk"


def test_the_list_format_is_name_role_secret_comma_separated() -> None:
    assert parse_list(f" alice:operate:{ALICE} , dash:read:{DASH},") == [
        ("alice", "operate", ALICE),
        ("dash", "read", DASH),
    ]
    assert parse_list("") == []


def test_a_secret_may_hold_colons_in_the_list_format_only_after_the_role() -> None:
    assert parse_list("a:read:x:y") == [("a", "read", "x:y")]


def test_the_file_format_is_one_name_role_secret_per_line() -> None:
    text = f"# who, what, secret\n\nalice operate {ALICE}\n  dash\tread   {DASH}  \n"
    assert parse_file(text) == [("alice", "operate", ALICE), ("dash", "read", DASH)]


@pytest.mark.parametrize(
    ("configured", "message"),
    [
        ([("alice", "admin", ALICE)], "role 'admin' is not one of read, operate"),
        ([("alice", "read", "short")], "16-512 URL-safe characters"),
        ([("alice", "read", ALICE + "/=")], "16-512 URL-safe characters"),
        ([("al ice", "read", ALICE)], "a name is 1-64"),
        ([("", "read", ALICE)], "a name is 1-64"),
        ([("a", "read", ALICE), ("a", "operate", DASH)], "'a' is configured twice"),
        ([("a", "read", ALICE), ("b", "operate", ALICE)], "the same secret as another"),
    ],
)
def test_bad_tokens_are_refused_naming_the_token_never_its_secret(
    configured: list[tuple[str, str, str]], message: str
) -> None:
    with pytest.raises(TokenError, match=message) as raised:
        Tokens(configured)
    assert ALICE not in str(raised.value) and DASH not in str(raised.value)


def test_a_malformed_item_or_line_names_its_place_not_its_content() -> None:
    with pytest.raises(TokenError, match="item 2 is not name:role:secret") as raised:
        parse_list(f"alice:read:{ALICE},{DASH}")
    assert DASH not in str(raised.value)
    with pytest.raises(TokenError, match="line 2 has 2 fields") as raised:
        parse_file(f"alice read {ALICE}\ndash {DASH}\n")
    assert DASH not in str(raised.value)


def test_lookup_finds_the_principal_of_a_secret_and_nothing_else() -> None:
    tokens = Tokens([("alice", "operate", ALICE), ("dash", "read", DASH)])
    assert tokens.enabled and len(tokens) == 2 and tokens.names == ["alice", "dash"]
    assert tokens.lookup(ALICE) == Principal("alice", Role.OPERATE)
    assert tokens.lookup(DASH) == Principal("dash", Role.READ)
    for wrong in (None, "", ALICE[:-1], ALICE + "x", ALICE.upper(), "é" * 20, "\udcff"):
        assert tokens.lookup(wrong) is None
    assert not Tokens().enabled and Tokens().lookup(ALICE) is None


def test_lookup_compares_with_every_token_whichever_matches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No early exit: as many constant-time comparisons for the first token, the last, or
    none; each between two SHA-256 digests (equal lengths, whatever was presented)."""
    calls: list[tuple[int, int]] = []
    compare = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    many = Tokens([(f"t{n}", "read", f"secret-number-{n:04d}") for n in range(10)])
    for presented in ("secret-number-0000", "secret-number-0009", "nope", "x" * 5000):
        calls.clear()
        many.lookup(presented)
        assert calls == [(32, 32)] * 10


def test_roles() -> None:
    assert Role.OPERATE.permits(Role.OPERATE) and Role.OPERATE.permits(Role.READ)
    assert Role.READ.permits(Role.READ) and not Role.READ.permits(Role.OPERATE)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer   abc ", "abc"),
        ("BEARER abc", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer  ", None),
        (None, None),
    ],
)
def test_bearer_reads_the_authorization_header(header: str | None, token: str | None) -> None:
    assert bearer(header) == token


def test_settings_join_the_variable_and_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = tmp_path / "tokens"
    secrets.write_text(f"dash read {DASH}\n")
    monkeypatch.setenv("CONVEYOR_TOKENS", f"alice:operate:{ALICE}")
    monkeypatch.setenv("CONVEYOR_TOKENS_FILE", str(secrets))
    settings = TokenSettings()
    assert ALICE not in repr(settings)
    assert settings.load_tokens().names == ["alice", "dash"]
    monkeypatch.setenv("CONVEYOR_TOKENS_FILE", str(tmp_path / "missing"))
    with pytest.raises(TokenError, match=r"missing.*No such file"):
        TokenSettings().load_tokens()
    monkeypatch.delenv("CONVEYOR_TOKENS")
    monkeypatch.delenv("CONVEYOR_TOKENS_FILE")
    assert not TokenSettings().load_tokens().enabled

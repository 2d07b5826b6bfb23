"""API keys: the token format, parsing, and matching a presented token against its stored hash."""

from __future__ import annotations

import hashlib
import re

import pytest

from auth import (
    API_KEY_PREFIX,
    MalformedApiKey,
    api_key_matches,
    generate_api_key,
    hash_api_key,
    parse_api_key,
)

TOKEN_FORMAT = re.compile(r"stratus_[a-z0-9]{12}_[A-Za-z0-9_-]{43}")
KEY_ID = "abc123def456"
SECRET = "A" * 20 + "-_" + "z9" * 10 + "Q"  # 43 URL-safe characters
WELL_FORMED = f"stratus_{KEY_ID}_{SECRET}"


def _secret(token: str) -> str:
    """The part after ``stratus_<key id>_`` (the secret itself may contain ``_``)."""
    return token[len(API_KEY_PREFIX) + 12 + 1 :]


def test_generated_token_has_the_documented_format() -> None:
    """Generated tokens are ``stratus_<12 lowercase alnum>_<43 urlsafe>`` (checked over many)."""
    for _ in range(200):
        key = generate_api_key()

        assert TOKEN_FORMAT.fullmatch(key.token), key.token
        assert key.token.startswith(f"{API_KEY_PREFIX}{key.key_id}_")
        assert len(_secret(key.token)) == 43


def test_parse_returns_the_key_id_of_a_generated_token() -> None:
    """Parsing a generated token gives back the key id it was generated with."""
    key = generate_api_key()

    assert parse_api_key(key.token) == key.key_id


def test_parse_returns_the_key_id_of_a_hand_written_token() -> None:
    """A well-formed token whose secret uses ``-`` and ``_`` parses to its key id."""
    assert parse_api_key(WELL_FORMED) == KEY_ID


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param(f"temporal_{KEY_ID}_{SECRET}", id="wrong-prefix"),
        pytest.param(f"Stratus_{KEY_ID}_{SECRET}", id="capitalised-prefix"),
        pytest.param(f"{KEY_ID}_{SECRET}", id="no-prefix"),
        pytest.param(f"stratus_{KEY_ID}_{SECRET[:-1]}", id="short-secret"),
        pytest.param(f"stratus_{KEY_ID}_{SECRET}A", id="long-secret"),
        pytest.param(f"stratus_{KEY_ID.upper()}_{SECRET}", id="uppercase-id"),
        pytest.param(f"stratus_{KEY_ID[:-1]}_{SECRET}", id="short-id"),
        pytest.param(f"stratus_{KEY_ID}_{SECRET}_extra", id="extra-segment-after"),
        pytest.param(f"stratus_extra_{KEY_ID}_{SECRET}", id="extra-segment-before"),
        pytest.param(f"stratus_{KEY_ID}{SECRET}", id="missing-separator"),
        pytest.param(f"stratus_{KEY_ID}_{SECRET[:-1]}=", id="non-urlsafe-secret"),
        pytest.param(f" stratus_{KEY_ID}_{SECRET}", id="leading-space"),
        pytest.param(f"Bearer stratus_{KEY_ID}_{SECRET}", id="with-scheme"),
    ],
)
def test_malformed_token_is_refused(token: str) -> None:
    """Anything that is not exactly a Stratus API key raises MalformedApiKey."""
    with pytest.raises(MalformedApiKey, match=r"^not a Stratus API key$"):
        parse_api_key(token)


def test_token_with_trailing_newline_is_refused() -> None:
    """A token followed by a newline is not a well-formed key and raises MalformedApiKey."""
    with pytest.raises(MalformedApiKey):
        parse_api_key(WELL_FORMED + "\n")


def test_malformed_api_key_is_a_value_error() -> None:
    """Callers catching ValueError also catch MalformedApiKey."""
    assert issubclass(MalformedApiKey, ValueError)


def test_hash_is_sha256_hex_of_the_whole_token() -> None:
    """The stored hash is the lowercase SHA-256 hex digest of the complete token."""
    key = generate_api_key()

    assert key.token_hash == hashlib.sha256(key.token.encode()).hexdigest()
    assert key.token_hash == hash_api_key(key.token)
    assert re.fullmatch(r"[0-9a-f]{64}", key.token_hash)
    assert key.token not in key.token_hash


def test_matches_only_the_exact_token() -> None:
    """api_key_matches is true for the token itself and false for any near miss."""
    key = generate_api_key()
    flipped_last = key.token[:-1] + ("A" if key.token[-1] != "A" else "B")

    assert api_key_matches(key.token, key.token_hash)
    assert not api_key_matches(flipped_last, key.token_hash)
    assert not api_key_matches(key.token + " ", key.token_hash)
    assert not api_key_matches(key.token.upper(), key.token_hash)
    assert not api_key_matches(key.token_hash, key.token_hash)
    assert not api_key_matches("", key.token_hash)


def test_a_key_does_not_match_another_keys_hash() -> None:
    """One key's token never matches another key's stored hash."""
    first, second = generate_api_key(), generate_api_key()

    assert not api_key_matches(first.token, second.token_hash)
    assert not api_key_matches(second.token, first.token_hash)


def test_two_generated_keys_differ() -> None:
    """Two generated keys have different ids, tokens, secrets and hashes."""
    first, second = generate_api_key(), generate_api_key()

    assert first.key_id != second.key_id
    assert first.token != second.token
    assert _secret(first.token) != _secret(second.token)
    assert first.token_hash != second.token_hash

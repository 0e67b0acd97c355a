"""The domain-free kit: slugs, ids and key material."""

import re

import pytest

from yolostack.core.crypto import generate_api_key, hash_api_key, key_prefix, looks_like_api_key
from yolostack.core.ids import is_id, new_id
from yolostack.core.slugs import MAX_SLUG_LENGTH, is_slug, slugify


class TestSlugify:
    @pytest.mark.parametrize(
        ("name", "slug"),
        [
            ("My Proj", "my-proj"),
            ("  Parking  Lot  ", "parking-lot"),
            ("a_b", "ab"),
            ("Über--Cool!!", "ber-cool"),
            ("---", ""),
        ],
    )
    def test_matches_the_clients_rule(self, name: str, slug: str) -> None:
        assert slugify(name) == slug

    def test_long_names_are_cut_before_stripping(self) -> None:
        slug = slugify("a" * 127 + " b")
        assert slug == "a" * 127
        assert is_slug(slug)

    def test_every_slugify_output_is_a_slug(self) -> None:
        for name in ("x" * 300, "A B C", "1-2-3", "e" * 127 + "-" + "f" * 5):
            assert is_slug(slugify(name))


class TestIsSlug:
    @pytest.mark.parametrize("value", ["a", "my-proj", "a1-b2", "x" * MAX_SLUG_LENGTH])
    def test_accepts(self, value: str) -> None:
        assert is_slug(value)

    @pytest.mark.parametrize("value", ["", "A", "a_b", "-a", "a-", "a--b", "a b", "x" * (MAX_SLUG_LENGTH + 1)])
    def test_refuses(self, value: str) -> None:
        assert not is_slug(value)


class TestIds:
    def test_ids_are_prefixed_and_unique(self) -> None:
        ids = {new_id("project") for _ in range(1000)}
        assert len(ids) == 1000
        assert all(re.fullmatch(r"project_[a-z0-9]{20}", value) for value in ids)

    def test_ids_and_slugs_never_collide(self) -> None:
        assert is_id(new_id("model"))
        assert not is_id(slugify("Some Model Name"))


class TestApiKeys:
    def test_shape_is_what_ultralytics_keeps(self) -> None:
        key = generate_api_key()
        assert re.fullmatch(r"ul_[0-9a-f]{40}", key)
        assert looks_like_api_key(key)

    def test_hash_is_stable_and_not_the_key(self) -> None:
        key = generate_api_key()
        assert hash_api_key(key) == hash_api_key(key)
        assert key not in hash_api_key(key)
        assert hash_api_key(key) != hash_api_key(generate_api_key())

    def test_prefix_identifies_without_revealing(self) -> None:
        key = generate_api_key()
        assert key.startswith(key_prefix(key))
        assert len(key_prefix(key)) == 11

"""The format table the server checks requests against (without importing torch) is ultralytics' own."""

from __future__ import annotations

import pytest

from yolostack.exports.service import EXPORT_DEFAULTS
from yolostack.training.service import default_args
from yolostack_engine import export_formats as formats


@pytest.fixture(scope="module")
def table() -> dict[str, tuple[str, list[str]]]:
    """ultralytics' ``export_formats()``: argument → (suffix, format-specific arguments)."""
    from ultralytics.engine.exporter import export_formats

    exported = export_formats()  # type: ignore[no-untyped-call]
    rows = zip(exported["Argument"], exported["Suffix"], exported["Arguments"], strict=True)
    return {name: (suffix, arguments) for name, suffix, arguments in rows if name != "-"}


def test_every_ultralytics_format_is_known_with_its_output_and_arguments(
    table: dict[str, tuple[str, list[str]]],
) -> None:
    assert list(formats.FORMATS) == list(table)
    for name, (suffix, arguments) in table.items():
        assert formats.FORMATS[name].output == suffix, name
        assert formats.FORMATS[name].arguments == frozenset(arguments), name


def test_sdk_names_are_ultralytics_names() -> None:
    assert sorted(formats.SDK_FORMATS) == sorted(formats.FORMATS)


@pytest.mark.parametrize("name", sorted(set(formats.SEED_FORMATS) | set(formats.SDK_FORMATS)))
def test_every_seed_and_sdk_name_resolves(name: str) -> None:
    spec = formats.canonical(name)
    assert spec is not None
    assert spec.name == formats.ALIASES.get(name, name)
    assert formats.canonical(name.upper()) == spec


def test_unknown_names_do_not_resolve() -> None:
    assert formats.canonical("pt") is None
    assert formats.canonical("trt") is None  # ultralytics' own alias, but neither the seed's nor the SDK's


def test_precision_rules_are_ultralytics_rules() -> None:
    from ultralytics.cfg import QUANTIZE_ALIASES
    from ultralytics.engine import exporter

    assert formats.QUANTIZE_ALIASES == QUANTIZE_ALIASES
    assert formats.FP16_FORMATS == exporter.FP16_FORMATS
    assert formats.INT8_FORMATS == exporter.INT8_FORMATS
    assert formats.W8A16_FORMATS == exporter.W8A16_FORMATS
    assert formats.W8A32_FORMATS == exporter.W8A32_FORMATS
    assert formats.FP32_UNSUPPORTED_FORMATS == exporter.FP32_UNSUPPORTED_FORMATS


def test_argument_defaults_are_ultralytics_defaults() -> None:
    defaults = default_args()
    for key, value in EXPORT_DEFAULTS.items():
        # The exporter exports one image at a time unless told otherwise (its own ``batch=1``).
        assert value == (1 if key == "batch" else defaults[key]), key


class TestMissing:
    def test_a_gpu_format_without_a_gpu_says_so(self) -> None:
        assert "a CUDA GPU (this worker has none)" in formats.missing(formats.FORMATS["engine"], gpus=0)

    def test_other_platforms_are_named(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(formats, "this_platform", lambda: "win32-x86_64")
        lacking = formats.missing(formats.FORMATS["hailo"], gpus=0)
        assert lacking[0] == "one of the platforms linux-x86_64 (this is win32-x86_64)"

    def test_vendor_binaries_are_named(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr("shutil.which", lambda name: None)
        lacking = formats.missing(formats.FORMATS["ascend"], gpus=0)
        assert "the CANN toolkit's ATC compiler: `atc` on PATH" in lacking
        message = formats.unavailable_message(formats.FORMATS["ascend"], lacking)
        assert message.endswith("Install: Huawei's CANN toolkit (source /usr/local/Ascend/ascend-toolkit/set_env.sh)")

    def test_installed_toolchain_lacks_nothing(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(formats, "_installed", lambda name: True)
        monkeypatch.setattr(formats, "this_platform", lambda: "linux-x86_64")
        monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
        for spec in formats.FORMATS.values():
            assert formats.missing(spec, gpus=1) == [], spec.name

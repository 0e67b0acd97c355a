"""Field rules shared by several domains, and the one strict JSON reader every request body goes through."""

import codecs
import json
import math
import re
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

from pydantic import Field
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from yolostack.core.errors import BadRequest

MAX_METADATA_CHARS = 500_000
MAX_METADATA_KEY_CHARS = 128
# Deeper documents than this are refused: no legitimate body nests so far, and Python's parser recurses.
MAX_JSON_DEPTH = 64
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MAX = 2**31 - 1

# Integers a column can hold: SQLite and PostgreSQL BIGINT stop at 2**63, PostgreSQL INTEGER at 2**31 (a byte
# count, say, declared so in the schema and its OpenAPI; strict JSON refuses anything past 64 bits anyway).
NonNegativeInt64 = Annotated[int, Field(ge=0, le=INT64_MAX)]

# A \u escape of a surrogate (pairs included: they are checked after decoding), a raw UTF-8-encoded one, or an
# escaped NUL (raw control characters are a syntax error in JSON strings already).
_SURROGATE_HINT = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]|\\u0000")


class StrictJsonError(ValueError):
    """A body Python's ``json`` would read but that is not strict JSON (RFC 8259, plus our size limits)."""


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise StrictJsonError(f"number {text[:32]} is out of range (it does not fit in a 64-bit float)")
    return value


def _int64(text: str) -> int:
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise StrictJsonError(f"integer {text[:32]}… is out of range (at most 64 bits)")
    return value


def _no_constant(name: str) -> Any:
    raise StrictJsonError(f"{name} is not JSON: numbers must be finite")


def _check_tree(value: Any, depth: int, max_depth: int) -> None:
    """Nesting depth, and no lone surrogate in any key or string (PostgreSQL and UTF-8 cannot store one)."""
    if isinstance(value, str):
        _check_text(value)
        return
    if not isinstance(value, dict | list):
        return
    if depth >= max_depth:  # depth counts from 0: the document's own object or array is level 1
        raise StrictJsonError(f"JSON nests deeper than {max_depth} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_tree(item, depth + 1, max_depth)
    else:
        for item in value:
            _check_tree(item, depth + 1, max_depth)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise StrictJsonError("invalid unicode: a string holds a lone surrogate (\\ud800-\\udfff)") from None
    if "\x00" in text:  # valid JSON, but PostgreSQL text cannot hold it: refused rather than stored altered
        raise StrictJsonError("a string holds a NUL character (\\u0000)")


def loads_strict(data: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON as RFC 8259 has it: UTF-8, finite numbers, integers within 64 bits, no lone surrogates (nor
    NUL characters, which PostgreSQL cannot store), nesting at most ``max_depth``. Raises ``StrictJsonError`` for what Python's ``json`` would accept but we
    refuse, and ``ValueError`` (``json.JSONDecodeError``, ``UnicodeDecodeError``) for what is not JSON at all."""
    if isinstance(data, str):
        text, raw = data, data.encode("utf-8", "surrogatepass")
    else:
        # Strict UTF-8 (raw surrogates and other invalid bytes are a UnicodeDecodeError); a BOM may lead.
        text, raw = data.decode("utf-8-sig"), data
    try:
        value = json.loads(text, parse_float=_finite_float, parse_int=_int64, parse_constant=_no_constant)
    except RecursionError:
        raise StrictJsonError(f"JSON nests deeper than {max_depth} levels") from None
    # The tree walk costs a Python call per node; skip it when no string can hold a surrogate and the
    # document has too few brackets to nest that deep.
    if raw.count(b"[") + raw.count(b"{") > max_depth or _SURROGATE_HINT.search(raw):
        _check_tree(value, 0, max_depth)
    return value


def check_json_body(data: bytes, *, max_depth: int = MAX_JSON_DEPTH, declared_json: bool) -> None:
    """Refuse (``BadRequest``) a body that would be read as JSON but is not strict JSON.

    A body that is not JSON at all is the route's business (a form, bytes), unless its content type says
    JSON: then it is refused here too, with the parser's reason.
    """
    if not data.strip():
        return
    try:
        loads_strict(data, max_depth=max_depth)
        return
    except StrictJsonError as error:
        raise BadRequest(f"invalid JSON body: {error}", details=[{"field": "", "message": str(error)}]) from None
    except ValueError as error:
        reason = _reason(error)
    if declared_json or _python_reads_it(data):
        raise BadRequest(f"invalid JSON body: {reason}", details=[{"field": "", "message": reason}])


def _python_reads_it(data: bytes) -> bool:
    """Whether a hand-written ``json.loads`` would accept it (UTF-16, say): then it must have been strict."""
    try:
        json.loads(data)
    except RecursionError:
        return True
    except ValueError:
        return False
    return True


def _reason(error: ValueError) -> str:
    if isinstance(error, UnicodeDecodeError):
        return "the body is not valid UTF-8"
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at line {error.lineno} column {error.colno}"
    return str(error)[:200]


def check_metadata(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Custom JSON metadata: keys up to 128 characters, at most 500,000 serialized characters."""
    if value is None:
        return None
    long_keys = [key for key in value if len(key) > MAX_METADATA_KEY_CHARS]
    if long_keys:
        raise ValueError(f"metadata keys must be at most {MAX_METADATA_KEY_CHARS} characters")
    if len(json.dumps(value, separators=(",", ":"))) > MAX_METADATA_CHARS:
        raise ValueError(f"metadata must serialize to at most {MAX_METADATA_CHARS} characters")
    return value


def _text_refusal(field: str, what: str) -> BadRequest:
    message = f"{what} is not valid UTF-8 text"
    return BadRequest(message, details=[{"field": field, "message": message}])


class MultipartTextCheck:
    """Streams a multipart body and refuses (``BadRequest``) a text field, field name or file name that is not
    UTF-8: Starlette would read those bytes as Latin-1 and the route would store them silently altered. File
    contents are only scanned for the boundary; a malformed body is left to the form parser to refuse."""

    def __init__(self, boundary: bytes) -> None:
        callbacks: Any = {
            "on_part_begin": self._begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }
        self._parser: MultipartParser | None = MultipartParser(boundary, callbacks)
        self._field, self._value = b"", b""
        self._name = ""
        self._text: codecs.IncrementalDecoder | None = None
        self.error: BadRequest | None = None

    def feed(self, chunk: bytes) -> None:
        if self._parser is None or not chunk:
            return
        try:
            self._parser.write(chunk)
        except MultipartParseError:
            self._parser = None  # not ours to judge: the form parser answers for a malformed body
        if self.error is not None:
            raise self.error

    def _begin(self) -> None:
        self._name, self._text, self._field, self._value = "", None, b"", b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._field.lower() == b"content-disposition":
            _, options = parse_options_header(self._value)
            try:
                self._name = options.get(b"name", b"").decode("utf-8")
                filename = options.get(b"filename")
                if filename is not None:
                    filename.decode("utf-8")
            except UnicodeDecodeError:
                self.error = self.error or _text_refusal("", "a form field's name or file name")
            self._text = codecs.getincrementaldecoder("utf-8")() if b"filename" not in options else None
        self._field, self._value = b"", b""

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._text is not None and self.error is None:
            try:
                self._text.decode(data[start:end])
            except UnicodeDecodeError:
                self.error = _text_refusal(self._name, f"form field '{self._name}'")

    def _end(self) -> None:
        if self._text is not None and self.error is None:
            try:
                self._text.decode(b"", final=True)
            except UnicodeDecodeError:
                self.error = _text_refusal(self._name, f"form field '{self._name}'")


def multipart_boundary(content_type: str) -> bytes | None:
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    return boundary or None


def check_urlencoded_text(data: bytes) -> None:
    """An url-encoded form's names and values must be UTF-8 once decoded (Starlette would put U+FFFD in)."""
    for pair in data.split(b"&"):
        for part in pair.split(b"=", 1):
            try:
                unquote_to_bytes(part.replace(b"+", b" ")).decode("utf-8")
            except UnicodeDecodeError:
                name = unquote_to_bytes(pair.split(b"=", 1)[0]).decode("utf-8", "replace")
                raise _text_refusal(name, f"form field '{name}'") from None

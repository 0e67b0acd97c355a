"""`python -m yolostack_engine.convert <input.pt> <out_dir>`: convert one checkpoint in a confined child.

Prints one JSON line on stdout ({"ok": true, "meta": ...} or {"ok": false, "code": ..., "message": ...}) and
exits non-zero on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from yolostack_engine.convert.sandbox import Limits, apply_limits, enter_private_dir

OUT_OF_MEMORY_MARKERS = ("can't allocate memory", "bad_alloc", "DefaultCPUAllocator", "out of memory")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command line of the conversion child."""
    parser = argparse.ArgumentParser(prog="python -m yolostack_engine.convert", description=__doc__)
    parser.add_argument("input", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--memory-bytes", type=int, default=Limits.memory_bytes)
    parser.add_argument("--cpu-seconds", type=int, default=Limits.cpu_seconds)
    parser.add_argument("--max-file-bytes", type=int, default=Limits.file_bytes)
    return parser.parse_args(argv)


def failure(error: BaseException) -> dict[str, Any]:
    """The JSON result for an exception escaping the conversion."""
    from yolostack_engine.convert.child import ChildError
    from yolostack_engine.convert.safe_pickle import UnsafeCheckpoint

    if isinstance(error, UnsafeCheckpoint):
        return {
            "ok": False,
            "code": "unsafe",
            "detail": error.global_name,
            "reason": error.reason,
            "message": str(error),
        }
    if isinstance(error, ChildError):
        return {"ok": False, "code": error.code, "detail": error.detail, "message": str(error)}
    text = f"{type(error).__name__}: {error}"
    if isinstance(error, MemoryError) or any(marker in text for marker in OUT_OF_MEMORY_MARKERS):
        return {"ok": False, "code": "oom", "message": "out of memory"}
    return {"ok": False, "code": "failed", "message": text[:2000]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Convert inside the already-confined process and return the JSON result."""
    from yolostack_engine.convert.child import convert

    try:
        meta = convert(args.input, args.out_dir, args.max_file_bytes)
    except Exception as error:
        return failure(error)
    files = sorted(p.name for p in args.out_dir.iterdir() if p.is_file())
    return {"ok": True, "meta": meta, "files": files}


def main(argv: list[str] | None = None) -> int:
    """Entry point: confine, convert, report on the original stdout."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # Resolved before the child moves into its private directory, so relative paths keep their meaning.
    args.input, args.out_dir = args.input.resolve(), args.out_dir.resolve()
    apply_limits(Limits(args.memory_bytes, args.cpu_seconds, args.max_file_bytes))
    # ultralytics logs to stdout: keep the real stdout for the single result line and send everything else to stderr.
    result_fd = os.dup(1)
    os.dup2(2, 1)
    private = enter_private_dir()
    try:
        result = run(args)
    except MemoryError:
        result = {"ok": False, "code": "oom", "message": "out of memory"}
    finally:
        os.chdir("/")
        shutil.rmtree(private, ignore_errors=True)
    with os.fdopen(result_fd, "w") as out:
        out.write(json.dumps(result) + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

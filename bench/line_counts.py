"""Raw and code line counts of the configuration layer (issue 8's "measurably smaller" criterion).

Code lines are the lines that hold a token other than a comment, a docstring or a line break: a docstring (the
first string statement of a module, class or function) and a comment do not count, nor a blank line.

    python bench/line_counts.py [FILE ...]      # default: the config, sweep and experiments files
"""

import argparse
import ast
import io
import tokenize
from pathlib import Path

FILES = [
    "rl_adaloss/config.py", "rl_adaloss/schema.py", "rl_adaloss/records.py", "rl_adaloss/errors.py",
    "rl_adaloss/sweep.py", "rl_adaloss/experiments/__init__.py", "rl_adaloss/experiments/linreg.py",
    "rl_adaloss/experiments/two_layer.py",
]
_NOT_CODE = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
             tokenize.ENDMARKER, tokenize.ENCODING}


def docstring_lines(source: str) -> set[int]:
    """The line numbers that the docstrings of a module and of its classes and functions span."""
    lines = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                lines.update(range(first.lineno, first.end_lineno + 1))
    return lines


def code_lines(source: str) -> int:
    """How many lines hold code: a token that is not a comment, and not on a docstring's lines."""
    skip = docstring_lines(source)
    lines = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in _NOT_CODE:
            lines.update(n for n in range(token.start[0], token.end[0] + 1) if n not in skip)
    return len(lines)


def main(paths: list[str]) -> None:
    raw_total = code_total = 0
    print(f"{'file':45} {'raw':>6} {'code':>6}")
    for path in paths:
        source = Path(path).read_text()
        raw, code = len(source.splitlines()), code_lines(source)
        raw_total, code_total = raw_total + raw, code_total + code
        print(f"{path:45} {raw:6d} {code:6d}")
    print(f"{'total':45} {raw_total:6d} {code_total:6d}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + " Code lines: the lines with a token "
                                     "that is not a comment or a docstring.")
    parser.add_argument("files", nargs="*", metavar="FILE",
                        help="Python files to count (default: the config, sweep and experiments files)")
    main(parser.parse_args().files or FILES)

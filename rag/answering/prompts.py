"""Versioned prompt files: load, validate and render them into chat messages.

Prompts live as text files `prompts/<name>.v<N>.txt` (shipped in the wheel as
`rag/prompts`). A file is a header of `key: value` lines (name, version,
placeholders, description), a line `---`, then the body. The body may be split
into chat turns by lines that are exactly `### system`, `### user` or
`### assistant`, which is how few-shot examples are written; a body without such
lines is one user message. Placeholders are `{name}` (str.format style, literal
braces as `{{` and `}}`). Loading checks that the body uses exactly the declared
placeholders, so a typo fails when the prompt is loaded, not halfway through an
answer. This module does not count tokens or budget context; `rag.answering.answer` does.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path

from rag.errors import PromptError

_FILE_PATTERN = re.compile(r"^(?P<name>[a-z0-9_-]+)\.v(?P<version>\d+)\.txt$")
_REFERENCE_PATTERN = re.compile(r"^(?P<name>[a-z0-9_-]+)(?:@v?(?P<version>\d+))?$")
_HEADING_PATTERN = re.compile(r"^###[ \t]+(system|user|assistant)[ \t]*$")
_HEADER_KEYS = ("name", "version", "placeholders", "description")
_REQUIRED_KEYS = ("name", "version", "placeholders")


@dataclass(frozen=True)
class Prompt:
    """A validated prompt: chat turns with `{placeholder}` fields."""

    name: str
    version: int
    description: str
    placeholders: frozenset[str]
    turns: tuple[tuple[str, str], ...]  # (role, template text)
    path: Path

    @property
    def label(self) -> str:
        """`name.vN`, for logs and run files."""
        return f"{self.name}.v{self.version}"

    def render(self, **values: str) -> list[dict[str, str]]:
        """Fill every placeholder; missing or unexpected values are an error, not a silent gap."""
        missing = sorted(self.placeholders - values.keys())
        extra = sorted(values.keys() - self.placeholders)
        if missing:
            raise PromptError(f"prompt {self.label} needs a value for {{{', '.join(missing)}}}")
        if extra:
            raise PromptError(f"prompt {self.label} has no placeholder {{{', '.join(extra)}}}")
        return [{"role": role, "content": text.format_map(values)} for role, text in self.turns]


def prompts_dir() -> Path:
    """The packaged `rag/prompts` in an installed wheel, else the repo's top-level `prompts/`."""
    import rag

    package_dir = Path(rag.__file__).parent
    packaged = package_dir / "prompts"
    return packaged if packaged.is_dir() else package_dir.parent / "prompts"


def available_versions(name: str, directory: Path) -> dict[int, Path]:
    """Version number -> file for every `name.vN.txt` in `directory`."""
    versions: dict[int, Path] = {}
    for path in directory.glob(f"{name}.v*.txt"):
        match = _FILE_PATTERN.match(path.name)
        if match and match["name"] == name:
            versions[int(match["version"])] = path
    return versions


def load_prompt(reference: str, directory: Path | None = None) -> Prompt:
    """Load `name` (highest version) or `name@vN` from `directory` (default: `prompts_dir()`)."""
    directory = directory or prompts_dir()
    match = _REFERENCE_PATTERN.match(reference)
    if not match:
        raise PromptError(f"bad prompt name {reference!r} — use `name` or `name@v2`")
    name = match["name"]
    versions = available_versions(name, directory)
    if not versions:
        raise PromptError(f"no prompt {name!r} in {directory} — add {name}.v1.txt there")
    if match["version"] is None:
        return parse_prompt_file(versions[max(versions)])
    version = int(match["version"])
    if version not in versions:
        known = ", ".join(f"v{number}" for number in sorted(versions))
        raise PromptError(f"prompt {name!r} has no version v{version} (available: {known})")
    return parse_prompt_file(versions[version])


def parse_prompt_file(path: Path) -> Prompt:
    """Read and validate one prompt file; every problem is a PromptError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PromptError(f"cannot read prompt {path}: {error}") from None
    header_text, separator, body = text.partition("\n---\n")
    if not separator:
        raise PromptError(f"prompt {path} has no `---` line between header and body")
    header = _parse_header(path, header_text)
    match = _FILE_PATTERN.match(path.name)
    if not match or header["name"] != match["name"] or header["version"] != match["version"]:
        raise PromptError(
            f"prompt {path} declares name {header['name']!r} version {header['version']!r}; "
            "the file must be named <name>.v<version>.txt to match"
        )
    declared = frozenset(item.strip() for item in header["placeholders"].split(",") if item.strip())
    turns = _split_turns(path, body)
    used: set[str] = set()
    for _role, turn_text in turns:
        used |= _placeholders_in(path, turn_text)
    if undeclared := sorted(used - declared):
        raise PromptError(
            f"prompt {path} uses {{{undeclared[0]}}} but does not declare it in `placeholders:`"
        )
    if unused := sorted(declared - used):
        raise PromptError(f"prompt {path} declares placeholder {unused[0]!r} but never uses it")
    return Prompt(
        name=header["name"],
        version=int(header["version"]),
        description=header.get("description", ""),
        placeholders=declared,
        turns=tuple(turns),
        path=path,
    )


def _parse_header(path: Path, header_text: str) -> dict[str, str]:
    header: dict[str, str] = {}
    for number, line in enumerate(header_text.splitlines(), start=1):
        if not line.strip():
            continue
        key, colon, value = line.partition(":")
        key = key.strip().lower()
        if not colon or key not in _HEADER_KEYS:
            allowed = ", ".join(f"`{known}:`" for known in _HEADER_KEYS)
            raise PromptError(
                f"prompt {path} header line {number} is not a `key: value` line with key {allowed}"
            )
        header[key] = value.strip()
    if missing := [key for key in _REQUIRED_KEYS if key not in header]:
        raise PromptError(f"prompt {path} header lacks `{missing[0]}:`")
    return header


def _split_turns(path: Path, body: str) -> list[tuple[str, str]]:
    """Split the body at `### role` lines; check the turn order chat templates expect."""
    turns: list[tuple[str, list[str]]] = []
    preamble: list[str] = []
    for line in body.splitlines():
        heading = _HEADING_PATTERN.match(line)
        if heading:
            turns.append((heading[1], []))
        elif turns:
            turns[-1][1].append(line)
        else:
            preamble.append(line)
    if not turns:
        turns = [("user", preamble)]
    elif "".join(preamble).strip():
        raise PromptError(f"prompt {path} has text before its first `### role` line")
    result = [(role, "\n".join(lines).strip()) for role, lines in turns]
    roles = [role for role, _text in result]
    for role, text in result:
        if not text:
            raise PromptError(f"prompt {path} has an empty `### {role}` section")
    if "system" in roles[1:]:
        raise PromptError(f"prompt {path}: `### system` may only be the first section")
    dialogue = roles[1:] if roles[0] == "system" else roles
    expected = ["user" if index % 2 == 0 else "assistant" for index in range(len(dialogue))]
    if dialogue != expected or dialogue[-1:] != ["user"]:
        raise PromptError(
            f"prompt {path}: turns after system must alternate user/assistant and end with user"
        )
    return result


def _placeholders_in(path: Path, text: str) -> set[str]:
    """Field names used in `text`; only plain `{name}` fields are allowed."""
    names: set[str] = set()
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError as error:
        raise PromptError(
            f"prompt {path} has a stray brace ({error}); write literal braces as {{{{ }}}}"
        ) from None
    for _literal, field, format_spec, conversion in fields:
        if field is None:
            continue
        if not field.isidentifier() or format_spec or conversion:
            raise PromptError(
                f"prompt {path} has placeholder {{{field}}}; only plain {{name}} fields are allowed"
            )
        names.add(field)
    return names
